package runtime

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/containercodes/cc/agent/jobs"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/testing/tartest"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func sandboxSpec(cmd ...string) *ccv1.ContainerSpec {
	return &ccv1.ContainerSpec{
		Image:   testImage,
		Command: cmd,
		Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
		Sandbox: &ccv1.JobSandbox{JobId: "job-" + randHex(4)},
	}
}

func startTask(t *testing.T, r *Runtime, task Task) string {
	t.Helper()
	if task.ID == "" {
		task.ID = "j" + randHex(6)
	}
	if task.Name == "" {
		task.Name = "job-" + task.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Start(ctx, task); err != nil {
		t.Fatal(err)
	}
	return task.ID
}

// runJob starts a sandbox, waits for it to exit and returns its exit code
// and output.
func runJob(t *testing.T, r *Runtime, task Task) (id string, o Observed, stdout, stderr string) {
	t.Helper()
	id = startTask(t, r, task)
	o = waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, stderr = logs(t, r, id, 0)
	return id, o, stdout, stderr
}

// untar reads a tar.gz file into name → entry.
func untar(t *testing.T, path string) (names []string, entries map[string]*tar.Header, contents map[string]string, raw []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries, contents = map[string]*tar.Header{}, map[string]string{}
	for _, e := range tartest.Read(t, bytes.NewReader(raw)) {
		names = append(names, e.Header.Name)
		entries[e.Header.Name] = e.Header
		contents[e.Header.Name] = string(e.Content)
	}
	return names, entries, contents, raw
}

func fileSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), int64(len(b))
}

// assertGone checks that nothing of a removed sandbox is left on the host.
func assertGone(t *testing.T, r *Runtime, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.withNS(context.Background()), 30*time.Second)
	defer cancel()
	if _, err := r.client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("container %s still there (%v)", id, err)
	}
	if _, err := r.client.SnapshotService("").Stat(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s still there (%v)", id, err)
	}
	if _, err := os.Lstat(r.netnsPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s still there (%v)", r.netnsPath(id), err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, r.jobsDir()) {
			t.Errorf("mount left under the jobs directory: %s", line)
		}
	}
	if _, err := os.Lstat(r.JobDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("job directory %s still there (%v)", r.JobDir(id), err)
	}
}

