// Package simnode runs simulated agents: thousands of lightweight nodes in
// one process, each speaking the real agent protocol over real mutual TLS
// (join with a join token, then a session with its own certificate), over
// a fake runtime that starts and stops containers at once. Benchmarks use a
// fleet to load a control plane the way real hosts would (like Kubernetes'
// kubemark or Nomad's node simulator).
//
// A fleet costs one gRPC connection per node (each node has its own client
// certificate), the goroutines gRPC needs for it and one loop per node;
// heartbeats and status reports run on timers, not goroutines.
package simnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Config describes a fleet. Zero fields take the defaults in parentheses.
type Config struct {
	// Servers are the control plane's API addresses. Node i tries them
	// from position i (mod len) on, so that a fleet spreads over the
	// servers; the server list a session announces replaces them.
	Servers []string
	// Token is an agent join token with at least Count uses left.
	Token string
	// Count is the number of nodes.
	Count int
	// NamePrefix names node i PREFIX-00000i ("sim").
	NamePrefix string
	// Resources is what every node reports (8 CPUs, 32 GiB).
	Resources *ccv1.Resources
	// Labels, when set, gives node i its labels.
	Labels func(i int) map[string]string
	// Address is the address nodes report ("127.0.0.1").
	Address string
	// Version is the agent version nodes report ("simnode").
	Version string
	// Heartbeat is the heartbeat period (3s, as cc-agent). Each node beats
	// first at a random point of the period, then every period ±10%, so
	// that a large fleet does not beat in lockstep.
	Heartbeat time.Duration
	// ReportDelay is how long a node collects status changes before it
	// sends them in one batch, as an agent reports once per reconcile pass
	// (100ms). Negative: send at once, one batch per assignment message.
	ReportDelay time.Duration
	// JoinConcurrency bounds the joins in flight (64).
	JoinConcurrency int
	// BufferSize is each connection's read and write buffer (8 KiB; gRPC's
	// default is 32 KiB each). The write buffer is released between writes.
	BufferSize int
	// Logger receives session errors at debug level and join progress at
	// info (discarded when nil).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultHeartbeat       = 3 * time.Second
	DefaultReportDelay     = 100 * time.Millisecond
	DefaultJoinConcurrency = 64
	DefaultBufferSize      = 8 << 10
)

func (c *Config) setDefaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = "sim"
	}
	if c.Resources == nil {
		c.Resources = &ccv1.Resources{CpuMillis: 8000, MemoryBytes: 32 << 30}
	}
	if c.Address == "" {
		c.Address = "127.0.0.1"
	}
	if c.Version == "" {
		c.Version = "simnode"
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ReportDelay == 0 {
		c.ReportDelay = DefaultReportDelay
	}
	if c.JoinConcurrency <= 0 {
		c.JoinConcurrency = DefaultJoinConcurrency
	}
	if c.BufferSize <= 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate says what is wrong with a configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("simnode: no server address"))
	}
	for _, a := range c.Servers {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("simnode: server %q: want HOST:PORT", a))
		}
	}
	if _, err := pki.ParseJoinToken(c.Token); err != nil {
		errs = append(errs, fmt.Errorf("simnode: token: %w", err))
	}
	if c.Count <= 0 {
		errs = append(errs, errors.New("simnode: Count must be at least 1"))
	}
	if c.Heartbeat < 0 {
		errs = append(errs, errors.New("simnode: Heartbeat must be positive"))
	}
	return errors.Join(errs...)
}

// TaskKey names one generation of an assignment.
type TaskKey struct {
	ID         string
	Generation uint64
}

// Fleet is a set of running simulated nodes.
type Fleet struct {
	cfg   Config
	log   *slog.Logger
	nodes []*node

	connected atomic.Int64 // nodes whose current session got its full set
	running   atomic.Int64 // tasks desired running, over all nodes
	sessions  atomic.Int64 // sessions opened, reconnects included

	endsMu sync.Mutex
	ends   map[string]int // why sessions ended, normalized
}

// Start joins cfg.Count nodes, at most cfg.JoinConcurrency at a time, and
// starts each node's session as soon as it has joined. It returns when
// every node has joined; Connected says how many have a session. When a
// join fails, the nodes started are stopped and the error is returned.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	tok, err := pki.ParseJoinToken(cfg.Token)
	if err != nil {
		return nil, err
	}
	// One connection, pinning the CA by the token's digest, serves every
	// join: a join needs no client certificate.
	joinConn, err := clusterdial.Dial(cfg.Servers,
		grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedTLS(tok.CADigest, cfg.Servers[0]))))
	if err != nil {
		return nil, err
	}
	defer joinConn.Close()
	f := &Fleet{cfg: cfg, log: cfg.Logger, nodes: make([]*node, cfg.Count)}
	j := &joiner{cfg: &f.cfg, tok: tok, client: ccv1.NewAgentServiceClient(joinConn)}

	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, cfg.JoinConcurrency)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	for i := 0; i < cfg.Count; i++ {
		select {
		case sem <- struct{}{}:
		case <-jctx.Done():
		}
		if jctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := j.join(jctx, i)
			if err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("simnode: join node %d: %w", i, err); cancel() })
				return
			}
			n.fleet = f
			f.nodes[i] = n
			n.start()
		}(i)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		f.Close()
		return nil, firstErr
	}
	f.log.Info("simulated nodes joined", "count", cfg.Count)
	return f, nil
}

// Len is the number of nodes.
func (f *Fleet) Len() int { return len(f.nodes) }

// NodeID is the id the cluster gave node i.
func (f *Fleet) NodeID(i int) string { return f.nodes[i].id }

// Name is node i's name.
func (f *Fleet) Name(i int) string { return f.nodes[i].name }

