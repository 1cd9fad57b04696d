package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// sh is a job command run by busybox's shell.
func sh(script string) []string { return []string{"/bin/busybox", "sh", "-c", script} }

func submitJob(t *testing.T, cl *testcluster.Client, spec *ccv1.JobSpec) *ccv1.Job {
	t.Helper()
	if spec.Image == "" {
		spec.Image = demoImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatalf("submit job: %v", err)
	}
	return r.Job
}

func getJob(t *testing.T, cl *testcluster.Client, id string) *ccv1.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cl.Jobs.GetJob(ctx, &ccv1.GetJobRequest{Id: id})
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return r.Job
}

func describeJob(j *ccv1.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s state=%v exit=%d message=%q output=%s\n", j.GetId(), j.GetState(), j.GetExitCode(), j.GetMessage(), j.GetOutputDigest())
	for _, a := range j.GetAttempts() {
		fmt.Fprintf(&b, "  attempt %d on %s: %v exit=%d timed_out=%v error=%q\n", a.Number, a.NodeId, a.State, a.ExitCode, a.TimedOut, a.Error)
	}
	return b.String()
}

// waitJob polls a job until cond holds, or fails the test after timeout.
func waitJob(t *testing.T, cl *testcluster.Client, id, what string, timeout time.Duration, cond func(*ccv1.Job) bool) *ccv1.Job {
	t.Helper()
	var last *ccv1.Job
	if !waitFor(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.Jobs.GetJob(ctx, &ccv1.GetJobRequest{Id: id})
		if err != nil {
			return false // a leader change: try again
		}
		last = r.Job
		return cond(last)
	}) {
		t.Fatalf("%s did not happen; now:\n%s", what, describeJob(last))
	}
	return last
}

func jobIn(states ...ccv1.JobState) func(*ccv1.Job) bool {
	return func(j *ccv1.Job) bool {
		for _, s := range states {
			if j.State == s {
				return true
			}
		}
		return false
	}
}

var jobEnded = jobIn(ccv1.JobState_JOB_STATE_SUCCEEDED, ccv1.JobState_JOB_STATE_FAILED, ccv1.JobState_JOB_STATE_TIMED_OUT, ccv1.JobState_JOB_STATE_CANCELLED)

// waitJobEnd waits for a job's end and checks its final state.
func waitJobEnd(t *testing.T, cl *testcluster.Client, id string, want ccv1.JobState) *ccv1.Job {
	t.Helper()
	j := waitJob(t, cl, id, "the job's end", 2*time.Minute, jobEnded)
	if j.State != want {
		t.Fatalf("job ended %v, want %v:\n%s", j.State, want, describeJob(j))
	}
	return j
}

// download fetches a job's output (or one file of it) and checks it
// against the sha256 the first message announced.
func download(t *testing.T, cl *testcluster.Client, id, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cl.Jobs.JobOutput(ctx, &ccv1.JobOutputRequest{Id: id, Path: path})
	if err != nil {
		t.Fatalf("job output: %v", err)
	}
	var buf bytes.Buffer
	var size int64
	var digest string
	for first := true; ; first = false {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("job output %s: %v", id, err)
		}
		if first {
			size, digest = m.Size, m.Sha256
		}
		buf.Write(m.Data)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest || int64(buf.Len()) != size {
		t.Fatalf("download of %s: %d bytes with %s, announced %d bytes with %s", id, buf.Len(), got, size, digest)
	}
	return buf.Bytes()
}

type tarEntry struct {
	typ      byte
	linkname string
	data     []byte
}

func untar(t *testing.T, tgz []byte) map[string]tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]tarEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = tarEntry{h.Typeflag, h.Linkname, data}
	}
}

