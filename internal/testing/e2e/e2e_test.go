package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"

	"github.com/containercodes/cc/internal/pki"
)

// Timeouts. The machine may be slow and busy: they are generous, but every
// wait is bounded.
const (
	buildTimeout   = 10 * time.Minute
	runTimeout     = 60 * time.Second // one ccctl or failing cc-controlplane run
	readyTimeout   = 90 * time.Second // a server start until /readyz says 200
	stopTimeout    = 30 * time.Second // SIGTERM until exit
	outputTimeout  = 10 * time.Second // a child's output reaching our buffer
	requestTimeout = 5 * time.Second  // one HTTP request
	pollInterval   = 100 * time.Millisecond
)

// Paths of the binaries TestMain builds.
var (
	controlplaneBin string
	ctlBin          string
)

// Environment variables of the binaries; tests set them explicitly.
var ccEnvVars = []string{"CC_ADDR", "CC_TOKEN", "CC_CACERT", "CC_CONFIG", "CC_CONTEXT", "CC_OUTPUT", "CC_CONFIG_FILE"}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "cc-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// buildBinaries builds cc-controlplane, ccctl and cc-agent into dir with one
// go build.
func buildBinaries(dir string) error {
	root, err := testcluster.ModuleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build",
		"-ldflags", "-X github.com/containercodes/cc/internal/buildinfo.Version=e2e",
		"-o", dir+string(filepath.Separator),
		"./controlplane/cmd/cc-controlplane", "./ctl/cmd/ccctl", "./agent/cmd/cc-agent")
	cmd.Dir = root
	// Static, as `make build` makes them: cc-agent is also the job
	// sandboxes' init, which must run in any image.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", root, err, out)
	}
	controlplaneBin = filepath.Join(dir, "cc-controlplane")
	ctlBin = filepath.Join(dir, "ccctl")
	// In-process agents need cc-agent as their containers' logger.
	testcluster.AgentBinaryPath = filepath.Join(dir, "cc-agent")
	for _, b := range []string{controlplaneBin, ctlBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("go build did not produce %s: %v", b, err)
		}
	}
	return nil
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the real binaries")
	}
}

// ---- process helpers ------------------------------------------------------

// syncBuffer is a bytes.Buffer safe for a child's output copier and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// baseEnv is os.Environ() without any of the binaries' CC_* variables.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, v := range ccEnvVars {
			if name == v {
				drop = true
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// ctlEnv is baseEnv with CC_CONFIG at a path in a fresh temp dir that holds
// no file, so no user config leaks into a test.
func ctlEnv(t *testing.T) []string {
	return append(baseEnv(), "CC_CONFIG="+filepath.Join(t.TempDir(), "ccctl", "config.json"))
}

type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs bin to completion, within runTimeout.
func run(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: append([]string{filepath.Base(bin)}, args...), stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within %v\n%s", r.args[0], runTimeout, r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", r.args[0], err)
	}
	return r
}

// ccctl runs ccctl and fails the test unless it exits 0.
func ccctl(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, ctlBin, args...)
	if r.code != 0 {
		t.Fatalf("ccctl failed:\n%s", r)
	}
	return r
}

// freePorts returns n distinct free 127.0.0.1 ports, as host:port.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// ---- a cc-controlplane process --------------------------------------------

