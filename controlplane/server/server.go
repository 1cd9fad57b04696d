// Package server assembles a control-plane server: the state machine, the
// raft node, the cluster identity, the gRPC API with its authentication, and
// the REST gateway, all served over TLS on one port.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/acme"
	"github.com/containercodes/cc/controlplane/api"
	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/leader"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/session"
	"github.com/containercodes/cc/controlplane/ui"
	"github.com/containercodes/cc/controlplane/webhook"
	imetrics "github.com/containercodes/cc/internal/metrics"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/tracing"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
	"github.com/containercodes/cc/proto/openapi"
)

// Options are what Start needs besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Out receives the one-time bootstrap message with the admin token.
	Out io.Writer
	// NodeDownAfter is how long a node may go without a session on any
	// server before the leader marks it down (default 15s; tests shorten it).
	NodeDownAfter time.Duration
	// Faults injects raft partitions; tests only, nil in production.
	Faults *raftstore.Faults
	// CertPollInterval is how often the files of tls_cert_file and
	// tls_key_file are checked for a change (default 5s; tests shorten it).
	CertPollInterval time.Duration
	// ServerCertLifetime is how long a server certificate this server
	// signs for itself is valid (default pki.ServerLifetime; tests shorten
	// it). It is renewed when two thirds of it have passed.
	ServerCertLifetime time.Duration
	// CertRenewCheck is how often the server checks whether its certificate
	// is due for renewal (default one minute; tests shorten it).
	CertRenewCheck time.Duration
	// Now is the clock of certificate renewal (default time.Now; tests
	// move it).
	Now func() time.Time
	// TraceBatchTimeout is the longest a finished span waits before it is
	// sent (default the SDK's 5s; tests shorten it).
	TraceBatchTimeout time.Duration
}

// Server is a running control-plane server.
type Server struct {
	cfg  config.Config
	opts Options
	log  *slog.Logger

	fsm      *fsm.FSM
	audit    *auditSink // the local audit file and the count of refused calls
	raft     *raftstore.Store
	id       *identity
	sessions *session.Hub
	blobs    *blobstore.Store
	// disk is the data disk's free-space floor (min_free_disk).
	disk     *api.DiskFloor
	recordMu sync.Mutex // recordSelf
	caMu     sync.Mutex
	caFull   *pki.CA // the signing CA with its key, as last read from the state

	// tracing is the tracer provider of every span this server starts;
	// SetTracing changes its settings.
	tracing *tracing.Provider

	limiter *auth.RateLimiter
	// metrics is this server's series (own registry); metricsLn serves
	// them on metrics_addr, nil when it is not set.
	metrics   *metrics.Metrics
	metricsLn *imetrics.Listener
	joins     *api.JoinLimiter
	// webhookAllow is webhooks.allow in force (reloaded on SIGHUP).
	webhookAllow atomic.Pointer[[]netip.Prefix]
	gc           *blobs.GC
	certs        *apiCerts
	// rateCfg is the rate_limit section in force: cfg's until
	// SetRateLimit changes it. Guarded by rateMu.
	rateMu  sync.Mutex
	rateCfg config.RateLimitConfig

	grpc   *grpc.Server
	http   *http.Server
	ln     net.Listener
	mem    *bufconn.Listener
	gwConn *grpc.ClientConn

	adminToken   string
	apiAdvertise string
	bg           context.Context // ends when Close starts
	bgCancel     context.CancelFunc
	peers        *peers
	wg           sync.WaitGroup
	serveErr     chan error
	catchUp      *auth.CatchUp // before a token is checked
	closeOnce    sync.Once
	closeErr     error
	ready        atomic.Bool
	// initialized is set once the state holds the cluster record.
	initialized atomic.Bool
}