// A job's files come back byte for byte: the archive's digest matches its
// bytes, each file matches the sha256 the job computed itself, and one file
// can be fetched alone. Writes outside /output and /tmp fail, the job runs
// as nobody with no capabilities, and a symlink to a host file is kept as a
// link, never followed.
func TestJobOutputsAndSandbox(t *testing.T) {
	s := testcluster.Start(t)
	s.StartAgent("jobs-node")
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	j := submitJob(t, cl, &ccv1.JobSpec{Command: sh(`set -e
cd /output
echo hi > a.txt
mkdir -p d/e
head -c 300000 /dev/urandom > d/e/random.bin
printf 'x%.0s' $(seq 1 5000) > d/long.txt
ln -s /etc/shadow shadow-link
/bin/busybox sha256sum a.txt d/e/random.bin d/long.txt > /tmp/sums
cp /tmp/sums sums.txt
touch /rootfs-write 2>/dev/null && echo root-writable >> probes.txt || echo root-readonly >> probes.txt
touch /etc/x 2>/dev/null && echo etc-writable >> probes.txt || echo etc-readonly >> probes.txt
touch /dev/shm/x 2>/dev/null && echo shm-writable >> probes.txt || echo shm-readonly >> probes.txt
id -u >> probes.txt
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status >> probes.txt
`)})
	j = waitJobEnd(t, cl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	if j.OutputDigest == "" || j.OutputFiles == 0 {
		t.Fatalf("no output recorded:\n%s", describeJob(j))
	}
	tgz := download(t, cl, j.Id, "")
	sum := sha256.Sum256(tgz)
	if "sha256:"+hex.EncodeToString(sum[:]) != j.OutputDigest {
		t.Fatalf("the archive's sha256 is not the job's output digest %s", j.OutputDigest)
	}
	files := untar(t, tgz)
	if string(files["a.txt"].data) != "hi\n" {
		t.Errorf("a.txt = %q", files["a.txt"].data)
	}
	// Every file is byte-identical to what the job saw.
	sc := bufio.NewScanner(bytes.NewReader(files["sums.txt"].data))
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		got := sha256.Sum256(files[f[1]].data)
		if hex.EncodeToString(got[:]) != f[0] {
			t.Errorf("%s differs from what the job wrote", f[1])
		}
		n++
	}
	if n != 3 {
		t.Fatalf("sums.txt lists %d files:\n%s", n, files["sums.txt"].data)
	}
	if len(files["d/e/random.bin"].data) != 300000 {
		t.Errorf("random.bin has %d bytes", len(files["d/e/random.bin"].data))
	}
	// The symlink is a link in the archive; the host's shadow file is not in it.
	link := files["shadow-link"]
	if link.typ != tar.TypeSymlink || link.linkname != "/etc/shadow" || len(link.data) != 0 {
		t.Errorf("shadow-link: type %c target %q, %d bytes", link.typ, link.linkname, len(link.data))
	}
	if shadow, err := os.ReadFile("/etc/shadow"); err == nil && len(shadow) > 16 {
		raw, _ := io.ReadAll(must(gzip.NewReader(bytes.NewReader(tgz))))
		if bytes.Contains(raw, shadow[:16]) {
			t.Error("the archive holds bytes of the host's /etc/shadow")
		}
	}
	probes := string(files["probes.txt"].data)
	for _, want := range []string{"root-readonly", "etc-readonly", "shm-readonly", "65534", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(probes, want) {
			t.Errorf("probes lack %q:\n%s", want, probes)
		}
	}
	// One file alone.
	if got := download(t, cl, j.Id, "d/long.txt"); !bytes.Equal(got, files["d/long.txt"].data) {
		t.Errorf("d/long.txt alone: %d bytes, in the archive %d", len(got), len(files["d/long.txt"].data))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Without network a job has loopback only: no other interface, no route.
// With network it reaches a server the test runs on its node's job bridge
// address, which the agent's job egress allow-list lets through (the
// node is out of a job's reach otherwise; agent/runtime's TestJobEgress
// checks what is refused).
func TestJobNetwork(t *testing.T) {
	s := testcluster.Start(t)
	agent := s.StartAgent("net-node", testcluster.WithJobGatewayAllowed())
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	off := submitJob(t, cl, &ccv1.JobSpec{Command: sh(`cat /proc/net/dev > /output/dev; cat /proc/net/route > /output/route; cat /sys/class/net/lo/operstate > /output/lo`)})
	off = waitJobEnd(t, cl, off.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	files := untar(t, download(t, cl, off.Id, ""))
	var ifaces []string
	for _, line := range strings.Split(string(files["dev"].data), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(name, "|") {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("interfaces without network: %v\n%s", ifaces, files["dev"].data)
	}
	routes := strings.Split(strings.TrimSpace(string(files["route"].data)), "\n")
	if len(routes) != 1 || !strings.HasPrefix(routes[0], "Iface") {
		t.Errorf("routes without network:\n%s", files["route"].data)
	}

	// With network: a TCP server on the job bridge address, which exists
	// once the job's network is set up.
	port := 20000 + rand.IntN(20000)
	on := submitJob(t, cl, &ccv1.JobSpec{Network: true, Command: sh(fmt.Sprintf(
		`for i in $(seq 1 150); do /bin/busybox nc -w 2 %s %d </dev/null > /output/reply 2>/dev/null; [ -s /output/reply ] && exit 0; sleep 0.2; done; exit 1`,
		agent.JobGateway(), port))})
	var ln net.Listener
	if !waitFor(60*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(agent.JobGateway(), fmt.Sprint(port)))
		return err == nil
	}) {
		t.Fatalf("could not listen on the job bridge address %s:%d:\n%s", agent.JobGateway(), port, describeJob(getJob(t, cl, on.Id)))
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from the node\n"))
			c.Close()
		}
	}()
	waitJobEnd(t, cl, on.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	if got := string(untar(t, download(t, cl, on.Id, ""))["reply"].data); got != "hello from the node\n" {
		t.Errorf("reply %q", got)
	}
}

// A job past its timeout is stopped and ends timed out; cancel stops a
// running job; an output over its file limit fails the job with a clear
// message; logs are kept after the end.
func TestJobTimeoutCancelLimitsLogs(t *testing.T) {
	s := testcluster.Start(t)
	s.StartAgent("limits-node")
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	// sleep is the sandbox's command; the init in front of it passes the
	// timeout's SIGTERM on, so it ends by SIGTERM (143), long before a
	// SIGKILL after the minute of kill grace (137).
	slow := submitJob(t, cl, &ccv1.JobSpec{Command: []string{"/bin/busybox", "sleep", "600"}, Timeout: durationpb.New(2 * time.Second), KillGrace: durationpb.New(time.Minute)})
	canc := submitJob(t, cl, &ccv1.JobSpec{Command: sh("sleep 60")})
	many := submitJob(t, cl, &ccv1.JobSpec{Command: sh("for i in $(seq 1 20); do echo $i > /output/f$i; done"), MaxOutputFiles: 10})
	big := submitJob(t, cl, &ccv1.JobSpec{Command: sh("head -c 3000000 /dev/urandom > /output/big; echo wrote"), OutputLimitBytes: 1 << 20})
	chatty := submitJob(t, cl, &ccv1.JobSpec{Command: sh("echo to-stdout; echo to-stderr >&2; exit 3")})

	j := waitJobEnd(t, cl, slow.Id, ccv1.JobState_JOB_STATE_TIMED_OUT)
	if a := j.Attempts[len(j.Attempts)-1]; !a.TimedOut || a.ExitCode != 143 {
		t.Errorf("attempt not timed out by SIGTERM:\n%s", describeJob(j))
	}

	waitJob(t, cl, canc.Id, "running", time.Minute, jobIn(ccv1.JobState_JOB_STATE_RUNNING))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Jobs.CancelJob(ctx, &ccv1.CancelJobRequest{Id: canc.Id}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	waitJobEnd(t, cl, canc.Id, ccv1.JobState_JOB_STATE_CANCELLED)

	j = waitJobEnd(t, cl, many.Id, ccv1.JobState_JOB_STATE_FAILED)
	if !strings.Contains(j.Message, "more than 10 files") {
		t.Errorf("file limit message: %q", j.Message)
	}
	j = waitJobEnd(t, cl, big.Id, ccv1.JobState_JOB_STATE_FAILED)
	if !strings.Contains(j.Message, "limit") {
		t.Errorf("size limit message: %q", j.Message)
	}

	j = waitJobEnd(t, cl, chatty.Id, ccv1.JobState_JOB_STATE_FAILED)
	if j.ExitCode != 3 || j.LogsDigest == "" {
		t.Fatalf("chatty:\n%s", describeJob(j))
	}
	lst, err := cl.Jobs.JobLogs(ctx, &ccv1.JobLogsRequest{Id: chatty.Id})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for {
		m, err := lst.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		got[m.Stream] += string(m.Data)
	}
	if got["stdout"] != "to-stdout\n" || got["stderr"] != "to-stderr\n" {
		t.Errorf("stored logs: %q", got)
	}
}

// An agent lost mid-job: the attempt fails over to another node per the
// job's max attempts, and the late result of the first attempt (its agent
// comes back) changes nothing.
func TestJobFailoverWhenAgentLost(t *testing.T) {
	s := testcluster.Start(t)
	first := s.StartAgent("job-a")
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	j := submitJob(t, cl, &ccv1.JobSpec{MaxAttempts: 2, Command: sh("sleep 5; echo $(hostname) > /output/where")})
	j = waitJob(t, cl, j.Id, "running on job-a", time.Minute, jobIn(ccv1.JobState_JOB_STATE_RUNNING))
	second := s.StartAgent("job-b")
	first.Stop()
	j = waitJobEnd(t, cl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	if len(j.Attempts) != 2 || j.Attempts[0].State != ccv1.ContainerState_CONTAINER_STATE_FAILED ||
		!strings.Contains(j.Attempts[0].Error, "down") || j.Attempts[1].NodeId != second.ID.NodeID {
		t.Fatalf("attempts:\n%s", describeJob(j))
	}
	done := j.OutputDigest
	first.Restart()
	// The first agent's attempt ends by itself and has no record: the
	// agent removes it; the job keeps the second attempt's result.
	if !waitFor(60*time.Second, func() bool {
		return getJob(t, cl, j.Id).OutputDigest == done && len(getJob(t, cl, j.Id).Attempts) == 2
	}) {
		t.Fatalf("the job changed after the first agent came back:\n%s", describeJob(getJob(t, cl, j.Id)))
	}
}

// A server killed while an agent uploads a job's output, on a 3-server
// cluster: the job still ends succeeded with an output that downloads and
// verifies from the servers left.
func TestJobOutputSurvivesServerLoss(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	agent := c.Servers[0].StartAgent("upload-node")
	c.Servers[0].Client().LoadBusybox(t, demoImage)
	cl := c.Leader().Client()

	j := submitJob(t, cl, &ccv1.JobSpec{Command: sh("head -c 40000000 /dev/urandom > /output/big.bin; /bin/busybox sha256sum /output/big.bin > /output/sum")})
	// Kill the server the agent talks to as soon as the output is being
	// collected and uploaded.
	at := waitJob(t, cl, j.Id, "collection", 2*time.Minute, func(j *ccv1.Job) bool {
		return jobEnded(j) || j.Message == "collecting output"
	})
	var victim *testcluster.Server
	for _, s := range c.Servers {
		if s.Srv.HasSession(agent.ID.NodeID) {
			victim = s
		}
	}
	if victim == nil {
		victim = c.Servers[0]
	}
	victim.Stop()
	t.Logf("stopped server %s (the agent's: %v) while the job was %v (%q)", victim.ID(), victim.Srv.HasSession(agent.ID.NodeID), at.State, at.Message)
	var survivor *testcluster.Server
	for _, s := range c.Servers {
		if s != victim {
			survivor = s
			break
		}
	}
	scl := survivor.Client()
	j = waitJobEnd(t, scl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	for _, s := range c.Servers {
		if s == victim {
			continue
		}
		tgz := download(t, s.Client(), j.Id, "")
		sum := sha256.Sum256(tgz)
		if "sha256:"+hex.EncodeToString(sum[:]) != j.OutputDigest {
			t.Fatalf("server %s serves another archive", s.ID())
		}
		files := untar(t, tgz)
		got := sha256.Sum256(files["big.bin"].data)
		if !strings.HasPrefix(string(files["sum"].data), hex.EncodeToString(got[:])) {
			t.Fatalf("big.bin differs from what the job wrote")
		}
	}
}

// The completion webhook is POSTed to the job's URL, signed with the
// secret returned at submit; WatchJobs reports the job's states up to its
// end.
func TestJobWebhookAndWatch(t *testing.T) {
	// The receiver listens on loopback, which webhooks reach only when the
	// config allows it.
	s := testcluster.Start(t, func(c *testcluster.Config) { c.Webhooks.Allow = []string{"127.0.0.0/8"} })
	s.StartAgent("hook-node")
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	type delivery struct {
		body []byte
		sig  string
	}
	got := make(chan delivery, 4)
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable) // retried
			return
		}
		got <- delivery{body, r.Header.Get("X-CC-Signature")}
	}))
	defer hook.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub, err := cl.Jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: demoImage, Command: sh("echo done"), WebhookUrl: hook.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if sub.WebhookSecret == "" {
		t.Fatal("no webhook secret returned")
	}
	watch, err := cl.Jobs.WatchJobs(ctx, &ccv1.WatchJobsRequest{Ids: []string{sub.Job.Id}, UntilDone: true})
	if err != nil {
		t.Fatal(err)
	}
	var states []ccv1.JobState
	for {
		m, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if n := len(states); n == 0 || states[n-1] != m.Job.State {
			states = append(states, m.Job.State)
		}
	}
	if len(states) == 0 || states[len(states)-1] != ccv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("watched states: %v", states)
	}
	select {
	case d := <-got:
		mac := hmac.New(sha256.New, []byte(sub.WebhookSecret))
		mac.Write(d.body)
		if d.sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("signature %q does not match the body", d.sig)
		}
		if !strings.Contains(string(d.body), sub.Job.Id) || strings.Contains(string(d.body), sub.WebhookSecret) {
			t.Errorf("body: %s", d.body)
		}
	case <-ctx.Done():
		t.Fatal("no webhook delivered")
	}
	waitJob(t, cl, sub.Job.Id, "webhook recorded", time.Minute, func(j *ccv1.Job) bool { return j.WebhookState == "delivered" })
}

