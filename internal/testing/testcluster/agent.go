package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/cli"
	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/agent/worker"
	"github.com/containercodes/cc/internal/logging"
	imetrics "github.com/containercodes/cc/internal/metrics"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ContainerdSocket is where tests find containerd.
const ContainerdSocket = "/run/containerd/containerd.sock"

// RequireContainerd skips a test in -short mode and fails it when containerd
// does not answer: `make test` starts it (scripts/prereqs.sh).
func RequireContainerd(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs containerd; skipped in -short mode")
	}
	if _, err := os.Stat(ContainerdSocket); err != nil {
		t.Fatalf("containerd is not running (%v): run `bash scripts/prereqs.sh` as root", err)
	}
}

// AgentBinaryPath, when set (by a TestMain that builds cc-agent and removes
// it afterwards), is used instead of building cc-agent into a temp dir that
// outlives the test process.
var AgentBinaryPath string

var (
	agentBinOnce sync.Once
	agentBin     string
	agentBinErr  error
)

// AgentBinary builds cc-agent once per test process: containerd's shim runs
// it as the containers' logger.
func AgentBinary(t testing.TB) string {
	t.Helper()
	if AgentBinaryPath != "" {
		return AgentBinaryPath
	}
	agentBinOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			agentBinErr = err
			return
		}
		dir, err := os.MkdirTemp("", "cc-agent-bin-")
		if err != nil {
			agentBinErr = err
			return
		}
		agentBin = filepath.Join(dir, "cc-agent")
		// Static, as `make build` makes it: it is also the job
		// sandboxes' init, which runs in any image.
		cmd := exec.Command("go", "build", "-o", agentBin, "./agent/cmd/cc-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("go build cc-agent: %v\n%s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatal(agentBinErr)
	}
	return agentBin
}

// ModuleRoot is the directory of go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Agent is an in-process agent on real containerd, in a containerd
// namespace, bridge and subnet of its own, removed when the test ends.
type Agent struct {
	t        testing.TB
	Name     string
	DataDir  string
	ID       *identity.Identity
	rtConfig runtime.Config
	hello    *ccv1.SessionHello
	edge     worker.Edge
	edgeAddr string
	httpsIn  string // the --edge-https-addr asked for
	tracing  tracing.Settings
	tp       *tracing.Provider // while it runs
	Runtime  *runtime.Runtime
	// EdgeAddr is where the agent's edge serves HTTP while it runs (with
	// WithEdgeHTTPAddr), its port chosen by the kernel for ":0".
	EdgeAddr string
	// EdgeHTTPSAddr is where the agent's edge serves HTTPS while it runs
	// (with WithEdgeHTTPSAddr), its port chosen by the kernel for ":0";
	// "" without HTTPS.
	EdgeHTTPSAddr string
	// Metrics is the agent's metrics while it runs (a registry of its
	// own, new at each start).
	Metrics *metrics.Metrics
	// MetricsAddr is where the agent serves /metrics while it runs (with
	// WithMetricsAddr), its port chosen by the kernel for ":0"; "" without.
	MetricsAddr string
	metricsIn   string // the address asked for
	metricsLn   *imetrics.Listener

	cancel context.CancelFunc
	done   chan error
}

// subnetSeq gives each agent of the test process a subnet of its own.
var subnetSeq atomic.Int32

// AgentConfig is what an AgentOption may change.
type AgentConfig struct {
	Runtime runtime.Config
	// Resources are what the agent reports (default 2 CPUs, 4 GiB).
	Resources *ccv1.Resources
	// Labels are the agent's --label flags.
	Labels map[string]string
	// AdvertiseAddr is the agent's --advertise-addr: where its relays
	// listen and other nodes reach it (default 127.0.0.1; tests with
	// several agents give each a loopback address of its own, such as
	// 127.0.0.2 and 127.0.0.3).
	AdvertiseAddr string
	// EdgeHTTPAddr is the agent's --edge-http-addr; empty: no edge
	// server (as --edge=false).
	EdgeHTTPAddr string
	// EdgeHTTPSAddr is the agent's --edge-https-addr (with an edge
	// server); empty: no HTTPS.
	EdgeHTTPSAddr string
	// Edge, when set, receives the agent's edge configuration instead of
	// an edge server (a test's recorder).
	Edge worker.Edge
	// Tracing is the agent's --tracing-* flags; off by default.
	Tracing tracing.Settings
	// MetricsAddr is the agent's --metrics-addr; empty (the harness's
	// default, unlike cc-agent's): none, so that agents never collide on
	// a port.
	MetricsAddr string
}

// AgentOption changes an agent before it starts.
type AgentOption func(*AgentConfig)

// WithResources makes the agent report res.
func WithResources(cpuMillis, memoryBytes int64) AgentOption {
	return func(c *AgentConfig) { c.Resources = &ccv1.Resources{CpuMillis: cpuMillis, MemoryBytes: memoryBytes} }
}

// WithAdvertiseAddr sets the agent's advertise address (an IP).
func WithAdvertiseAddr(ip string) AgentOption {
	return func(c *AgentConfig) { c.AdvertiseAddr = ip }
}