type ccServer struct {
	t         *testing.T
	dataDir   string
	addr      string // API host:port
	raftAddr  string
	bootstrap bool
	extra     []string // more flags, e.g. --join and --token

	cmd      *exec.Cmd
	stdout   *syncBuffer
	stderr   *syncBuffer
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

func (s *ccServer) caPath() string    { return filepath.Join(s.dataDir, "tls", "ca.crt") }
func (s *ccServer) tokenPath() string { return filepath.Join(s.dataDir, "admin.token") }

// flags are ccctl's connection flags for this server with token.
func (s *ccServer) flags(token string) []string {
	return []string{"--addr", s.addr, "--token", token, "--ca-cert", s.caPath()}
}

func (s *ccServer) output() string {
	return fmt.Sprintf("--- cc-controlplane stdout (%s)\n%s--- cc-controlplane stderr\n%s", s.addr, s.stdout.String(), s.stderr.String())
}

var errAddrInUse = errors.New("address already in use")

// startServer starts cc-controlplane on dataDir and waits until it is ready;
// addrs are the API and raft addresses, or none to pick free ports. A start
// that fails with "address already in use" is retried once (with new ports
// when they were picked here). The server is stopped, and must exit 0, when
// the test ends.
func startServer(t *testing.T, dataDir string, bootstrap bool, addrs ...string) *ccServer {
	t.Helper()
	for attempt := 1; ; attempt++ {
		api, raft := "", ""
		if len(addrs) == 2 {
			api, raft = addrs[0], addrs[1]
		} else {
			p := freePorts(t, 2)
			api, raft = p[0], p[1]
		}
		s := &ccServer{t: t, dataDir: dataDir, addr: api, raftAddr: raft, bootstrap: bootstrap}
		err := s.start()
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("graceful shutdown: %v\n%s", err, s.output())
				} else if t.Failed() {
					t.Logf("server output:\n%s", s.output())
				}
			})
			return s
		}
		if errors.Is(err, errAddrInUse) && attempt == 1 {
			t.Logf("start on %s/%s: address in use; retrying once", api, raft)
			continue
		}
		t.Fatalf("start cc-controlplane: %v\n%s", err, s.output())
	}
}

func (s *ccServer) start() error {
	args := []string{"--data-dir", s.dataDir, "--api-addr", s.addr, "--raft-addr", s.raftAddr}
	if s.bootstrap {
		args = append([]string{"--bootstrap"}, args...)
	}
	args = append(args, s.extra...)
	s.stdout, s.stderr = &syncBuffer{}, &syncBuffer{}
	s.cmd = exec.Command(controlplaneBin, args...)
	s.cmd.Env = baseEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if strings.Contains(s.stderr.String(), "address already in use") {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	return nil
}

// waitReady polls /healthz, trusting the CA once the server has written it,
// then /readyz until 200.
func (s *ccServer) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var last string
	for _, path := range []string{"/healthz", "/readyz"} {
		for {
			select {
			case <-s.exited:
				return fmt.Errorf("cc-controlplane exited before %s answered 200: %v", path, s.waitErr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not 200 within %v (last: %s)", path, readyTimeout, last)
			}
			if c, err := s.httpClient(); err != nil {
				last = err.Error()
			} else if resp, err := c.Get("https://" + s.addr + path); err != nil {
				last = err.Error()
			} else {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// httpClient trusts the cluster CA from the data dir.
func (s *ccServer) httpClient() (*http.Client, error) {
	pem, err := os.ReadFile(s.caPath())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", s.caPath())
	}
	return &http.Client{
		Timeout:   requestTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// Stop sends SIGTERM and waits for the process to exit 0 within stopTimeout.
func (s *ccServer) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("cc-controlplane had already exited: %v", s.waitErr)
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			s.stopErr = fmt.Errorf("SIGTERM: %v", err)
			return
		}
		select {
		case <-s.exited:
			if s.waitErr != nil {
				s.stopErr = fmt.Errorf("after SIGTERM: %v, want exit status 0", s.waitErr)
			}
		case <-time.After(stopTimeout):
			s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("did not exit within %v of SIGTERM; killed", stopTimeout)
		}
	})
	return s.stopErr
}

// adminToken reads admin.token and checks its mode.
func (s *ccServer) adminToken(t *testing.T) string {
	t.Helper()
	fi, err := os.Stat(s.tokenPath())
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("%s has mode %#o, want 0600", s.tokenPath(), m)
	}
	data, err := os.ReadFile(s.tokenPath())
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		t.Fatalf("%s is empty", s.tokenPath())
	}
	return tok
}

// ---- output parsing -------------------------------------------------------

type statusInfo struct {
	ClusterID, LeaderID, Version, ServerID string
	LastIndex                              uint64
}