// Connected is the number of nodes with a live session that received its
// full assignment set.
func (f *Fleet) Connected() int { return int(f.connected.Load()) }

// Tasks is the number of tasks running on the fleet: assignments desired
// running, which the fake runtime runs as soon as it receives them.
func (f *Fleet) Tasks() int { return int(f.running.Load()) }

// Sessions is the number of sessions opened so far, reconnects included.
func (f *Fleet) Sessions() int { return int(f.sessions.Load()) }

// SessionEnds counts why sessions ended (other than by Stop or Close), by
// reason: the gRPC code and message with ids and numbers masked.
func (f *Fleet) SessionEnds() map[string]int {
	f.endsMu.Lock()
	defer f.endsMu.Unlock()
	out := make(map[string]int, len(f.ends))
	for k, v := range f.ends {
		out[k] = v
	}
	return out
}

var (
	hexRun   = regexp.MustCompile(`[0-9a-f]{8,}`)
	digitRun = regexp.MustCompile(`[0-9]+`)
)

func (f *Fleet) sessionEnded(err error) {
	st := status.Convert(err)
	msg := digitRun.ReplaceAllString(hexRun.ReplaceAllString(st.Message(), "…"), "N")
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	key := st.Code().String() + ": " + msg
	f.endsMu.Lock()
	if f.ends == nil {
		f.ends = map[string]int{}
	}
	f.ends[key]++
	f.endsMu.Unlock()
}

// Received returns, for every assignment generation any node received, the
// time its node first received it.
func (f *Fleet) Received() map[TaskKey]time.Time {
	out := map[TaskKey]time.Time{}
	for _, n := range f.nodes {
		if n == nil {
			continue
		}
		n.mu.Lock()
		for k, t := range n.received {
			out[k] = t
		}
		n.mu.Unlock()
	}
	return out
}

// Stop stops node i as a killed agent would stop: its session and
// connection end, and the control plane marks it down later. Stopping
// twice is fine.
func (f *Fleet) Stop(i int) {
	if n := f.nodes[i]; n != nil {
		n.stop()
	}
}

// Close stops every node and waits for every goroutine of the fleet.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.stop()
		}()
	}
	wg.Wait()
}

// joiner joins nodes through one shared, CA-pinning connection.
type joiner struct {
	cfg    *Config
	tok    pki.JoinToken
	client ccv1.AgentServiceClient
	pool   sync.Once
	caPool *x509.CertPool // shared by every node: one CA
}

// join records node i in the cluster and dials its own connection (lazily:
// the session connects).
func (j *joiner) join(ctx context.Context, i int) (*node, error) {
	cfg := j.cfg
	name := fmt.Sprintf("%s-%05d", cfg.NamePrefix, i)
	key, csr, err := pki.NewKeyAndCSR(name)
	if err != nil {
		return nil, err
	}
	var labels map[string]string
	if cfg.Labels != nil {
		labels = cfg.Labels(i)
	}
	req := &ccv1.JoinRequest{Token: cfg.Token, CsrDer: csr, Name: name, Labels: labels,
		Resources: cfg.Resources, Address: cfg.Address, Version: cfg.Version}
	var resp *ccv1.JoinResponse
	for attempt := 0; ; attempt++ {
		// The deadline reaches the server: without one, it gives the raft
		// write 10s, which a busy cluster can exceed and then commit the
		// join after answering Unavailable.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		resp, err = j.client.Join(cctx, req)
		cancel()
		code := status.Code(err)
		if code == codes.AlreadyExists && attempt > 0 {
			// An earlier attempt was committed but its answer was lost (a
			// leader change): that node has no certificate and will go
			// down. Join again under another name.
			req.Name = fmt.Sprintf("%s-r%d", name, attempt)
			cfg.Logger.Warn("an earlier join attempt went through unanswered; joining under another name", "node", name, "as", req.Name)
			continue
		}
		// Unavailable: no server answered, or the leader changed while
		// the join was in flight; elections take seconds.
		if code != codes.Unavailable || attempt == 6 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(200<<attempt) * time.Millisecond):
		}
	}
	if err != nil {
		return nil, err
	}
	name = req.Name
	if err := j.tok.CheckJoinCA(resp.CaPem); err != nil {
		return nil, err
	}
	j.pool.Do(func() { j.caPool, err = pki.Pool(resp.CaPem) })
	if err != nil || j.caPool == nil {
		return nil, fmt.Errorf("cluster CA: %v", err)
	}
	block, _ := pem.Decode(resp.CertificatePem)
	if block == nil {
		return nil, errors.New("the server returned no node certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf}
	pool := j.caPool
	tlsCfg := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
		// As agent/identity: gRPC's own transport on the server.
		NextProtos: []string{"h2", pki.ALPNCluster, pki.ALPNGRPC},
		// As agent/identity: servers are checked by chain and role, not
		// by the name they are reached by.
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) },
	}
	conn, err := clusterdial.Dial(rotate(cfg.Servers, i),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithReadBufferSize(0),
		grpc.WithWriteBufferSize(cfg.BufferSize),
		grpc.WithSharedWriteBuffer(true),
	)
	if err != nil {
		return nil, err
	}
	return newNode(i, name, resp.NodeId, conn), nil
}

// rotate returns addrs starting at position i (mod len).
func rotate(addrs []string, i int) []string {
	if len(addrs) == 0 {
		return nil
	}
	k := i % len(addrs)
	out := make([]string, 0, len(addrs))
	out = append(out, addrs[k:]...)
	return append(out, addrs[:k]...)
}

// RaiseFileLimit raises this process's soft limit of open files to its
// hard limit (each node holds one connection, one file descriptor) and
// returns the limit now in force. The Go runtime already does this at
// start on Linux; calling it again costs nothing and reports the figure.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