// WithEdgeHTTPAddr makes the agent serve the edge on addr (e.g.
// 127.0.0.1:0).
func WithEdgeHTTPAddr(addr string) AgentOption {
	return func(c *AgentConfig) { c.EdgeHTTPAddr = addr }
}

// WithEdgeHTTPSAddr makes the agent's edge serve HTTPS on addr (e.g.
// 127.0.0.1:0); it needs WithEdgeHTTPAddr.
func WithEdgeHTTPSAddr(addr string) AgentOption {
	return func(c *AgentConfig) { c.EdgeHTTPSAddr = addr }
}

// WithAgentTracing sends the agent's spans to an OTLP/gRPC receiver on
// endpoint (plaintext), keeping every trace.
func WithAgentTracing(endpoint string) AgentOption {
	return func(c *AgentConfig) {
		c.Tracing = tracing.Settings{Endpoint: endpoint, SampleRatio: 1, Insecure: true, BatchTimeout: TraceBatchTimeout}
	}
}

// WithMetricsAddr makes the agent serve /metrics on addr (e.g.
// 127.0.0.1:0).
func WithMetricsAddr(addr string) AgentOption {
	return func(c *AgentConfig) { c.MetricsAddr = addr }
}

// WithEdge hands the agent's edge configuration to e.
func WithEdge(e worker.Edge) AgentOption {
	return func(c *AgentConfig) { c.Edge = e }
}

// WithLabels gives the agent labels, as its --label flags would: reported
// labels, which constraints see as node.reported.KEY only. For node.labels
// constraints, set operator labels with the Nodes client (UpdateNode).
func WithLabels(labels map[string]string) AgentOption {
	return func(c *AgentConfig) { c.Labels = labels }
}

// WithJobGatewayAllowed puts the agent's job bridge gateway (JobGateway)
// on its job egress allow-list, so that jobs with network reach a server
// the test runs there.
func WithJobGatewayAllowed() AgentOption {
	return func(c *AgentConfig) {
		c.Runtime.JobEgressAllow = append(c.Runtime.JobEgressAllow, firstAddr(c.Runtime.JobSubnet)+"/32")
	}
}

// WithBindMountAllow lets the agent's containers bind mount host paths
// under prefix, as its --bind-mount-allow flag does.
func WithBindMountAllow(prefix string) AgentOption {
	return func(c *AgentConfig) { c.Runtime.BindMountAllow = append(c.Runtime.BindMountAllow, prefix) }
}

// StateDir is the agent runtime's state directory (its volumes are under
// volumes/).
func (a *Agent) StateDir() string { return a.rtConfig.StateDir }