// parseStatusJSON checks `ccctl -o json status` output.
func parseStatusJSON(t *testing.T, r result) statusInfo {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("status output is not JSON: %v\n%s", err, r)
	}
	for _, k := range []string{"cluster_id", "leader_id", "last_index"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON has no %q\n%s", k, r)
		}
	}
	var st statusInfo
	st.ClusterID, _ = m["cluster_id"].(string)
	st.LeaderID, _ = m["leader_id"].(string)
	st.Version, _ = m["version"].(string)
	st.ServerID, _ = m["server_id"].(string)
	switch v := m["last_index"].(type) {
	case string: // protojson writes 64-bit integers as strings
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Errorf("last_index %q: %v", v, err)
		}
		st.LastIndex = n
	case float64:
		st.LastIndex = uint64(v)
	default:
		t.Errorf("last_index is %T %v, want a number", v, v)
	}
	if st.ClusterID == "" || st.LeaderID == "" || st.LastIndex == 0 {
		t.Errorf("status JSON: cluster_id %q, leader_id %q, last_index %d: want all set\n%s", st.ClusterID, st.LeaderID, st.LastIndex, r)
	}
	return st
}

type tokenJSON struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Revoked bool   `json:"revoked"`
}

// createToken runs `ccctl -o json token create` and returns id and secret.
func createToken(t *testing.T, env []string, flags []string, role string) (id, secret string) {
	t.Helper()
	r := ccctl(t, env, append(append(flags, "-o", "json"), "token", "create", "--role", role, "--description", "e2e "+role)...)
	var resp struct {
		Token  tokenJSON `json:"token"`
		Secret string    `json:"secret"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp.Token.ID == "" || resp.Secret == "" {
		t.Fatalf("token create JSON (err %v): want token.id and secret\n%s", err, r)
	}
	return resp.Token.ID, resp.Secret
}

// httpDo sends one request and returns status, content type and body.
func httpDo(t *testing.T, c *http.Client, url, token string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// ---- tests ----------------------------------------------------------------

func TestCLIAndRESTAgainstRealServer(t *testing.T) {
	skipShort(t)
	s := startServer(t, t.TempDir(), true)
	token := s.adminToken(t)

	// The bootstrap prints the token once, equal to admin.token.
	if !waitFor(outputTimeout, func() bool { return strings.Contains(s.stdout.String(), token) }) {
		t.Fatalf("bootstrap stdout does not show the admin token %q from %s\n%s", token, s.tokenPath(), s.output())
	}
	m := regexp.MustCompile(`Bootstrapped cluster (\S+)\.`).FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("bootstrap stdout does not name the cluster\n%s", s.output())
	}
	clusterID := m[1]

	env := ctlEnv(t)
	flags := s.flags(token)

	// status, as a table.
	r := ccctl(t, env, append(flags, "status")...)
	if !strings.Contains(r.stdout, clusterID) || !strings.Contains(r.stdout, "Leader") {
		t.Errorf("status: want cluster id %s and \"Leader\"\n%s", clusterID, r)
	}
	if regexp.MustCompile(`Leader:\s+none`).MatchString(r.stdout) {
		t.Errorf("status shows no leader on a ready server\n%s", r)
	}

	// status, as JSON.
	st := parseStatusJSON(t, ccctl(t, env, append([]string{"-o", "json"}, append(flags, "status")...)...))
	if st.ClusterID != clusterID {
		t.Errorf("status JSON cluster_id = %q, want %q", st.ClusterID, clusterID)
	}
	if st.Version != "e2e" {
		t.Errorf("status JSON version = %q, want e2e (stamped by -ldflags)", st.Version)
	}

	// node ls: no agents yet, so the header only.
	r = ccctl(t, env, append(flags, "node", "ls")...)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "NAME") {
		t.Errorf("node ls: want only the header line\n%s", r)
	}

	// token create, as a user types it, then token ls -o json lists it.
	r = ccctl(t, env, append(flags, "token", "create", "--role", "viewer")...)
	m = regexp.MustCompile(`Token (\S+) \(viewer\) created`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("token create: want \"Token ID (viewer) created\"\n%s", r)
	}
	viewerID := m[1]
	viewerSecret := ""
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.TrimSpace(l); strings.HasPrefix(l, "  ") && f != "" {
			viewerSecret = f
		}
	}
	if viewerSecret == "" {
		t.Errorf("token create printed no secret\n%s", r)
	}
	r = run(t, env, ctlBin, append(flags, "token", "ls", "-o", "json")...)
	if r.code != 0 {
		t.Errorf("`ccctl token ls -o json` (output flag after the command) fails:\n%s", r)
		r = ccctl(t, env, append(append([]string{"-o", "json"}, flags...), "token", "ls")...)
	}
	var list struct {
		Tokens []tokenJSON `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("token ls output is not JSON: %v\n%s", err, r)
	}
	found := false
	for _, tok := range list.Tokens {
		if tok.ID == viewerID {
			found = true
			if tok.Role != "ROLE_VIEWER" || tok.Revoked {
				t.Errorf("token %s listed as %+v, want a live ROLE_VIEWER", viewerID, tok)
			}
		}
	}
	if !found {
		t.Errorf("token ls does not list the new token %s\n%s", viewerID, r)
	}

	// REST.
	c, err := s.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + s.addr
	code, ctype, body := httpDo(t, c, base+"/v1/status", "")
	if code != http.StatusUnauthorized {
		t.Errorf("GET /v1/status without token: %d %s, want 401", code, body)
	}
	var errBody map[string]any
	if !strings.HasPrefix(ctype, "application/json") || json.Unmarshal(body, &errBody) != nil || errBody["message"] == nil {
		t.Errorf("GET /v1/status without token: Content-Type %q, body %s: want a JSON error with a message", ctype, body)
	}
	for _, tok := range []string{token, viewerSecret} {
		code, ctype, body = httpDo(t, c, base+"/v1/status", tok)
		var stBody map[string]any
		if code != http.StatusOK || !strings.HasPrefix(ctype, "application/json") || json.Unmarshal(body, &stBody) != nil {
			t.Errorf("GET /v1/status with token: %d %q %s, want 200 JSON", code, ctype, body)
		} else if stBody["cluster_id"] != clusterID {
			t.Errorf("GET /v1/status: cluster_id = %v, want %s", stBody["cluster_id"], clusterID)
		}
	}
	code, _, body = httpDo(t, c, base+"/v1/openapi.json", token)
	if code != http.StatusOK || !json.Valid(body) {
		t.Errorf("GET /v1/openapi.json with token: %d, valid JSON %v, want 200 JSON", code, json.Valid(body))
	}
	if code, _, _ = httpDo(t, c, base+"/v1/openapi.json", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/openapi.json without token: %d, want 401", code)
	}
}