func TestSandboxCollectOutputAndLogs(t *testing.T) {
	r, cfg := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := sandboxSpec("/bin/sh", "-c", "echo hi > /output/a.txt; mkdir /output/d; echo x > /output/d/b; echo done; echo warn >&2")
	id, o, stdout, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 || o.JobID != s.Sandbox.JobId {
		t.Fatalf("observed %+v; stdout %q stderr %q", o, stdout, stderr)
	}

	p, err := r.CollectOutput(ctx, id, jobs.LimitsFor(s.Sandbox))
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != filepath.Join(r.JobDir(id), "output.tar.gz") || p.Files != 3 {
		t.Errorf("packed %+v", p)
	}
	if sum, size := fileSHA256(t, p.Path); sum != p.SHA256 || size != p.Size {
		t.Errorf("file has %s (%d bytes), Packed says %s (%d)", sum, size, p.SHA256, p.Size)
	}
	names, entries, contents, _ := untar(t, p.Path)
	if strings.Join(names, ",") != "a.txt,d/,d/b" {
		t.Fatalf("entries %q", names)
	}
	if contents["a.txt"] != "hi\n" || contents["d/b"] != "x\n" || entries["d/"].Typeflag != tar.TypeDir {
		t.Errorf("contents %q", contents)
	}
	for _, h := range entries {
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d in the archive", h.Name, h.Uid, h.Gid)
		}
	}

	// Again, and from a restarted agent: the same archive.
	if p2, err := r.CollectOutput(ctx, id, jobs.LimitsFor(s.Sandbox)); err != nil || p2 != p {
		t.Errorf("second collect: %+v, %v", p2, err)
	}
	r2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if p2, err := r2.CollectOutput(ctx, id, jobs.LimitsFor(s.Sandbox)); err != nil || p2 != p {
		t.Errorf("collect after a restart: %+v, %v", p2, err)
	}
	// Without a trustworthy sidecar it packs again, to the same bytes.
	if err := os.WriteFile(filepath.Join(r.JobDir(id), "output.tar.gz.sha256"), []byte("sha256:00 1 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if p2, err := r2.CollectOutput(ctx, id, jobs.LimitsFor(s.Sandbox)); err != nil || p2 != p {
		t.Errorf("collect after a bad sidecar: %+v, %v (first %+v)", p2, err, p)
	}

	// Releasing the output's memory keeps the archive.
	if err := r2.ReleaseOutput(ctx, id); err != nil {
		t.Fatal(err)
	}
	if mounted, err := isMountPoint(filepath.Join(r.JobDir(id), "output")); err != nil || mounted {
		t.Errorf("output still mounted after ReleaseOutput (%v)", err)
	}
	if p2, err := r2.CollectOutput(ctx, id, jobs.LimitsFor(s.Sandbox)); err != nil || p2 != p {
		t.Errorf("collect after release: %+v, %v", p2, err)
	}

	lp, err := r.PackLogs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if sum, size := fileSHA256(t, lp.Path); sum != lp.SHA256 || size != lp.Size || lp.Path != filepath.Join(r.JobDir(id), "logs.jsonl") {
		t.Errorf("logs file %s has %s (%d bytes), Packed says %+v", lp.Path, sum, size, lp)
	}
	f, err := os.Open(lp.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	streams := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			T time.Time `json:"t"`
			S string    `json:"s"`
			D string    `json:"d"`
			B []byte    `json:"b"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.T.IsZero() {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		streams[rec.S] += rec.D + string(rec.B)
	}
	if streams["stdout"] != "done\n" || streams["stderr"] != "warn\n" || len(streams) != 2 {
		t.Errorf("logs %q", streams)
	}

	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, r, id)
	if _, err := r.CollectOutput(ctx, id, jobs.Limits{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("collect after remove: %v", err)
	}
}

func TestSandboxConfinement(t *testing.T) {
	r, _ := newTestRuntime(t)
	// The loopback round trip: busybox nc quits when its stdin ends, so the
	// listener reads a pipe that stays open; the client retries until the
	// listener is up.
	script := `
cat /proc/net/dev; echo ---
cat /proc/net/route; echo ---
cat /sys/class/net/lo/flags; echo ---
sleep 30 | nc -l -p 7777 > /tmp/got &
for i in $(seq 1 100); do echo ping | timeout 5 nc 127.0.0.1 7777 2>/dev/null && break; sleep 0.1; done
for i in $(seq 1 100); do [ -s /tmp/got ] && break; sleep 0.1; done
echo "loopback=$(cat /tmp/got)"; echo ---
echo "user=$(id -u):$(id -g)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Groups):' /proc/self/status; echo ---
touch /x 2>/dev/null && echo root-writable
touch /etc/x 2>/dev/null && echo etc-writable
{ echo h >> /etc/hosts; } 2>/dev/null && echo hosts-writable
grep -q ' /etc/hosts [a-z0-9]* ro,' /proc/mounts && echo hosts-ro
echo o > /output/o && echo output-ok
echo t > /tmp/t && echo tmp-ok
dd if=/dev/zero of=/tmp/big bs=65536 count=64 2>&1 | grep -q 'No space left' && echo tmp-full
rm -f /tmp/big
dd if=/dev/zero of=/output/big bs=65536 count=64 2>&1 | grep -q 'No space left' && echo output-full
rm -f /output/big
`
	s := sandboxSpec("/bin/sh", "-c", script)
	s.Sandbox.TmpLimitBytes = 1 << 20
	s.Sandbox.OutputLimitBytes = 1 << 20
	s.ReadOnly = false // a sandbox's root is read-only anyway
	_, o, stdout, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 {
		t.Fatalf("exit %d; stdout %q stderr %q", o.ExitCode, stdout, stderr)
	}
	parts := strings.Split(stdout, "---\n")
	if len(parts) != 6 {
		t.Fatalf("output %q", stdout)
	}
	// Interfaces: lo only (two header lines in /proc/net/dev).
	for _, line := range strings.Split(strings.TrimSpace(parts[0]), "\n")[2:] {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), ":"); name != "lo" {
			t.Errorf("interface other than lo: %q", line)
		}
	}
	// Routes: the header line only.
	if lines := strings.Split(strings.TrimSpace(parts[1]), "\n"); len(lines) != 1 {
		t.Errorf("routes: %q", parts[1])
	}
	// lo is up (IFF_UP) and carries traffic.
	if flags, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(parts[2]), "0x"), 16, 64); err != nil || flags&1 == 0 {
		t.Errorf("lo flags %q: not up (%v)", parts[2], err)
	}
	if !strings.Contains(parts[3], "loopback=ping") {
		t.Errorf("no loopback round trip: %q; stderr %q", parts[3], stderr)
	}
	for _, want := range []string{"user=65534:65534", "CapInh:\t0000000000000000", "CapPrm:\t0000000000000000",
		"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2", "Groups:\t65534"} {
		if !strings.Contains(parts[4], want) {
			t.Errorf("process: %q lacks %q", parts[4], want)
		}
	}
	if got := strings.Fields(parts[5]); strings.Join(got, " ") != "hosts-ro output-ok tmp-ok tmp-full output-full" {
		t.Errorf("filesystem: %q; stderr %q", got, stderr)
	}
}

func TestSandboxUserAndLimits(t *testing.T) {
	r, cfg := newTestRuntime(t)
	s := sandboxSpec("/bin/sh", "-c", `echo "$(id -u):$(id -g)"; touch /output/f; stat -c '%u:%g %a' /output /output/f; sleep 1000`)
	s.User = "1000:2000"
	id := startTask(t, r, Task{Spec: s})
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	// The default pids limit applies; memory and CPU as asked.
	var pids string
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup/pids", cfg.Namespace, id, "pids.max"),
		filepath.Join("/sys/fs/cgroup", cfg.Namespace, id, "pids.max"),
	} {
		if b, err := os.ReadFile(p); err == nil {
			pids = strings.TrimSpace(string(b))
		}
	}
	if pids != strconv.FormatInt(jobspec.DefaultPids, 10) {
		t.Errorf("pids.max = %q", pids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Collection waits for the end.
	if _, err := r.CollectOutput(ctx, id, jobs.Limits{}); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("collect of a running job: %v", err)
	}
	// Stop works on a sandbox (sh as pid 1 ignores SIGTERM: SIGKILL).
	if err := r.Stop(ctx, id, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, _ := logs(t, r, id, 0)
	if stdout != "1000:2000\n1000:2000 755\n1000:2000 644\n" {
		t.Errorf("stdout %q", stdout)
	}
	p, err := r.CollectOutput(ctx, id, jobs.Limits{})
	if err != nil || p.Files != 1 {
		t.Errorf("collect: %+v, %v", p, err)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, r, id)

	// A lone uid gets the same gid; a name is refused before anything is made.
	s = sandboxSpec("/bin/sh", "-c", `echo "$(id -u):$(id -g)"`)
	s.User = "4242"
	_, _, stdout, _ = runJob(t, r, Task{Spec: s})
	if stdout != "4242:4242\n" {
		t.Errorf("stdout %q", stdout)
	}
	s.User = "nobody"
	if _, err := r.Start(ctx, Task{ID: "j" + randHex(6), Name: "x", Spec: s}); err == nil || !strings.Contains(err.Error(), "numeric") {
		t.Errorf("start with a user name: %v", err)
	}
}

func TestSandboxSymlinkNotFollowed(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := sandboxSpec("/bin/sh", "-c", "ln -s /etc/shadow /output/s; ln -s / /output/root; ln -s ../../../../../../etc/passwd /output/up")
	id, o, _, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 {
		t.Fatalf("exit %d: %s", o.ExitCode, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := r.CollectOutput(ctx, id, jobs.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	names, entries, contents, raw := untar(t, p.Path)
	if strings.Join(names, ",") != "root,s,up" {
		t.Fatalf("entries %q", names)
	}
	for n, target := range map[string]string{"s": "/etc/shadow", "root": "/", "up": "../../../../../../etc/passwd"} {
		if h := entries[n]; h.Typeflag != tar.TypeSymlink || h.Linkname != target || contents[n] != "" {
			t.Errorf("%s: %+v", n, h)
		}
	}
	for _, hostFile := range []string{"/etc/shadow", "/etc/passwd"} {
		b, err := os.ReadFile(hostFile)
		if err == nil && len(bytes.TrimSpace(b)) > 0 && bytes.Contains(raw, bytes.TrimSpace(b)) {
			t.Errorf("the archive holds the host's %s", hostFile)
		}
	}
}

func TestSandboxRefusedOutput(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := sandboxSpec("/bin/sh", "-c", "mkdir /output/dir; mkfifo /output/dir/p")
	id, o, _, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 {
		t.Fatalf("exit %d: %s", o.ExitCode, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.CollectOutput(ctx, id, jobs.Limits{})
	var refused *jobs.RefusedError
	if !errors.As(err, &refused) || err.Error() != "output: dir/p is a FIFO (named pipe); only regular files, directories and symlinks are collected" {
		t.Errorf("collect: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.JobDir(id), "output.tar.gz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an archive was left: %v", err)
	}
	if err := r.ReleaseOutput(ctx, id); err == nil {
		t.Error("ReleaseOutput without an archive succeeded")
	}

	s = sandboxSpec("/bin/sh", "-c", "for i in 1 2 3 4; do echo $i > /output/$i; done")
	id, _, _, _ = runJob(t, r, Task{Spec: s})
	if _, err := r.CollectOutput(ctx, id, jobs.Limits{MaxFiles: 3}); err == nil || err.Error() != "output has more than 3 files" {
		t.Errorf("collect: %v", err)
	}
	if p, err := r.CollectOutput(ctx, id, jobs.Limits{MaxFiles: 4}); err != nil || p.Files != 4 {
		t.Errorf("collect: %+v, %v", p, err)
	}
	// An output filesystem lost (a host reboot) is not taken for an empty
	// output.
	os.Remove(filepath.Join(r.JobDir(id), "output.tar.gz.sha256"))
	if err := unix.Unmount(filepath.Join(r.JobDir(id), "output"), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CollectOutput(ctx, id, jobs.Limits{}); err == nil || jobs.IsRefused(err) || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("collect without the output filesystem: %v", err)
	}
}

func TestSandboxInput(t *testing.T) {
	r, _ := newTestRuntime(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct{ name, data string }{{"data/hello.txt", "hello input\n"}, {"run.sh", "#!/bin/sh\necho ran\n"}} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o700, Size: int64(len(f.data))})
		tw.Write([]byte(f.data))
	}
	tw.Close()
	zw.Close()
	archive := buf.Bytes()
	opened := 0
	open := func(context.Context) (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(archive)), nil
	}
	s := sandboxSpec("/bin/sh", "-c", "cat /input/data/hello.txt; /input/run.sh; touch /input/x 2>/dev/null && echo input-writable; echo > /input/run.sh 2>/dev/null && echo file-writable; true")
	s.Sandbox.InputDigest = "sha256:whatever"
	id, o, stdout, stderr := runJob(t, r, Task{Spec: s, OpenInput: open})
	if o.ExitCode != 0 || stdout != "hello input\nran\n" || opened != 1 {
		t.Errorf("exit %d, opened %d; stdout %q stderr %q", o.ExitCode, opened, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, r, id)

	// An unsafe input fails the start, which leaves nothing behind.
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	tw = tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: "/etc/shadow"})
	tw.Close()
	zw.Close()
	archive = buf.Bytes()
	id = "j" + randHex(6)
	_, err := r.Start(ctx, Task{ID: id, Name: "bad", Spec: s, OpenInput: open})
	if err == nil || !jobs.IsRefused(err) || !strings.Contains(err.Error(), "symlink s points at the absolute path /etc/shadow") {
		t.Errorf("start with an unsafe input: %v", err)
	}
	assertGone(t, r, id)

	// Input named but not openable.
	if _, err := r.Start(ctx, Task{ID: id, Name: "bad", Spec: s}); err == nil || !strings.Contains(err.Error(), "OpenInput") {
		t.Errorf("start without OpenInput: %v", err)
	}
}

func TestSandboxBridge(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := sandboxSpec("/bin/sh", "-c", "cat /proc/net/dev")
	s.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	_, o, stdout, stderr := runJob(t, r, Task{Spec: s})
	if o.ExitCode != 0 || !strings.Contains(stdout, "eth0:") || o.IP == "" {
		t.Errorf("observed %+v; stdout %q stderr %q", o, stdout, stderr)
	}
	s.Ports = []*ccv1.PortMapping{{HostPort: 1, ContainerPort: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Start(ctx, Task{ID: "j" + randHex(6), Name: "x", Spec: s}); err == nil || !strings.Contains(err.Error(), "ports") {
		t.Errorf("start of a job with ports: %v", err)
	}
}

func TestSandboxOrphanCleanup(t *testing.T) {
	r, cfg := newTestRuntime(t)
	id, _, _, _ := runJob(t, r, Task{Spec: sandboxSpec("/bin/sh", "-c", "echo x > /output/x")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.CollectOutput(ctx, id, jobs.Limits{}); err != nil {
		t.Fatal(err)
	}
	// An agent that died after deleting the container, before its files.
	nctx := r.withNS(ctx)
	c, err := r.client.LoadContainer(nctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if task, err := c.Task(nctx, nil); err == nil {
		if _, err := task.Delete(nctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	if err := r.teardownNetwork(ctx, id, networkNone, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.JobDir(id), "output", "x")); err != nil {
		t.Fatalf("the setup lost the output already: %v", err)
	}
	// A restarted agent cleans up.
	r2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	assertGone(t, r2, id)
}
