package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containercodes/cc/agent/runtime/internal/logger"
	"github.com/containercodes/cc/internal/testing/tartest"
	"github.com/containercodes/cc/internal/testing/testimage"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const testImage = "cc-runtime-test"

var (
	loggerOnce sync.Once
	loggerPath string
	loggerErr  error
	loggerDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if loggerDir != "" {
		os.RemoveAll(loggerDir)
	}
	os.Exit(code)
}

// buildLogger builds the test logger binary once per test process.
func buildLogger(t *testing.T) string {
	t.Helper()
	loggerOnce.Do(func() {
		loggerDir, loggerErr = os.MkdirTemp("", "cc-runtime-logger-")
		if loggerErr != nil {
			return
		}
		loggerPath = filepath.Join(loggerDir, "cc-logger")
		out, err := exec.Command("go", "build", "-o", loggerPath, "github.com/containercodes/cc/agent/runtime/internal/loggertest").CombinedOutput()
		if err != nil {
			loggerErr = fmt.Errorf("build logger: %v\n%s", err, out)
		}
	})
	if loggerErr != nil {
		t.Fatal(loggerErr)
	}
	return loggerPath
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testConfig is a configuration of its own for one test: namespace, state
// directory, bridge, subnet.
func testConfig(t *testing.T) Config {
	t.Helper()
	if testing.Short() {
		t.Skip("needs containerd (skipped with -short)")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(DefaultSocket); err != nil {
		t.Skipf("containerd is not running (%v); start it with scripts/prereqs.sh", err)
	}
	suffix := randHex(2)
	var b [1]byte
	_, _ = rand.Read(b[:])
	return Config{
		Namespace:     "cc-test-" + randHex(4),
		StateDir:      t.TempDir(),
		BridgeName:    "cct" + suffix,
		Subnet:        fmt.Sprintf("10.213.%d.0/24", 1+int(b[0])%250),
		JobBridgeName: "ccj" + suffix,
		JobSubnet:     fmt.Sprintf("10.89.%d.0/24", 1+int(b[0])%250),
		LoggerPath:    buildLogger(t),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newTestRuntime returns a runtime with the test image loaded, and removes
// everything it made when the test ends.
func newTestRuntime(t *testing.T) (*Runtime, Config) {
	t.Helper()
	return newTestRuntimeWith(t, testConfig(t))
}

// newTestRuntimeWith is newTestRuntime with a configuration of the test's
// (from testConfig).
func newTestRuntimeWith(t *testing.T, cfg Config) (*Runtime, Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupRuntime(t, cfg) })
	t.Cleanup(func() { r.Close() })
	if err := r.EnsureImage(ctx, testImage, func(context.Context) (io.ReadCloser, error) {
		b, err := testimage.BuildBusybox(testImage)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}); err != nil {
		t.Fatal(err)
	}
	return r, cfg
}

// cleanupRuntime removes the containers, images, namespace, cgroups,
// network namespaces and bridge of a test.
func cleanupRuntime(t *testing.T, cfg Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer r.Close()
	if err := r.Purge(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if strings.Contains(line, filepath.Join(cfg.StateDir, "jobs")+"/") {
				t.Errorf("cleanup: mount left under the jobs directory: %s", line)
			}
		}
	}
	left, _ := filepath.Glob(filepath.Join(DefaultNetNSDir, cfg.Namespace+"-*"))
	for _, p := range left {
		t.Errorf("cleanup: network namespace %s left behind", p)
		_ = removeNetNS(p)
	}
	for _, br := range []string{cfg.BridgeName, cfg.JobBridgeName} {
		if _, err := net.InterfaceByName(br); err == nil {
			if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
				t.Errorf("cleanup: delete bridge %s: %v %s", br, err, out)
			}
		}
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", br))
	}
	// Purge removed the job network's chains.
	for _, tool := range []string{"iptables", "ip6tables"} {
		if out, err := exec.Command(tool, "-w", "-S").CombinedOutput(); err == nil && strings.Contains(string(out), "-"+cfg.JobBridgeName) {
			t.Errorf("cleanup: %s rules of the job bridge %s left behind:\n%s", tool, cfg.JobBridgeName, out)
		}
	}
}