// StartAgent joins a new agent named name to the cluster (with a fresh
// single-use join token) and runs it.
func (s *Server) StartAgent(name string, opts ...AgentOption) *Agent {
	s.t.Helper()
	RequireContainerd(s.t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := s.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: 1})
	if err != nil {
		s.t.Fatalf("testcluster: join token: %v", err)
	}
	dir := s.t.TempDir()
	suffix := randomHex(3)
	cfg := AgentConfig{Resources: &ccv1.Resources{CpuMillis: 2000, MemoryBytes: 4 << 30}, AdvertiseAddr: "127.0.0.1"}
	seq := subnetSeq.Add(1)
	cfg.Runtime = runtime.Config{
		Socket:        ContainerdSocket,
		Namespace:     "cc-test-" + suffix,
		StateDir:      filepath.Join(dir, "runtime"),
		CNIBinDir:     "/usr/lib/cni",
		BridgeName:    "cct" + suffix,
		Subnet:        fmt.Sprintf("10.214.%d.0/24", 1+int(seq)%250),
		JobBridgeName: "ccj" + suffix,
		JobSubnet:     fmt.Sprintf("10.216.%d.0/24", 1+int(seq)%250),
		LoggerPath:    AgentBinary(s.t),
		InitPath:      AgentBinary(s.t),
		Logger:        logging.Test(s.t).With("agent", name),
	}
	for _, o := range opts {
		o(&cfg)
	}
	id, err := identity.Join(ctx, filepath.Join(dir, "identity"), identity.JoinOptions{
		Addr: s.Addr(), Token: tok.Secret, Name: name, Labels: cfg.Labels,
		Resources: cfg.Resources, Address: cfg.AdvertiseAddr, Version: "test",
	})
	if err != nil {
		s.t.Fatalf("testcluster: join %s: %v", name, err)
	}
	cfg.Runtime.Owner = id.NodeID
	hello := &ccv1.SessionHello{Version: "test", Resources: cfg.Resources, Labels: cfg.Labels, Address: cfg.AdvertiseAddr,
		Edge: cfg.Edge != nil || cfg.EdgeHTTPAddr != ""}
	a := &Agent{t: s.t, Name: name, DataDir: dir, ID: id, rtConfig: cfg.Runtime, hello: hello, edge: cfg.Edge,
		edgeAddr: cfg.EdgeHTTPAddr, httpsIn: cfg.EdgeHTTPSAddr, tracing: cfg.Tracing, metricsIn: cfg.MetricsAddr}
	a.start()
	s.t.Cleanup(func() { a.Stop(); a.cleanup() })
	return a
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *Agent) start() {
	a.t.Helper()
	tp, err := cli.StartTracing(a.tracing, a.ID.NodeID, a.Name)
	if err != nil {
		a.t.Fatalf("testcluster: agent tracing: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := metrics.New(imetrics.NewRegistry(), "test", a.ID.NodeID)
	rc := a.rtConfig
	rc.Tracing = tp
	rc.Metrics = m
	rt, err := runtime.New(ctx, rc)
	if err != nil {
		cancel()
		tp.Shutdown(context.Background())
		a.t.Fatalf("testcluster: agent runtime: %v", err)
	}
	a.Metrics, a.MetricsAddr, a.metricsLn = m, "", nil
	if a.metricsIn != "" {
		if a.metricsLn, err = imetrics.Listen(a.metricsIn, imetrics.Handler(m.Registry(), a.rtConfig.Logger), a.rtConfig.Logger); err != nil {
			cancel()
			rt.Close()
			a.t.Fatalf("testcluster: agent metrics: %v", err)
		}
		a.MetricsAddr = a.metricsLn.Addr().String()
	}
	e, stopEdge := a.edge, func() {}
	if e == nil && a.edgeAddr != "" {
		srv, stop, err := cli.StartEdge(cli.EdgeOptions{Enabled: true, HTTPAddr: a.edgeAddr, HTTPSAddr: a.httpsIn, AccessLog: "off", Tracing: tp, Metrics: m}, a.ID.NodeID, a.rtConfig.Logger.With("component", "edge"))
		if err != nil {
			cancel()
			rt.Close()
			tp.Shutdown(context.Background())
			a.t.Fatalf("testcluster: agent edge: %v", err)
		}
		e, stopEdge = srv, stop
		a.EdgeAddr = srv.(interface{ Addr() net.Addr }).Addr().String()
		if h := srv.(interface{ HTTPSAddr() net.Addr }).HTTPSAddr(); h != nil {
			a.EdgeHTTPSAddr = h.String()
		}
	}
	w, err := worker.New(worker.Config{
		Identity:  a.ID,
		Runtime:   rt,
		Hello:     a.hello,
		Logger:    a.rtConfig.Logger,
		Heartbeat: 500 * time.Millisecond,
		Resync:    time.Second,
		DataDir:   a.DataDir,
		Edge:      e,
		Tracing:   tp,
		Metrics:   m,
	})
	if err != nil {
		cancel()
		stopEdge()
		rt.Close()
		tp.Shutdown(context.Background())
		if a.metricsLn != nil {
			a.metricsLn.Close(context.Background())
		}
		a.t.Fatalf("testcluster: agent worker: %v", err)
	}
	a.Runtime, a.cancel, a.done, a.tp = rt, cancel, make(chan error, 1), tp
	go func() {
		err := w.Run(ctx)
		stopEdge()
		a.done <- err
	}()
}

// Stop stops the agent as a kill would: its containers keep running.
func (a *Agent) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.Runtime.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.tp.Shutdown(ctx)
	if a.metricsLn != nil {
		a.metricsLn.Close(ctx)
		a.metricsLn = nil
	}
	a.cancel = nil
}

// Restart stops the agent and starts it again on the same data dir.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	a.start()
}

// cleanup removes everything the agent left in containerd and on the host.
func (a *Agent) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt, err := runtime.New(ctx, a.rtConfig)
	if err != nil {
		a.t.Logf("cleanup: %v", err)
		return
	}
	defer rt.Close()
	if err := rt.Purge(ctx); err != nil {
		a.t.Errorf("cleanup of agent %s: %v", a.Name, err)
	}
	for _, br := range []string{a.rtConfig.BridgeName, a.rtConfig.JobBridgeName} {
		_ = exec.Command("ip", "link", "del", br).Run()
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", br))
	}
}

// Gateway is the address of the agent's container bridge on its node (the
// first address of its subnet).
func (a *Agent) Gateway() string { return firstAddr(a.rtConfig.Subnet) }

// JobGateway is the address of the agent's job bridge on its node: what a
// job with network reaches the node at, if the agent's job egress
// allow-list lets it (AgentConfig.Runtime.JobEgressAllow).
func (a *Agent) JobGateway() string { return firstAddr(a.rtConfig.JobSubnet) }

// firstAddr is the first address of an IPv4 subnet.
func firstAddr(subnet string) string {
	ip, _, err := net.ParseCIDR(subnet)
	if err != nil {
		return ""
	}
	ip4 := ip.To4()
	return net.IPv4(ip4[0], ip4[1], ip4[2], ip4[3]+1).String()
}

// Address is the agent's advertise address.
func (a *Agent) Address() string { return a.hello.Address }

// BridgeName is the name of the agent's CNI bridge.
func (a *Agent) BridgeName() string { return a.rtConfig.BridgeName }