// Start opens the data dir, starts raft, completes a bootstrap when asked,
// and serves the API. Close stops it all.
func Start(ctx context.Context, cfg config.Config, opts Options) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, opts: opts, log: log, serveErr: make(chan error, 2), metrics: metrics.New(imetrics.NewRegistry())}
	s.disk = &api.DiskFloor{Dir: cfg.DataDir, MinBytes: cfg.MinFreeDisk.Bytes, MinPercent: cfg.MinFreeDisk.Percent, Free: cfg.FreeSpace}
	s.SetWebhookAllow(cfg.Webhooks)
	s.gc = &blobs.GC{}
	s.gc.Set(cfg.BlobGC.Interval.Duration, cfg.BlobGC.Grace.Duration)
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	serverID, err := loadServerID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if s.audit, err = openAuditSink(cfg.AuditFile, serverID, log.With("component", "audit")); err != nil {
		return nil, err
	}
	if s.tracing, err = newTracing(cfg, serverID, opts.TraceBatchTimeout); err != nil {
		return nil, err
	}
	if s.fsm, err = fsm.Open(filepath.Join(cfg.DataDir, fileState), log.With("component", "fsm")); err != nil {
		return nil, err
	}
	s.fsm.SetTracing(s.tracing)
	s.fsm.OnAudit(s.audit.applied)
	s.fsm.SetMetrics(s.metrics)
	raftDir := filepath.Join(cfg.DataDir, dirRaft)
	hasRaft := raftstore.HasState(raftDir)
	if err := raftstore.CatchUp(raftDir, s.fsm, log.With("component", "raft")); err != nil {
		return nil, err
	}
	// Bind the API port first: a port in use is the commonest start failure
	// and must be reported before anything is created.
	if s.ln, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		return nil, fmt.Errorf("listen on api_addr %s: %w (is another control plane running? choose another with --api-addr)", cfg.APIAddr, err)
	}
	raftLn, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on raft_addr %s: %w (choose another with --raft-addr)", cfg.RaftAddr, err)
	}
	raftAdv, err := raftstore.AdvertiseAddr(raftLn.Addr().(*net.TCPAddr), cfg.RaftAdvertise)
	if err != nil {
		raftLn.Close()
		return nil, err
	}
	s.apiAdvertise = apiAdvertise(cfg.APIAdvertise, s.ln.Addr(), raftAdv.String())
	if cfg.Join != "" && !hasRaft && !fileExists(filepath.Join(cfg.DataDir, dirTLS, fileServerCert)) {
		jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := joinCluster(jctx, cfg.DataDir, serverID, cfg.Name, cfg.Join, cfg.JoinToken, raftAdv.String(), s.apiAdvertise)
		cancel()
		if err != nil {
			raftLn.Close()
			return nil, err
		}
		log.Info("joined the cluster as a voter", "server_id", serverID, "via", cfg.Join)
	}
	hosts := serverHosts(s.apiAdvertise, raftAdv.String(), cfg.TLSSANs)
	if s.id, err = loadIdentity(cfg.DataDir, serverID, s.fsm, cfg.Bootstrap, hasRaft, hosts, s.now(), s.certLifetime()); err != nil {
		raftLn.Close()
		return nil, err
	}
	rc := cfg.Raft
	s.raft, err = raftstore.Open(raftstore.Config{
		ID:                 serverID,
		Dir:                raftDir,
		Listener:           raftLn,
		Advertise:          raftAdv.String(),
		ServerTLS:          s.id.raftServerTLS(),
		ClientTLS:          s.id.raftClientTLS(),
		Bootstrap:          cfg.Bootstrap,
		Logger:             log.With("component", "raft"),
		Faults:             opts.Faults,
		Tracing:            s.tracing,
		HeartbeatTimeout:   rc.HeartbeatTimeout.Duration,
		ElectionTimeout:    rc.ElectionTimeout.Duration,
		LeaderLeaseTimeout: rc.LeaderLeaseTimeout.Duration,
		CommitTimeout:      rc.CommitTimeout.Duration,
		SnapshotInterval:   rc.SnapshotInterval.Duration,
		SnapshotThreshold:  rc.SnapshotThreshold,
		TrailingLogs:       rc.TrailingLogs,
		Metrics:            s.metrics,
	}, s.fsm)
	if err != nil {
		return nil, err
	}
	if err := s.finishBootstrap(ctx, opts.Out); err != nil {
		return nil, err
	}
	if err := s.serve(); err != nil {
		return nil, err
	}
	s.collectMetrics()
	if err := s.startMetricsListener(); err != nil {
		return nil, err
	}
	s.ready.Store(true)
	leaderLog := log.With("component", "leader")
	certs := acme.New(acme.Config{
		FSM: s.fsm, ServerID: serverID, Log: log.With("component", "acme"), EdgeSynced: s.sessions.EdgeSynced,
		RenewCheckInterval: s.cfg.ACME.RenewCheckInterval.Duration, Grace: s.cfg.ACME.ChallengeGrace.Duration,
		// Written through this server's raft only, so that a deposed
		// leader stops writing.
		Propose: func(ctx context.Context, t statev1.CommandType, p proto.Message) (uint64, error) {
			if err := s.raft.ProposeLocalAll(ctx, t, []proto.Message{p}, time.Now()); err != nil {
				return 0, err
			}
			return s.fsm.AppliedIndex(), nil
		},
	})
	loops := leader.NewRunner(leaderLog, append(leader.Loops(leader.Config{
		Raft: s.raft, FSM: s.fsm, Log: log, NodeDownAfter: s.downAfter(), Sessions: s.sessions.Sessions,
		OtherSessions: func(ctx context.Context) map[string]time.Time { return s.peers.otherSessions(ctx, s.raft) },
		Webhooks:      &webhook.Sender{Policy: s.webhookPolicy(), Metrics: s.metrics},
		Tracing:       s.tracing,
		Metrics:       s.metrics,
	}), leader.Loop{Name: "acme", Run: certs.Run})...)
	// One raft barrier per term for the loops that decide from the state.
	loops.Prepare = leader.Barrier(s.raft, leaderLog)
	renew := &certRenewer{id: s.id, ca: s.clusterCA, now: s.now, lifetime: s.certLifetime(), log: log.With("component", "tls")}
	every := opts.CertRenewCheck
	if every <= 0 {
		every = defaultCertRenewCheck
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		renew.run(s.bg, every)
	}()
	s.gc.Store, s.gc.InUse, s.gc.Metrics = s.blobs, s.fsm.BlobsInUse, s.metrics
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.followCA(s.bg, every, log.With("component", "tls"))
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.gc.Run(s.bg, s.log.With("component", "blob-gc"))
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		loops.Run(s.bg, s.raft.IsLeader(), s.raft.LeaderCh())
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.bg, 30*time.Second)
		defer cancel()
		if err := s.recordSelf(ctx); err != nil && s.bg.Err() == nil {
			s.log.Warn("could not record this server's addresses", "err", err)
		}
	}()
	if t := cfg.Tracing; t.Endpoint != "" {
		log.Info("tracing on", "endpoint", t.Endpoint, "sample_ratio", t.SampleRatio, "insecure", t.Insecure)
	}
	log.Info("control plane serving", "cluster_id", s.ClusterID(), "server_id", serverID, "server_name", cfg.Name, "api", s.Addr(), "raft", s.raft.Addr())
	return s, nil
}