func spec(cmd ...string) *ccv1.ContainerSpec {
	return &ccv1.ContainerSpec{
		Image:   testImage,
		Command: cmd,
		Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
	}
}

func start(t *testing.T, r *Runtime, s *ccv1.ContainerSpec) string {
	t.Helper()
	id := "c" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Start(ctx, Task{ID: id, Name: "test-" + id, Generation: 7, Spec: s}); err != nil {
		t.Fatal(err)
	}
	return id
}

func find(t *testing.T, r *Runtime, id string) (Observed, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list {
		if o.ID == id {
			return o, true
		}
	}
	return Observed{}, false
}

// waitState polls List until the container reaches state (bounded).
func waitState(t *testing.T, r *Runtime, id string, state ccv1.ContainerState) Observed {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		o, ok := find(t, r, id)
		if ok && o.State == state {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: %+v (found %v), want state %s", id, o, ok, stateName(state))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logs returns the container's stdout and stderr once its task is done.
func logs(t *testing.T, r *Runtime, id string, tail int64) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var o, e strings.Builder
	err := r.Logs(ctx, id, tail, true, func(stream string, data []byte) error {
		if stream == "stdout" {
			o.Write(data)
		} else {
			e.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("logs of %s did not end", id)
	}
	return o.String(), e.String()
}

// liveEvents subscribes to the runtime's events and proves the subscription
// is live (it starts asynchronously) with probe containers whose exit it
// reports, rather than by waiting a while.
func liveEvents(ctx context.Context, t *testing.T, r *Runtime) <-chan string {
	t.Helper()
	events := r.Events(ctx)
	for try := 0; try < 5; try++ {
		probe := start(t, r, spec("/bin/busybox", "true"))
		timeout := time.After(5 * time.Second)
		for waiting := true; waiting; {
			select {
			case ev := <-events:
				if ev == probe {
					return events
				}
			case <-timeout:
				waiting = false
			}
		}
	}
	t.Fatal("the event subscription never reported a probe container's exit")
	return nil
}

func TestEchoExitsAndLogs(t *testing.T) {
	r, _ := newTestRuntime(t)
	ectx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := liveEvents(ectx, t, r)

	id := start(t, r, spec("/bin/busybox", "echo", "hello"))
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if o.ExitCode != 0 || o.OOMKilled || o.Name != "test-"+id || o.Generation != 7 {
		t.Errorf("observed %+v", o)
	}
	if o.StartedAt.IsZero() || o.FinishedAt.IsZero() || o.FinishedAt.Before(o.StartedAt.Add(-time.Second)) {
		t.Errorf("times: started %v finished %v", o.StartedAt, o.FinishedAt)
	}
	stdout, stderr := logs(t, r, id, 0)
	if stdout != "hello\n" || stderr != "" {
		t.Errorf("logs: stdout %q stderr %q", stdout, stderr)
	}

	timeout := time.After(30 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-events:
			got = ev == id
		case <-timeout:
			t.Fatal("no exit event")
		}
	}
}

func TestExitCode(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/sh", "-c", "echo oops >&2; exit 3"))
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if o.ExitCode != 3 || o.OOMKilled {
		t.Errorf("observed %+v", o)
	}
	if _, stderr := logs(t, r, id, 0); stderr != "oops\n" {
		t.Errorf("stderr %q", stderr)
	}
}

func TestOOMKilled(t *testing.T) {
	r, _ := newTestRuntime(t)
	ectx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := liveEvents(ectx, t, r)

	// dd holds its 64 MiB block in memory.
	s := spec("/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	s.Resources = &ccv1.ContainerResources{MemoryBytes: 16 << 20}
	id := start(t, r, s)
	// The exit is announced. containerd 1.6's shim may miss the OOM event
	// itself (it watches the cgroup once the task runs, and dd can be
	// killed before), so the event is not required: the cgroup's OOM count
	// decides then.
	timeout := time.After(30 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-events:
			seen = ev == id
		case <-timeout:
			t.Fatalf("no event for %s", id)
		}
	}
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if !o.OOMKilled || o.ExitCode != 137 {
		t.Errorf("observed %+v, want OOM-killed with 137", o)
	}
	// Remembered, since the cgroup goes away with the task.
	if _, err := os.Stat(r.oomMark(id)); err != nil {
		t.Errorf("OOM kill not remembered: %v", err)
	}

	// The control: the same command with room to spare.
	s.Resources.MemoryBytes = 256 << 20
	id = start(t, r, s)
	o = waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if o.OOMKilled || o.ExitCode != 0 {
		t.Errorf("with 256 MiB: observed %+v", o)
	}
}

func TestReadOnlyRoot(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := spec("/bin/busybox", "touch", "/x")
	s.ReadOnly = true
	id := start(t, r, s)
	if o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED); o.ExitCode == 0 {
		t.Errorf("touch /x succeeded on a read-only root: %+v", o)
	}
	s.ReadOnly = false
	id = start(t, r, s)
	if o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED); o.ExitCode != 0 {
		t.Errorf("touch /x failed on a writable root: %+v", o)
	}
}

