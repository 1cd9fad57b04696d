// Package testcluster starts control planes in-process for integration
// tests: each on 127.0.0.1 with OS-chosen ports and a t.TempDir() data dir,
// handing back an authenticated client. Every integration test reuses it:
// one server (Start) or N (StartCluster), M agents on real containerd
// (StartAgent), and helpers to stop, restart and partition them.
package testcluster

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testimage"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Server is one in-process control plane.
type Server struct {
	t      testing.TB
	Config config.Config
	Srv    *server.Server
	Token  string // the admin token from bootstrap
	CACert []byte
	// Faults partitions this server's raft transport (see Cluster.Partition).
	Faults  *raftstore.Faults
	stopped bool
}

// NodeDownAfter is how long a node may go without a session before the
// leader marks it down, in tests: short, so that tests of node health do not
// wait long, yet several heartbeats of the harness's agents (500ms).
const NodeDownAfter = 3 * time.Second

// CertPollInterval is how often a test server checks its tls_cert_file and
// tls_key_file for a change: short, so that a test of the reload waits
// little.
const CertPollInterval = 100 * time.Millisecond

// TraceBatchTimeout is how long a finished span waits before a test
// server or agent sends it (with tracing on): short, so that a test of
// the traces waits little.
const TraceBatchTimeout = 100 * time.Millisecond

// WithTracing points the server's [tracing] section at an OTLP/gRPC
// receiver on endpoint (plaintext), keeping every trace.
func WithTracing(endpoint string) Option {
	return func(c *Config) {
		c.Tracing = config.TracingConfig{Endpoint: endpoint, SampleRatio: 1, Insecure: true}
	}
}

// Config is the server configuration an Option changes.
type Config = config.Config

// Option changes a server's configuration before it starts.
type Option func(*Config)

// Start bootstraps a single-server cluster and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := startServer(t, opts...)
	s.Token = s.Srv.AdminToken()
	if s.Token == "" {
		t.Fatal("testcluster: bootstrap created no admin token")
	}
	return s
}

func startServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Bootstrap = true
	cfg.APIAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	// Quicker elections than production (a test must not wait seconds for
	// a lone leader), but not so quick that a race-built test process on a
	// busy two-core machine, starved for a few hundred milliseconds, loses
	// its leader.
	cfg.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
	cfg.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{t: t, Config: cfg, Faults: &raftstore.Faults{}}
	s.start()
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, s.Config, server.Options{Logger: logging.Test(s.t).With("server", s.Config.DataDir), Faults: s.Faults, NodeDownAfter: NodeDownAfter,
		CertPollInterval: CertPollInterval, TraceBatchTimeout: TraceBatchTimeout})
	if err != nil {
		s.t.Fatalf("testcluster: start control plane: %v", err)
	}
	s.Srv = srv
	s.CACert = srv.CACertPEM()
	if err := srv.WaitReady(ctx); err != nil {
		s.t.Fatalf("testcluster: %v", err)
	}
	s.stopped = false
}

// Stop shuts the server down gracefully. Stopping twice is fine.
func (s *Server) Stop() {
	s.t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Srv.Close(ctx); err != nil {
		s.t.Errorf("testcluster: stop: %v", err)
	}
}

// Restart stops the server and starts it again on the same data dir and the
// same ports.
func (s *Server) Restart() {
	s.t.Helper()
	api, raftAddr := s.Srv.Addr(), s.Srv.RaftAddr()
	s.Stop()
	s.Config.APIAddr, s.Config.RaftAddr = api, raftAddr
	s.Config.Bootstrap = false
	s.start()
}

// Addr is the API address.
func (s *Server) Addr() string { return s.Srv.Addr() }

// URL is the REST base URL, e.g. https://127.0.0.1:34567.
func (s *Server) URL() string { return "https://" + s.Srv.Addr() }

// TLSConfig trusts the cluster CAs the server trusts now (after a CA
// rotation, the new one too).
func (s *Server) TLSConfig() *tls.Config {
	s.t.Helper()
	ca := s.CACert
	if s.Srv != nil {
		ca = s.Srv.CACertPEM()
	}
	pool, err := pki.Pool(ca)
	if err != nil {
		s.t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(s.Addr())
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
}

// HTTPClient trusts the cluster CA; it sends no token by itself.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: s.TLSConfig(), ForceAttemptHTTP2: true}}
}

// Conn dials the API with token (the admin token when token is "").
func (s *Server) Conn(token string) *grpc.ClientConn {
	s.t.Helper()
	if token == "" {
		token = s.Token
	}
	// Like ccctl, it offers pki.ALPNGRPC (gRPC's own transport on the
	// server); ConnH2 dials without it.
	return s.dial(token, pki.OfferGRPCOnly(s.TLSConfig()))
}

// ConnH2 is Conn for a gRPC client that offers only "h2", as clients other
// than ours do: the server serves its calls through its HTTP server.
func (s *Server) ConnH2(token string) *grpc.ClientConn {
	s.t.Helper()
	if token == "" {
		token = s.Token
	}
	return s.dial(token, s.TLSConfig())
}

func (s *Server) dial(token string, tlsConfig *tls.Config) *grpc.ClientConn {
	s.t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig))}
	if token != "-" {
		opts = append(opts, grpc.WithPerRPCCredentials(clusterdial.Bearer(token)))
	}
	conn, err := grpc.NewClient(s.Addr(), opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

// Client is an authenticated set of API clients.
type Client struct {
	Cluster    ccv1.ClusterServiceClient
	Nodes      ccv1.NodeServiceClient
	Tokens     ccv1.TokenServiceClient
	Containers ccv1.ContainerServiceClient
	Images     ccv1.ImageServiceClient
	Services   ccv1.ServiceServiceClient
	Jobs       ccv1.JobServiceClient
	Edge       ccv1.EdgeServiceClient
	Certs      ccv1.CertServiceClient
	Volumes    ccv1.VolumeServiceClient
}

// Client returns API clients using the admin token.
func (s *Server) Client() *Client {
	conn := s.Conn("")
	return &Client{
		Cluster:    ccv1.NewClusterServiceClient(conn),
		Nodes:      ccv1.NewNodeServiceClient(conn),
		Tokens:     ccv1.NewTokenServiceClient(conn),
		Containers: ccv1.NewContainerServiceClient(conn),
		Images:     ccv1.NewImageServiceClient(conn),
		Services:   ccv1.NewServiceServiceClient(conn),
		Jobs:       ccv1.NewJobServiceClient(conn),
		Edge:       ccv1.NewEdgeServiceClient(conn),
		Certs:      ccv1.NewCertServiceClient(conn),
		Volumes:    ccv1.NewVolumeServiceClient(conn),
	}
}

// LoadImage uploads an image archive, as `ccctl image load` does.
func (c *Client) LoadImage(t testing.TB, archive []byte) *ccv1.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := c.Images.LoadImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Header{Header: &ccv1.LoadImageHeader{Size: int64(len(archive))}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: archive}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.CloseAndRecv()
	if err != nil {
		t.Fatalf("load image: %v", err)
	}
	return r.Image
}

// LoadBusybox builds the busybox test image under name and loads it.
func (c *Client) LoadBusybox(t testing.TB, name string) *ccv1.Image {
	t.Helper()
	data, err := testimage.BuildBusybox(name)
	if err != nil {
		t.Fatal(err)
	}
	return c.LoadImage(t, data)
}