// finishBootstrap writes the pending CA to raft and creates the first admin
// token. Each step is skipped when already done, so an interrupted bootstrap
// completes on the next start.
func (s *Server) finishBootstrap(ctx context.Context, out io.Writer) error {
	if !s.id.pending {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.raft.WaitLeader(wctx); err != nil {
		return err
	}
	now := time.Now()
	_, err := s.raft.Propose(wctx, statev1.CommandType_COMMAND_TYPE_INIT_CLUSTER, &statev1.InitCluster{
		ClusterId: s.id.clusterID,
		CaCertPem: s.id.ca.CertPEM,
		CaKeyPem:  s.id.ca.KeyPEM,
	}, now)
	if err != nil && !errors.Is(err, fsm.ErrExists) {
		return fmt.Errorf("bootstrap: write cluster identity: %w", err)
	}
	if err := s.recordSelf(wctx); err != nil {
		return fmt.Errorf("bootstrap: record this server: %w", err)
	}
	rec, bearer, err := api.NewTokenRecord(ccv1.Role_ROLE_ADMIN, "bootstrap admin token", 0, now)
	if err != nil {
		return err
	}
	if _, err := s.raft.Propose(wctx, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: rec}, now); err != nil {
		return fmt.Errorf("bootstrap: create admin token: %w", err)
	}
	tokenPath := filepath.Join(s.cfg.DataDir, FileAdminToken)
	if err := pki.WriteFile(tokenPath, []byte(bearer+"\n"), 0o600); err != nil {
		return fmt.Errorf("bootstrap: write %s: %w", tokenPath, err)
	}
	if err := os.Remove(filepath.Join(s.cfg.DataDir, dirTLS, filePendingCAKey)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.id.pending = false
	s.adminToken = bearer
	if out != nil {
		fmt.Fprintf(out, "Bootstrapped cluster %s.\nAdmin API token (shown once; also written to %s, mode 0600):\n\n  %s\n\n", s.id.clusterID, tokenPath, bearer)
	}
	s.log.Info("cluster bootstrapped", "cluster_id", s.id.clusterID, "admin_token_file", tokenPath)
	return nil
}

func (s *Server) serve() error {
	authn := auth.NewAuthenticator(s.fsm, s.fsm).WithCatchUp(func(ctx context.Context) error {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return s.raft.Barrier(bctx)
	})
	s.catchUp = auth.NewCatchUp(s.barrierThroughElection, auth.DefaultCatchUpMaxAge)
	authn.WithFreshness(s.tokenFresh).WithWatch(s.fsm.Watch, 0)
	s.rateCfg = s.cfg.RateLimit
	s.limiter = auth.NewRateLimiter(rateLimits(s.rateCfg))
	s.limiter.OnLimited(s.metrics.RateLimited)
	authn.WithRateLimiter(s.limiter)
	var err error
	if s.blobs, err = blobstore.New(filepath.Join(s.cfg.DataDir, "blobs")); err != nil {
		return err
	}
	s.sessions = session.New(s.raft, s.fsm, s.log.With("component", "session"), session.Options{Tracing: s.tracing, Metrics: s.metrics})
	authn.WithServers(s.fsm)
	authn.WithRefusals(func(e *ccv1.AuditEvent) {
		s.metrics.AuthFailed(e.Outcome)
		s.audit.refusal(e)
	})
	s.peers = newPeers(s.fsm, pki.OfferGRPCOnly(pki.OfferClusterALPN(s.id.raftClientTLS())), s.tracing)
	s.raft.SetPeer(s.peers)
	replicated := blobs.New(s.blobs, &blobPeers{peers: s.peers, raft: s.raft, blobs: s.blobs}, s.log.With("component", "blobs")).WithMetrics(s.metrics)
	// Recovery comes first, so that a panic anywhere in the chain or a
	// handler answers Internal and the server lives.
	grpcLog := s.log.With("component", "grpc")
	s.grpc = grpc.NewServer(
		// Connections that offered pki.ALPNGRPC (agents, ccctl, peer
		// servers) are served by
		// gRPC's own transport, their TLS handshake done already.
		// Thousands of agent sessions hold a connection each: no write
		// buffer of its own per connection between writes (one from a
		// pool while writing), and no read buffer on top of TLS's own.
		grpc.Creds(handshaken{}),
		grpc.SharedWriteBuffer(true),
		grpc.ReadBufferSize(0),
		// Agents ping every 30s (the HTTP server allowed any rate).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// A span of every API call; of the calls of other servers and
		// agents, only those made within a trace.
		grpc.StatsHandler(tracing.ServerHandler(s.tracing, internalMethod)),
		grpc.ChainUnaryInterceptor(s.metrics.UnaryInterceptor, api.RecoverUnary(grpcLog), s.unaryCaughtUp, authn.UnaryInterceptor, s.readBarrier, api.ErrorInterceptor),
		grpc.ChainStreamInterceptor(s.metrics.StreamInterceptor, s.streamEndsOnClose, api.RecoverStream(grpcLog), s.streamCaughtUp, authn.StreamInterceptor, api.StreamErrorInterceptor),
	)
	s.joins = api.NewJoinLimiter(s.cfg.JoinLimit.PerMinute, s.cfg.JoinLimit.Burst, 0)
	core := &api.Core{Raft: s.raft, FSM: s.fsm, Sessions: s.sessions, Peers: s.peers, Log: s.log.With("component", "api"), Now: time.Now,
		JoinLimiter: s.joins, Disk: s.disk, Refused: s.audit.refusal,
		Health:        func(ctx context.Context) []*ccv1.ReadinessCheck { return ReadinessChecks(s.Health(ctx)) },
		OtherSessions: func(ctx context.Context) []*ccv1.NodeSession { return s.peers.otherSessionList(ctx, s.raft) }}
	images := api.NewImageService(core, replicated, s.log.With("component", "images"))
	jobs, err := api.NewJobService(core, replicated, api.JobOptions{
		Done: s.bg.Done(), TempDir: filepath.Join(s.cfg.DataDir, "tmp"), Logger: s.log.With("component", "jobs"),
		Webhooks: s.webhookPolicy(), MaxDownloads: s.cfg.MaxOutputDownloads,
	})
	if err != nil {
		return err
	}
	edge, err := api.NewEdgeService(core, replicated, api.EdgeOptions{
		TempDir: filepath.Join(s.cfg.DataDir, "tmp"), Logger: s.log.With("component", "edge"),
	})
	if err != nil {
		return err
	}
	api.NewClusterService(core, s.cfg.Name).Register(s.grpc)
	api.NewNodeService(core).Register(s.grpc)
	// Join tokens name the CA of the certificate the server presents: the
	// one a joining agent finds in the chain (during a CA rotation, the
	// old one, until it is retired).
	api.NewTokenService(core, func() string { return pki.Digest(s.id.presentedCA()) }).Register(s.grpc)
	api.NewTrustService(core).Register(s.grpc)
	api.NewContainerService(core).Register(s.grpc)
	api.NewStatsService(core).Register(s.grpc)
	api.NewServiceService(core).Register(s.grpc)
	api.NewVolumeService(core).Register(s.grpc)
	images.Register(s.grpc)
	jobs.Register(s.grpc)
	edge.Register(s.grpc)
	api.NewCertService(core).Register(s.grpc)
	api.NewAuditService(core).Register(s.grpc)
	api.NewExecService(core).Register(s.grpc)
	ccv1.RegisterAgentServiceServer(s.grpc, api.NewAgentServer(core, s.clusterCA, images, replicated))
	ccv1.RegisterPeerServiceServer(s.grpc, api.NewPeerServer(core, s.clusterCA, s.blobs))
	registerReflection(s.grpc)

	// The REST gateway reaches the same gRPC server, with the same
	// interceptors, through an in-memory connection; the caller's
	// Authorization header travels with each call.
	s.mem = bufconn.Listen(1 << 20)
	s.goServe(func() error { return s.grpc.Serve(s.mem) })
	s.gwConn, err = grpc.NewClient("passthrough:///control-plane",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.mem.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The REST call's span goes on in the gRPC call's metadata.
		grpc.WithStatsHandler(tracing.ClientHandler(s.tracing)),
		// An answer is already built in this process: gRPC's 4 MiB default
		// would refuse a long listing, and the gateway's error handler
		// takes "message larger than max" for the request's size (413).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(gatewayMaxAnswer)))
	if err != nil {
		return err
	}
	gw := runtime.NewServeMux(
		runtime.WithForwardResponseOption(streamOpen),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithErrorHandler(restError),
	)
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		ccv1.RegisterClusterServiceHandler,
		ccv1.RegisterNodeServiceHandler,
		ccv1.RegisterTokenServiceHandler,
		ccv1.RegisterContainerServiceHandler,
		ccv1.RegisterStatsServiceHandler,
		ccv1.RegisterImageServiceHandler,
		ccv1.RegisterServiceServiceHandler,
		ccv1.RegisterJobServiceHandler,
		ccv1.RegisterEdgeServiceHandler,
		ccv1.RegisterCertServiceHandler,
		ccv1.RegisterAuditServiceHandler,
		ccv1.RegisterTrustServiceHandler,
		ccv1.RegisterVolumeServiceHandler,
	} {
		if err := register(ctx, gw, s.gwConn); err != nil {
			return err
		}
	}
	writeErr := func(w http.ResponseWriter, r *http.Request, err error) {
		runtime.HTTPError(r.Context(), gw, &runtime.JSONPb{}, w, r, err)
	}

	// Every handler is counted in cc_api_http_requests_total under its
	// name (the gateway's calls are counted by method in the gRPC
	// interceptors too).
	mux := http.NewServeMux()
	handle := func(pattern, name string, h http.Handler) { mux.Handle(pattern, s.metrics.HTTPHandler(name, h)) }
	handle("GET /healthz", "healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	}))
	handle("GET /readyz", "readyz", http.HandlerFunc(s.readyz))
	// The metrics, for tokens of roles metrics, viewer and admin.
	handle("GET /metrics", "metrics", authn.MetricsMiddleware(imetrics.Handler(s.metrics.Registry(), s.log.With("component", "metrics")), writeErr))
	handle("GET /v1/openapi.json", "openapi", authn.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi.Spec)
	}), writeErr))
	// A job's output is bytes, not JSON: a plain handler, so that Range,
	// If-None-Match and Content-Length work.
	handle("GET /v1/jobs/{id}/output", "job_output", authn.Middleware(jobs.OutputHandler(writeErr), writeErr))
	// The files of a job's output (names, sizes, modes), as JSON.
	handle("GET /v1/jobs/{id}/output:list", "job_output_list", authn.Middleware(jobs.OutputListHandler(writeErr), writeErr))
	// Uploads, which the gateway cannot carry (client streams): the raw
	// body streamed into the gRPC method, which authorizes and audits it.
	handle("POST /v1/jobs/inputs", "job_input_upload", authn.GatewayMiddleware(s.inputUpload(writeErr), writeErr))
	handle("POST /v1/images/load", "image_load", authn.GatewayMiddleware(s.imageUpload(writeErr), writeErr))
	handle("POST /v1/sites/{name}/deploy", "site_deploy", authn.GatewayMiddleware(s.siteUpload(writeErr), writeErr))
	// The caller's token id and role.
	handle("GET /v1/whoami", "whoami", authn.Middleware(whoami(writeErr), writeErr))
	// An exec is a two-way stream: a WebSocket, not the gateway. A browser
	// cannot set Authorization on a WebSocket: it offers the token as a
	// subprotocol instead (execTokenProtocol), never in the URL.
	handle("GET /v1/containers/{id}/exec", "container_exec", execTokenProtocol(authn.GatewayMiddleware(http.HandlerFunc(s.execWebSocket), writeErr)))
	handle("/v1/", "gateway", authn.GatewayMiddleware(gw, writeErr))
	// The web dashboard: static files only, so no token (the app calls
	// the API above with one). GET / leads to it.
	handle("/ui/", "ui", ui.Handler())
	handle("GET /{$}", "ui", http.RedirectHandler(ui.Prefix, http.StatusFound))
	handle("/", "not_found", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, `{"code":5,"message":"no such path: the API is under /v1/ (see /v1/openapi.json)"}`)
	}))

	// REST calls: a panic answers 500, a body is bounded at maxRESTBody.
	// gRPC calls have their own recovery and message limits.
	// Uploads are bounded by their method's own limit instead.
	bodyLimit := func(r *http.Request) int64 {
		if r.Method == http.MethodPost {
			switch p := r.URL.Path; {
			case p == "/v1/jobs/inputs":
				return jobs.MaxInputSize
			case p == "/v1/images/load":
				return images.MaxImageSize
			case strings.HasPrefix(p, "/v1/sites/") && strings.HasSuffix(p, "/deploy"):
				return api.DefaultMaxSiteUpload
			}
		}
		return maxRESTBody
	}
	rest := s.traceREST(recoverHTTP(s.log.With("component", "http"), limitBodyFor(bodyLimit, mux)))
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			s.grpc.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
	certs, err := newAPICerts(s.id.current, s.cfg.TLSCertFile, s.cfg.TLSKeyFile, s.log.With("component", "tls"))
	if err != nil {
		return err
	}
	s.certs = certs
	poll := s.opts.CertPollInterval
	if poll <= 0 {
		poll = defaultCertPoll
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		certs.watch(s.bg, poll)
	}()
	s.http = &http.Server{
		Handler:           root,
		TLSConfig:         s.id.apiTLS(certs),
		ReadHeaderTimeout: 10 * time.Second,
		// A connection with no request (HTTP/1) or no open stream (HTTP/2)
		// is closed after this; agents' sessions are open streams and are
		// not idle. No ReadTimeout or WriteTimeout: they would cut streams
		// (logs -f, sessions, uploads).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.With("component", "http").Handler(), slog.LevelDebug),
	}
	// Handshakes run under a deadline and a bound on how many are in
	// flight, so that stalled connections cannot pile up before any
	// credential is seen.
	tlsLn := newHandshakeListener(s.ln, s.http.TLSConfig, handshakeTimeout, maxHandshakes, maxHandshakesPerSource, s.log.With("component", "http"))
	s.goServe(func() error { return s.http.Serve(tlsLn) })
	s.goServe(func() error {
		// The HTTP server's shutdown closes the listener first.
		if err := s.grpc.Serve(tlsLn.GRPCOnly()); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return nil
}

// recordSelf writes this server's record (name, addresses and the pin of
// its key) when it is missing or out of date, so that peers can reach its
// API and recognize its key. A record of an older cluster gets its pin here.
func (s *Server) recordSelf(ctx context.Context) error {
	// One at a time: a second caller sees what the first wrote, and
	// writes nothing when it is current.
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	want := &statev1.ServerRecord{Id: s.raft.ID(), Name: s.cfg.Name, RaftAddress: s.raft.Addr(), ApiAddress: s.apiAdvertise, PublicKeySha256: s.id.keyHash(), CertCaSha256: s.id.issuerDigest()}
	if rec, err := s.fsm.Server(want.Id); err == nil && rec.Name == want.Name && rec.RaftAddress == want.RaftAddress && rec.ApiAddress == want.ApiAddress && bytes.Equal(rec.PublicKeySha256, want.PublicKeySha256) && rec.CertCaSha256 == want.CertCaSha256 {
		return nil
	}
	_, err := s.raft.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_SERVER, &statev1.PutServer{Server: want}, time.Now())
	return err
}