func TestNetworkNone(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/busybox", "sh", "-c", "busybox ip -o link; echo ---; busybox ip -o addr; echo ---; busybox ip route; busybox ip -6 route"))
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, stderr := logs(t, r, id, 0)
	if o.ExitCode != 0 || o.IP != "" {
		t.Fatalf("observed %+v; stderr %q", o, stderr)
	}
	parts := strings.Split(stdout, "---\n")
	if len(parts) != 3 {
		t.Fatalf("output %q", stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(parts[0]+parts[1]), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.TrimSuffix(f[1], ":") != "lo" {
			t.Errorf("interface other than lo: %q", line)
		}
	}
	if !strings.Contains(parts[1], "127.0.0.1") {
		t.Errorf("lo is not up: %q", parts[1])
	}
	// runc made the namespace: the runtime mounted none of its own.
	if _, err := os.Lstat(r.netnsPath(id)); !os.IsNotExist(err) {
		t.Errorf("a network namespace is mounted for a container of network none: %v", err)
	}
	if routes := strings.TrimSpace(parts[2]); routes != "" && !onlyLoopbackRoutes(routes) {
		t.Errorf("routes: %q", routes)
	}
}

// onlyLoopbackRoutes accepts IPv6 routes on lo, which the kernel adds when
// lo comes up.
func onlyLoopbackRoutes(routes string) bool {
	for _, line := range strings.Split(routes, "\n") {
		if !strings.Contains(line, "dev lo") {
			return false
		}
	}
	return true
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestBridgePublishedPort(t *testing.T) {
	r, cfg := newTestRuntime(t)
	port := freePort(t)
	s := spec("/bin/busybox", "sh", "-c", "echo hi > /tmp/index.html; exec busybox httpd -f -p 8080 -h /tmp")
	s.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	s.Ports = []*ccv1.PortMapping{{HostPort: int32(port), ContainerPort: 8080}}
	id := "c" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip, err := r.Start(ctx, Task{ID: id, Name: "web", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR(cfg.Subnet)
	if parsed := net.ParseIP(ip); parsed == nil || !subnet.Contains(parsed) {
		t.Fatalf("ip %q not in %s", ip, cfg.Subnet)
	}
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	if o.IP != ip {
		t.Errorf("List says ip %q, Start said %q", o.IP, ip)
	}

	for _, url := range []string{
		"http://" + net.JoinHostPort(ip, "8080") + "/",
		"http://127.0.0.1:" + strconv.Itoa(port) + "/",
	} {
		var body string
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if body, err = httpGet(url); err == nil {
				break
			}
		}
		if err != nil || body != "hi\n" {
			t.Errorf("GET %s: %q, %v", url, body, err)
		}
	}

	if err := r.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.netnsPath(id)); !os.IsNotExist(err) {
		t.Errorf("network namespace still there: %v", err)
	}
	if _, ok := find(t, r, id); ok {
		t.Error("container still listed after Remove")
	}
	if _, err := httpGet("http://127.0.0.1:" + strconv.Itoa(port) + "/"); err == nil {
		t.Error("port still answers after Remove")
	}
}

func TestCgroupLimits(t *testing.T) {
	r, cfg := newTestRuntime(t)
	s := spec("/bin/busybox", "sleep", "1000")
	s.Resources = &ccv1.ContainerResources{MemoryBytes: 64 << 20, CpuMillis: 500, Pids: 50}
	id := start(t, r, s)
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	read := func(ctrl, file string) string {
		candidates := []string{
			filepath.Join("/sys/fs/cgroup", ctrl, cfg.Namespace, id, file),
			filepath.Join("/sys/fs/cgroup", cfg.Namespace, id, file),
		}
		for _, p := range candidates {
			if b, err := os.ReadFile(p); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		t.Errorf("no %s in %v", file, candidates)
		return ""
	}
	if v := read("memory", "memory.limit_in_bytes"); v != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes = %q", v)
	}
	if v := read("cpu", "cpu.cfs_quota_us"); v != "50000" {
		t.Errorf("cpu.cfs_quota_us = %q", v)
	}
	if v := read("cpu", "cpu.cfs_period_us"); v != "100000" {
		t.Errorf("cpu.cfs_period_us = %q", v)
	}
	if v := read("pids", "pids.max"); v != "50" {
		t.Errorf("pids.max = %q", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestHardeningAndProcess(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := spec("/bin/busybox", "sh", "-c",
		`grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; echo "user=$(id -u):$(id -g) cwd=$(pwd) foo=$FOO host=$(hostname)"`)
	s.User = "nobody"
	s.Workdir = "/tmp"
	s.Env = []string{"FOO=bar"}
	id := start(t, r, s)
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, stderr := logs(t, r, id, 0)
	if o.ExitCode != 0 {
		t.Fatalf("exit %d; stdout %q stderr %q", o.ExitCode, stdout, stderr)
	}
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "user=65534:65534 cwd=/tmp foo=bar host=test-" + id} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output %q lacks %q", stdout, want)
		}
	}

	// uid:gid form, as root's default capability set.
	s = spec("/bin/busybox", "sh", "-c", `echo "$(id -u):$(id -g)"; grep CapBnd /proc/self/status`)
	s.User = "1000:2000"
	id = start(t, r, s)
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, _ = logs(t, r, id, 0)
	if !strings.HasPrefix(stdout, "1000:2000\n") {
		t.Errorf("output %q", stdout)
	}
	// containerd's default set: 14 capabilities = 0x00000000a80425fb.
	if !strings.Contains(stdout, "CapBnd:\t00000000a80425fb") {
		t.Errorf("bounding set: %q", stdout)
	}
}

func TestAdoption(t *testing.T) {
	a, cfg := newTestRuntime(t)
	id := start(t, a, spec("/bin/busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
	waitState(t, a, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := waitState(t, b, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	if o.Name != "test-"+id || o.Generation != 7 || o.StartedAt.IsZero() {
		t.Errorf("adopted %+v", o)
	}

	count := func() int {
		n := 0
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		defer lcancel()
		if err := b.Logs(lctx, id, 0, false, func(_ string, d []byte) error {
			n += bytes.Count(d, []byte("\n"))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n1 := count()
	grew := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if count() > n1 {
			grew = true
			break
		}
	}
	if !grew {
		t.Fatalf("logs stopped growing after the runtime restarted (%d lines)", n1)
	}

	// Follow with a tail while it runs, stop after a few lines.
	var got []string
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	err = b.Logs(fctx, id, 2, true, func(_ string, d []byte) error {
		got = append(got, strings.Split(strings.TrimSuffix(string(d), "\n"), "\n")...)
		if len(got) >= 5 {
			fcancel()
		}
		return nil
	})
	fcancel()
	if err != nil || len(got) < 5 {
		t.Fatalf("follow: %v, %q", err, got)
	}
	for i := 1; i < len(got); i++ {
		a, _ := strconv.Atoi(strings.TrimPrefix(got[i-1], "tick "))
		b, _ := strconv.Atoi(strings.TrimPrefix(got[i], "tick "))
		if b != a+1 {
			t.Fatalf("follow: lines out of order or missing: %q", got)
		}
	}

	if err := b.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
}

func TestStopKillsAfterTimeout(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/busybox", "sh", "-c", `trap "" TERM; echo ready; while true; do sleep 1; done`))
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Stop(ctx, id, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if o.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", o.ExitCode)
	}
	// Stopping a stopped container is fine; so is removing twice.
	if err := r.Stop(ctx, id, time.Second); err != nil {
		t.Error(err)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Error(err)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Error(err)
	}
	// Logs survive Remove until RemoveLogs.
	if stdout, _ := logs(t, r, id, 0); stdout != "ready\n" {
		t.Errorf("logs after remove: %q", stdout)
	}
	if err := r.RemoveLogs(id); err != nil {
		t.Fatal(err)
	}
	if err := r.Logs(ctx, id, 0, false, func(string, []byte) error { return nil }); err == nil {
		t.Error("Logs of a removed container without logs succeeded")
	}
}

func TestLogsTailAndFollow(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo err >&2; echo tail"))
	// Follow from the start while it runs: everything, then the end.
	stdout, stderr := logs(t, r, id, 0)
	if stdout != "line 1\nline 2\nline 3\nline 4\nline 5\ntail\n" || stderr != "err\n" {
		t.Errorf("follow: stdout %q stderr %q", stdout, stderr)
	}
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	// stdout and stderr are separate pipes: their relative order in the
	// file is not fixed, so compare the last three records as a set.
	var recs []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Logs(ctx, id, 3, false, func(s string, d []byte) error {
		recs = append(recs, s+":"+string(d))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(recs)
	if want := []string{"stderr:err\n", "stdout:line 5\n", "stdout:tail\n"}; !reflect.DeepEqual(recs, want) {
		t.Errorf("tail 3: %q, want %q", recs, want)
	}
}

func TestEnsureImageAliasAndMissing(t *testing.T) {
	r, _ := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Present already: open is not called.
	if err := r.EnsureImage(ctx, testImage, func(context.Context) (io.ReadCloser, error) {
		t.Error("open called for a present image")
		return nil, io.EOF
	}); err != nil {
		t.Fatal(err)
	}
	// An archive under another name is named as asked.
	if err := r.EnsureImage(ctx, "example.com/other:v2", func(context.Context) (io.ReadCloser, error) {
		b, err := testimage.BuildBusybox("something-else")
		return io.NopCloser(bytes.NewReader(b)), err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.GetImage(r.withNS(ctx), "example.com/other:v2"); err != nil {
		t.Error(err)
	}
	// Missing image: Start says what to do.
	_, err := r.Start(ctx, Task{ID: "c" + randHex(6), Name: "x", Spec: &ccv1.ContainerSpec{Image: "nope", Network: ccv1.NetworkMode_NETWORK_MODE_NONE}})
	if err == nil || !strings.Contains(err.Error(), "EnsureImage") {
		t.Errorf("Start with a missing image: %v", err)
	}
}

// TestStartAfterImageReloaded removes the image a container started from
// (its snapshots go with it) and loads it again under the same name: the
// next start uses the new copy, unpacked again, rather than what it read
// of the old one.
func TestStartAfterImageReloaded(t *testing.T) {
	r, _ := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := start(t, r, spec("/bin/busybox", "true"))
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	name, err := NormalizeRef(testImage)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.ImageService().Delete(r.withNS(ctx), name, images.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	loaded := false
	if err := r.EnsureImage(ctx, testImage, func(context.Context) (io.ReadCloser, error) {
		loaded = true
		b, err := testimage.BuildBusybox(testImage)
		return io.NopCloser(bytes.NewReader(b)), err
	}); err != nil {
		t.Fatal(err)
	}
	if !loaded {
		t.Fatal("EnsureImage did not load the removed image again")
	}
	id = start(t, r, spec("/bin/busybox", "sh", "-c", "echo again"))
	if o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED); o.ExitCode != 0 {
		t.Fatalf("observed %+v", o)
	}
	if stdout, _ := logs(t, r, id, 0); stdout != "again\n" {
		t.Errorf("stdout %q", stdout)
	}
}

// TestStartOverLeftoverSnapshot starts a container whose id has a snapshot
// left by a creation that did not finish (no container record): the start
// removes it and creates the container.
func TestStartOverLeftoverSnapshot(t *testing.T) {
	r, _ := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nctx := r.withNS(ctx)
	name, err := NormalizeRef(testImage)
	if err != nil {
		t.Fatal(err)
	}
	img, err := r.client.GetImage(nctx, name)
	if err != nil {
		t.Fatal(err)
	}
	diffIDs, err := img.RootFS(nctx)
	if err != nil {
		t.Fatal(err)
	}
	id := "c" + randHex(6)
	if _, err := r.client.SnapshotService("").Prepare(nctx, id, identity.ChainID(diffIDs).String()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, Task{ID: id, Name: "leftover", Generation: 1, Spec: spec("/bin/busybox", "sh", "-c", "echo fresh")}); err != nil {
		t.Fatalf("start over a leftover snapshot: %v", err)
	}
	if o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED); o.ExitCode != 0 {
		t.Fatalf("observed %+v", o)
	}
	if stdout, _ := logs(t, r, id, 0); stdout != "fresh\n" {
		t.Errorf("stdout %q", stdout)
	}
	// Remove, unlike a start, removes a leftover snapshot it finds.
	other := "c" + randHex(6)
	if _, err := r.client.SnapshotService("").Prepare(nctx, other, identity.ChainID(diffIDs).String()); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.SnapshotService("").Stat(nctx, other); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot of %s after Remove: %v", other, err)
	}
}

// TestStartedAtSurvivesRestart: a runtime that did not start a container
// (an agent restarted) reports the start time the first one recorded.
func TestStartedAtSurvivesRestart(t *testing.T) {
	r, cfg := newTestRuntime(t)
	id := start(t, r, spec("/bin/busybox", "sleep", "30"))
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	if o.StartedAt.IsZero() {
		t.Fatal("no start time")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	o2, ok := find(t, r2, id)
	if !ok || !o2.StartedAt.Equal(o.StartedAt) {
		t.Errorf("start time seen by a new runtime: %v (found %v), want %v", o2.StartedAt, ok, o.StartedAt)
	}
}

// --- without containerd ---

func TestLogWriterRotation(t *testing.T) {
	rec := func(s string) int { return len(encodeRecord("stdout", time.Unix(0, 0), []byte(s))) }
	one := rec("0123456789")
	for _, c := range []struct {
		name     string
		maxBytes int64
		maxFiles int
		writes   int
		files    int // files on disk after the writes
		records  int // records readable (the rest rotated away)
	}{
		{"no rotation", int64(one * 10), 3, 5, 1, 5},
		{"exactly full", int64(one * 5), 3, 5, 1, 5},
		{"one rotation", int64(one * 5), 3, 6, 2, 6},
		{"rotations capped", int64(one * 2), 3, 20, 4, 8},
		{"no rotated files kept", int64(one * 2), 0, 7, 1, 1},
		{"record larger than max", int64(one / 2), 2, 3, 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := logger.NewWriter(dir, c.maxBytes, c.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			w.Now = func() time.Time { return time.Unix(0, 0) }
			for i := 0; i < c.writes; i++ {
				if err := w.Write("stdout", []byte("0123456789")); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			files := logFiles(dir)
			existing := 0
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					continue
				}
				existing++
				if st.Size() > c.maxBytes && st.Size() != int64(one) {
					t.Errorf("%s has %d bytes, max %d", f, st.Size(), c.maxBytes)
				}
			}
			if existing != c.files {
				t.Errorf("%d files, want %d", existing, c.files)
			}
			recs, err := readAllRecords(files)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != c.records {
				t.Errorf("%d records, want %d", len(recs), c.records)
			}
		})
	}
}

func TestLogRecordsRoundTripAndOrder(t *testing.T) {
	dir := t.TempDir()
	w, err := logger.NewWriter(dir, 200, 5)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 30; i++ {
		s := fmt.Sprintf("piece %d\n", i)
		stream := "stdout"
		if i%3 == 0 {
			stream = "stderr"
		}
		if err := w.Write(stream, []byte(s)); err != nil {
			t.Fatal(err)
		}
		want = append(want, stream+":"+s)
	}
	if err := w.Write("stdout", []byte{0xff, 0xfe, '\n'}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "stdout:\xff\xfe\n")
	w.Close()
	recs, _ := readAllRecords(logFiles(dir))
	var got []string
	for _, r := range recs {
		got = append(got, r.Stream+":"+string(r.Data()))
	}
	// Rotation keeps the newest records, in order.
	if len(got) == 0 || strings.Join(got, "") != strings.Join(want[len(want)-len(got):], "") {
		t.Errorf("got %q\nwant a suffix of %q", got, want)
	}
}

func TestTailRecords(t *testing.T) {
	mk := func(parts ...string) []*logRecord {
		var out []*logRecord
		for _, p := range parts {
			out = append(out, &logRecord{Stream: "stdout", Text: p})
		}
		return out
	}
	join := func(recs []*logRecord) string {
		var b strings.Builder
		for _, r := range recs {
			b.Write(r.Data())
		}
		return b.String()
	}
	for _, c := range []struct {
		parts []string
		n     int64
		want  string
	}{
		{[]string{"a\nb\nc\n"}, 2, "b\nc\n"},
		{[]string{"a\nb\nc\n"}, 0, "a\nb\nc\n"},
		{[]string{"a\nb\nc\n"}, 10, "a\nb\nc\n"},
		{[]string{"a\n", "b\n", "c\n"}, 1, "c\n"},
		{[]string{"a\nb", "\nc"}, 2, "b\nc"},
		{[]string{"a\nb", "\nc"}, 1, "c"},
		{[]string{"a\n", "b", "c\n"}, 1, "bc\n"},
		{[]string{"a\n\n\n"}, 2, "\n\n"},
		{[]string{}, 3, ""},
	} {
		if got := join(tailRecords(mk(c.parts...), c.n)); got != c.want {
			t.Errorf("tail %d of %q = %q, want %q", c.n, c.parts, got, c.want)
		}
	}
}

// serveRegistry serves the images of an OCI archive read-only over plain
// HTTP on 127.0.0.1, as a registry with basic auth, under any repository
// name and the tag "latest". It returns host:port.
func serveRegistry(t *testing.T, archive []byte, user, pass string) string {
	t.Helper()
	blobs := map[string][]byte{}
	for _, e := range tartest.Read(t, bytes.NewReader(archive)) {
		blobs[e.Header.Name] = e.Content
	}
	var idx ocispec.Index
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("archive index: %v", err)
	}
	mdesc := idx.Manifests[0]
	blob := func(d string) ([]byte, bool) {
		b, ok := blobs["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		return b, ok && strings.HasPrefix(d, "sha256:")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="cc-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		path := req.URL.Path
		var data []byte
		var ok bool
		mediaType := "application/octet-stream"
		switch {
		case path == "/v2/":
			return
		case strings.Contains(path, "/manifests/"):
			ref := path[strings.LastIndex(path, "/")+1:]
			if ref == "latest" || ref == mdesc.Digest.String() {
				data, ok = blob(mdesc.Digest.String())
				mediaType = mdesc.MediaType
			}
		case strings.Contains(path, "/blobs/"):
			data, ok = blob(path[strings.LastIndex(path, "/")+1:])
		}
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(data).String())
		if req.Method != http.MethodHead {
			_, _ = w.Write(data)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestEnsureImagePull(t *testing.T) {
	archive, err := testimage.BuildBusybox("whatever")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	host := serveRegistry(t, archive, "puller", "s3cret")
	cfg.PlainHTTP = []string{host}
	cfg.Auth = func(h string) (string, string, error) {
		if h != host {
			return "", "", fmt.Errorf("asked for credentials of %s", h)
		}
		return "puller", "s3cret", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupRuntime(t, cfg) })
	t.Cleanup(func() { r.Close() })

	ref := host + "/cc/pulled:latest"
	if err := r.EnsureImage(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	s := spec("/bin/busybox", "echo", "pulled")
	s.Image = ref
	id := start(t, r, s)
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if stdout, _ := logs(t, r, id, 0); stdout != "pulled\n" {
		t.Errorf("stdout %q", stdout)
	}

	// Wrong credentials and unknown images fail with a message.
	r.cfg.Auth = func(string) (string, string, error) { return "puller", "wrong", nil }
	if err := r.EnsureImage(ctx, host+"/cc/other:latest", nil); err == nil || !strings.Contains(err.Error(), "pull") {
		t.Errorf("pull with wrong credentials: %v", err)
	}
	r.cfg.Auth = cfg.Auth
	if err := r.EnsureImage(ctx, host+"/cc/other:v9", nil); err == nil {
		t.Error("pull of a missing tag succeeded")
	} else {
		t.Log(err)
	}
}

// stateName maps a proto state to a short word for messages.
func stateName(s ccv1.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_STATE_"))
}