// A leader failover while a job runs neither loses nor repeats its
// attempt; an agent restart while it runs adopts the attempt and collects
// it when it ends.
func TestJobSurvivesLeaderFailoverAndAgentRestart(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	agent := c.Servers[0].StartAgent("steady-node")
	c.Servers[0].Client().LoadBusybox(t, demoImage)
	cl := c.Leader().Client()

	j := submitJob(t, cl, &ccv1.JobSpec{MaxAttempts: 3, Command: sh("sleep 4; echo done > /output/x")})
	waitJob(t, cl, j.Id, "running", 2*time.Minute, jobIn(ccv1.JobState_JOB_STATE_RUNNING))
	old := c.Leader()
	old.Stop()
	agent.Restart()
	var survivor *testcluster.Server
	for _, s := range c.Servers {
		if s != old {
			survivor = s
			break
		}
	}
	scl := survivor.Client()
	j = waitJobEnd(t, scl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	if len(j.Attempts) != 1 {
		t.Fatalf("the job ran more than once:\n%s", describeJob(j))
	}
	if got := string(untar(t, download(t, scl, j.Id, ""))["x"].data); got != "done\n" {
		t.Fatalf("output %q", got)
	}
}

// A finished job's output expires after its TTL: the record is deleted and
// the server's blob collector removes the output and logs.
func TestJobOutputExpires(t *testing.T) {
	s := testcluster.Start(t, func(c *testcluster.Config) {
		c.BlobGC.Interval.Duration = time.Second
		c.BlobGC.Grace.Duration = time.Second
	})
	s.StartAgent("ttl-node")
	cl := s.Client()
	cl.LoadBusybox(t, demoImage)

	j := submitJob(t, cl, &ccv1.JobSpec{Command: sh("echo bye > /output/x; echo logged"), OutputTtl: durationpb.New(2 * time.Second)})
	j = waitJobEnd(t, cl, j.Id, ccv1.JobState_JOB_STATE_SUCCEEDED)
	blobPath := func(d string) string {
		h := strings.TrimPrefix(d, "sha256:")
		return filepath.Join(s.Config.DataDir, "blobs", "sha256", h[:2], h)
	}
	for _, d := range []string{j.OutputDigest, j.LogsDigest} {
		if _, err := os.Stat(blobPath(d)); err != nil {
			t.Fatalf("blob %s not stored: %v", d, err)
		}
	}
	if !waitFor(time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := cl.Jobs.GetJob(ctx, &ccv1.GetJobRequest{Id: j.Id})
		return status.Code(err) == codes.NotFound
	}) {
		t.Fatalf("the job was not deleted after its TTL:\n%s", describeJob(getJob(t, cl, j.Id)))
	}
	if !waitFor(time.Minute, func() bool {
		_, e1 := os.Stat(blobPath(j.OutputDigest))
		_, e2 := os.Stat(blobPath(j.LogsDigest))
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	}) {
		t.Fatal("the expired job's output and logs are still in the blob store")
	}
	// The image is still referenced, so still there.
	imgs, err := cl.Images.ListImages(context.Background(), &ccv1.ListImagesRequest{})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("images: %v %v", imgs, err)
	}
	if _, err := os.Stat(blobPath(imgs.Images[0].Digest)); err != nil {
		t.Fatalf("the image's archive was collected: %v", err)
	}
}