// readBarrier makes reads linearizable: before a read-only method runs, this
// server catches up with every write acknowledged so far. A caller that
// accepts stale data sends metadata cc-stale: true (ccctl --stale, REST
// ?stale=true). Status and server listings never wait: they must answer
// when there is no leader.
func (s *Server) readBarrier(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	if !auth.ReadOnly(info.FullMethod) || info.FullMethod == ccv1.ClusterService_GetStatus_FullMethodName || info.FullMethod == ccv1.ClusterService_ListServers_FullMethodName {
		return handler(ctx, req)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("cc-stale"); len(v) > 0 && v[0] == "true" {
			return handler(ctx, req)
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := s.raft.Barrier(bctx)
	cancel()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot serve a linearizable read now (%v): retry, or accept stale data with --stale", err)
	}
	return handler(ctx, req)
}

// tokenFresh brings this server up to the cluster's state before a token is
// checked (auth.CatchUp: at most one barrier per DefaultCatchUpMaxAge, shared
// by concurrent calls), so that a token revoked through any server is refused
// here too. The calls that must answer without a leader (status, server
// listing, a scrape of /metrics) and reads that accept stale data fall
// back to the local state when there is no barrier to be had.
func (s *Server) tokenFresh(ctx context.Context, fullMethod string) error {
	err := s.catchUp.Wait(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if fullMethod == ccv1.ClusterService_GetStatus_FullMethodName || fullMethod == ccv1.ClusterService_ListServers_FullMethodName || fullMethod == auth.MetricsMethod {
		return nil
	}
	if auth.ReadOnly(fullMethod) {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("cc-stale"); len(v) > 0 && v[0] == "true" {
				return nil
			}
		}
	}
	return err
}

// barrierThroughElection is a raft barrier (the leader's read index, then
// waiting until this server applied it) tried again while ctx lasts when
// it fails: during an election there is no leader to ask for a moment, and
// a caller should wait for the next one rather than be refused.
func (s *Server) barrierThroughElection(ctx context.Context) error {
	wait := 50 * time.Millisecond
	for {
		err := s.raft.Barrier(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// clusterCA returns the CA with its key from the replicated state.
func (s *Server) clusterCA() (*pki.CA, error) {
	rec, err := s.fsm.Cluster()
	if err != nil {
		return nil, err
	}
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.caFull != nil && bytes.Equal(s.caFull.CertPEM, rec.CaCertPem) {
		return s.caFull, nil
	}
	ca, err := pki.ParseCA(rec.CaCertPem, rec.CaKeyPem)
	if err != nil {
		return nil, err
	}
	s.caFull = ca
	return ca, nil
}

func (s *Server) goServe(fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("server stopped", "err", err)
			select {
			case s.serveErr <- err:
			default:
			}
		}
	}()
}

// notReady says why the server cannot serve the API yet, or nil when it
// can: it must have started, know a leader, and have applied the raft log
// it started with (so that no call sees older state than before a restart).
func (s *Server) notReady() error {
	if !s.ready.Load() {
		return errors.New("the server is starting")
	}
	st, err := s.raft.Status()
	if err != nil || st.LeaderID == "" {
		return errors.New("the cluster has no raft leader")
	}
	if err := s.caughtUp(); err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}

func (s *Server) unaryCaughtUp(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	if err := s.caughtUp(); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) streamCaughtUp(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.caughtUp(); err != nil {
		return err
	}
	return handler(srv, ss)
}

// caughtUp refuses API calls while the state is older than the log the
// server started with; a token created before a restart must not look
// unknown. Waiting for a leader is left to the writes themselves.
func (s *Server) caughtUp() error {
	if applied, target, ok := s.raft.CaughtUp(); !ok {
		return status.Errorf(codes.Unavailable, "the server is replaying its raft log (applied %d of %d); retry shortly", applied, target)
	}
	if !s.initialized.Load() {
		if _, err := s.fsm.Cluster(); err != nil {
			return status.Error(codes.Unavailable, "the server has not received the cluster state yet (it joined recently); retry shortly")
		}
		s.initialized.Store(true)
	}
	return nil
}

// WaitReady blocks until /readyz would answer 200, or ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := s.notReady()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-t.C:
		}
	}
}