func TestCLIUsesContextFromConfigFile(t *testing.T) {
	skipShort(t)
	s := startServer(t, t.TempDir(), true)
	s.adminToken(t)
	cfgPath := filepath.Join(t.TempDir(), "ccctl", "config.json")
	env := append(baseEnv(), "CC_CONFIG="+cfgPath)

	set := []string{"--server", s.addr, "--token-file", s.tokenPath(), "--ca-cert-file", s.caPath(), "--use"}
	r := run(t, env, ctlBin, append([]string{"context", "set", "dev"}, set...)...)
	if r.code != 0 {
		t.Errorf("`ccctl context set NAME --server ...` (the form README.md documents) fails:\n%s", r)
		r = ccctl(t, env, append(append([]string{"context", "set"}, set...), "dev")...)
	}
	if !strings.Contains(r.stdout, cfgPath) {
		t.Errorf("context set does not say where it saved\n%s", r)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatalf("context set wrote no %s: %v", cfgPath, err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("%s has mode %#o, want 0600 (it holds a token)", cfgPath, m)
	}

	// No --addr/--token/--ca-cert, no CC_ADDR/CC_TOKEN/CC_CACERT.
	r = ccctl(t, env, "-o", "json", "status")
	parseStatusJSON(t, r)
	r = ccctl(t, env, "status")
	if !strings.Contains(r.stdout, "Leader") {
		t.Errorf("status through the context: want \"Leader\"\n%s", r)
	}
	r = ccctl(t, env, "context", "ls")
	if !regexp.MustCompile(`(?m)^\*\s+dev\s+` + regexp.QuoteMeta(s.addr)).MatchString(r.stdout) {
		t.Errorf("context ls: want dev current at %s\n%s", s.addr, r)
	}
}

func TestRestartKeepsIdentityAndIndex(t *testing.T) {
	skipShort(t)
	dataDir := t.TempDir()
	s1 := startServer(t, dataDir, true)
	admin := s1.adminToken(t)
	env := ctlEnv(t)
	before := parseStatusJSON(t, ccctl(t, env, append([]string{"-o", "json"}, append(s1.flags(admin), "status")...)...))
	viewerID, viewerSecret := createToken(t, env, s1.flags(admin), "viewer")
	if err := s1.Stop(); err != nil {
		t.Fatalf("graceful shutdown: %v\n%s", err, s1.output())
	}

	s2 := startServer(t, dataDir, false, s1.addr, s1.raftAddr)
	after := parseStatusJSON(t, ccctl(t, env, append([]string{"-o", "json"}, append(s2.flags(admin), "status")...)...))
	if after.ClusterID != before.ClusterID {
		t.Errorf("cluster_id after restart = %q, want %q", after.ClusterID, before.ClusterID)
	}
	if after.LastIndex < before.LastIndex {
		t.Errorf("last_index after restart = %d, want >= %d", after.LastIndex, before.LastIndex)
	}
	if got := s2.adminToken(t); got != admin {
		t.Errorf("admin.token changed on restart: %q, want %q", got, admin)
	}
	// The old admin token and the created viewer token still work.
	ccctl(t, env, append(s2.flags(admin), "node", "ls")...)
	r := ccctl(t, env, append(s2.flags(viewerSecret), "status")...)
	if !strings.Contains(r.stdout, before.ClusterID) {
		t.Errorf("status with the viewer token after restart: want %s\n%s", before.ClusterID, r)
	}
	r = ccctl(t, env, append([]string{"-o", "json"}, append(s2.flags(admin), "token", "ls")...)...)
	if !strings.Contains(r.stdout, viewerID) {
		t.Errorf("token ls after restart does not list %s\n%s", viewerID, r)
	}

	// Stop to flush its output, then check the restart printed no token.
	if err := s2.Stop(); err != nil {
		t.Fatalf("graceful shutdown: %v\n%s", err, s2.output())
	}
	if out := s2.stdout.String(); strings.Contains(out, admin) || strings.Contains(out, "token") || strings.Contains(out, "Bootstrapped") {
		t.Errorf("restart without --bootstrap printed a bootstrap message or token on stdout:\n%s", out)
	}
}

func TestBadInputGivesOneLineErrors(t *testing.T) {
	skipShort(t)
	s := startServer(t, t.TempDir(), true)
	admin := s.adminToken(t)
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	syntaxBad := write("syntax.toml", "data_dir = \"/d\"\n\nname = \n")
	twoProblems := write("two.toml", "data_dir = \"/d\"\n[log]\nlevel = \"loud\"\nformat = \"xml\"\n")
	other, err := pki.NewCA("c-another-cluster", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCA := write("other-ca.crt", string(other.CertPEM))
	ports := freePorts(t, 3)

	tests := []struct {
		name  string
		bin   string
		env   []string // nil: ctlEnv
		args  []string
		hints []string // stderr mentions one of them
		check func(t *testing.T, r result)
	}{
		{name: "ccctl unknown flag", bin: ctlBin, args: []string{"--bogus", "status"}, hints: []string{"--help", "flag"}},
		{name: "cc-controlplane unknown flag", bin: controlplaneBin, args: []string{"--bogus"}, hints: []string{"--help", "flag"}},
		{
			name: "malformed config", bin: controlplaneBin,
			args:  []string{"--config", syntaxBad, "--data-dir", filepath.Join(tmp, "d-syntax"), "--api-addr", ports[0], "--raft-addr", ports[1]},
			hints: []string{"line"},
		},
		{
			name: "config validate two problems", bin: controlplaneBin,
			args: []string{"config", "validate", twoProblems},
			check: func(t *testing.T, r result) {
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				if r.stdout != "" {
					t.Errorf("stdout not empty")
				}
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				if len(lines) != 3 {
					t.Fatalf("want 3 stderr lines (two problems and a summary), got %d", len(lines))
				}
				for i, want := range []string{"line 3", "line 4"} {
					if !strings.Contains(lines[i], twoProblems) || !strings.Contains(lines[i], want) {
						t.Errorf("stderr line %d = %q, want the file and %q", i+1, lines[i], want)
					}
				}
				if !strings.HasPrefix(lines[0], twoProblems+": line 3: log.level") || !strings.HasPrefix(lines[1], twoProblems+": line 4: log.format") {
					t.Errorf("problems not one per line with key: %q", lines[:2])
				}
				if !strings.HasPrefix(lines[2], "cc-controlplane: ") || !strings.Contains(lines[2], "2 problem") {
					t.Errorf("last line = %q, want \"cc-controlplane: ...: 2 problem(s)\"", lines[2])
				}
			},
		},
		{
			name: "wrong --addr", bin: ctlBin,
			args:  []string{"--addr", "127.0.0.1:1", "--token", admin, "--ca-cert", s.caPath(), "status"},
			hints: []string{"--addr", "CC_ADDR"},
		},
		{
			name: "wrong token", bin: ctlBin,
			args:  []string{"--addr", s.addr, "--token", "CCAPI-1-0000000000000000-notavalidsecret", "--ca-cert", s.caPath(), "status"},
			hints: []string{"token"},
		},
		{
			name: "CA of another cluster", bin: ctlBin,
			args:  []string{"--addr", s.addr, "--token", admin, "--ca-cert", otherCA, "status"},
			hints: []string{"CA", "ca-cert"},
		},
		{name: "no config at all", bin: ctlBin, args: []string{"status"}, hints: []string{"make dev"}},
		{
			name: "empty data dir without --bootstrap", bin: controlplaneBin, env: baseEnv(),
			args:  []string{"--data-dir", filepath.Join(tmp, "empty"), "--api-addr", ports[0], "--raft-addr", ports[1]},
			hints: []string{"--bootstrap"},
		},
		{
			name: "API port in use", bin: controlplaneBin, env: baseEnv(),
			args:  []string{"--bootstrap", "--data-dir", filepath.Join(tmp, "second"), "--api-addr", s.addr, "--raft-addr", ports[2]},
			hints: []string{s.addr},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = ctlEnv(t)
			}
			r := run(t, env, tt.bin, tt.args...)
			if tt.check != nil {
				tt.check(t, r)
				if t.Failed() {
					t.Logf("\n%s", r)
				}
				return
			}
			if r.code == 0 {
				t.Errorf("exit 0, want non-zero")
			}
			line := strings.TrimSuffix(r.stderr, "\n")
			if line == "" || strings.Contains(line, "\n") || !strings.HasSuffix(r.stderr, "\n") {
				t.Errorf("stderr is not exactly one non-empty line")
			}
			if prog := filepath.Base(tt.bin) + ": "; !strings.HasPrefix(line, prog) {
				t.Errorf("stderr does not start with %q", prog)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty")
			}
			hinted := false
			for _, h := range tt.hints {
				hinted = hinted || strings.Contains(line, h)
			}
			if !hinted {
				t.Errorf("stderr mentions none of %q", tt.hints)
			}
			if strings.Count(line, `"`)%2 != 0 {
				t.Errorf("stderr has an unbalanced double quote (a cut-off quoted part)")
			}
			if t.Failed() {
				t.Logf("\n%s", r)
			}
		})
	}
}