// streamOpen starts a REST stream's response (status and headers) as soon
// as its handler says the stream is open (api.StreamOpenHeader), instead of
// with the first message, which may be long in coming (a watch).
func streamOpen(ctx context.Context, w http.ResponseWriter, resp proto.Message) error {
	if resp != nil {
		return nil
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || len(md.HeaderMD.Get(api.StreamOpenHeader)) == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// bearerChallenge makes a 401 carry the RFC 6750 challenge instead of the
// gateway's default (the error message).
type bearerChallenge struct{ http.ResponseWriter }

func (b bearerChallenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		b.Header().Set("WWW-Authenticate", `Bearer realm="container-codes"`)
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b bearerChallenge) Flush() {
	if f, ok := b.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	io.WriteString(w, body+"\n")
}

// Err delivers an error if a listener stops unexpectedly.
func (s *Server) Err() <-chan error { return s.serveErr }

// Addr is the API address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RaftAddr is the advertised raft address.
func (s *Server) RaftAddr() string { return s.raft.Addr() }

// ElectionsOnLeaderGone is how many elections this server started at once
// because the leader's raft port refused connections.
func (s *Server) ElectionsOnLeaderGone() uint64 { return s.raft.LeaderGone() }

// ClusterID is the cluster's id.
func (s *Server) ClusterID() string { return s.id.clusterID }

// CACertPEM is every cluster CA certificate clients trust, the signing one
// first.
func (s *Server) CACertPEM() []byte { return s.id.trust.Load().pem }

// IsLeader reports whether this server is the raft leader now.
func (s *Server) IsLeader() bool { return s.raft.IsLeader() }

// Snapshot takes a raft snapshot now (automatic ones follow the
// configured thresholds).
func (s *Server) Snapshot() error { return s.raft.Snapshot() }

// AdminToken is the admin token created by this start's bootstrap, or "".
func (s *Server) AdminToken() string { return s.adminToken }

// Close shuts down gracefully: it stops accepting, lets in-flight calls
// finish until ctx ends, then closes raft and the state database.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.bgCancel()
		s.ready.Store(false)
		var errs []error
		if s.sessions != nil {
			// Agent sessions and log streams never end by themselves.
			s.sessions.Close()
		}
		if s.http != nil {
			if err := s.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
				s.http.Close()
			}
		} else if s.ln != nil {
			s.ln.Close()
		}
		if s.grpc != nil {
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				s.grpc.Stop()
				<-stopped
			}
		}
		if s.gwConn != nil {
			s.gwConn.Close()
		}
		s.closeMetricsListener(ctx)
		if s.peers != nil {
			s.peers.close()
		}
		s.wg.Wait()
		if s.raft != nil {
			if err := s.raft.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		if s.fsm != nil {
			s.fsm.OnAudit(nil)
			if err := s.fsm.Close(); err != nil {
				errs = append(errs, fmt.Errorf("state close: %w", err))
			}
		}
		if s.audit != nil {
			if err := s.audit.close(); err != nil {
				errs = append(errs, fmt.Errorf("audit file close: %w", err))
			}
		}
		if s.tracing != nil {
			// The last spans are sent for a few seconds at most: a
			// receiver that is down costs them, not a slow shutdown.
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.tracing.Shutdown(tctx); err != nil {
				s.log.Warn("tracing: the last spans were not sent", "err", err)
			}
			cancel()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// now is the clock of certificate renewal.
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// certLifetime is the lifetime of the server certificates this server signs
// for itself.
func (s *Server) certLifetime() time.Duration {
	if s.opts.ServerCertLifetime > 0 {
		return s.opts.ServerCertLifetime
	}
	return pki.ServerLifetime
}

// downAfter is the node heartbeat grace: the option (tests) or the config.
func (s *Server) downAfter() time.Duration {
	if s.opts.NodeDownAfter > 0 {
		return s.opts.NodeDownAfter
	}
	return s.cfg.NodeDownAfter.Duration
}

// HasSession says whether a node's agent holds its session with this
// server (tests use it to find the server an agent talks to).
func (s *Server) HasSession(nodeID string) bool {
	return s.sessions != nil && s.sessions.Connected(nodeID)
}

// streamEndsOnClose ends every stream's context when the server closes, so
// that a stream that would go on (an exec, a followed log or watch,
// relayed through another server) does not hold up the shutdown: its
// handler sees the context end and returns.
func (s *Server) streamEndsOnClose(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.bg, cancel)
	defer stop()
	return handler(srv, &closingStream{ServerStream: ss, ctx: ctx})
}

// closingStream is a stream whose context streamEndsOnClose ends.
type closingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *closingStream) Context() context.Context { return c.ctx }
