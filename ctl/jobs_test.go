package ctl

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestJobSubmitSendsTheSpec(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	t.Setenv("FROM_HERE", "here")
	r := runCtl(conn, "job", "submit", "-e", "A=1,2", "--env", "FROM_HERE", "--memory", "1g", "--cpus", "1.5", "--pids", "100",
		"--timeout", "10m", "--kill-grace", "5s", "--priority", "-3", "--queue", "nightly", "--max-attempts", "3",
		"--retry-on-failure", "--network", "--output-limit", "100m", "--tmp-limit", "256m", "--max-output-files", "50",
		"-l", "team=data", "--label", "run=7", "--webhook", "https://ci.example/hook", "--webhook-secret", "s3cret",
		"--idempotency-key", "build-42", "--output-ttl", "72h", "-u", "1000:1000", "-w", "/work",
		"python:3.12", "python", "-c", "print(1)", "--wait", "-o", "json")
	if r.code != 0 || r.stdout != "j0b0123456789abc\n" || r.stderr != "" {
		t.Fatalf("job submit: %+v; want the id only", r)
	}
	want := &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{
		Image:            "python:3.12",
		Command:          []string{"python", "-c", "print(1)", "--wait", "-o", "json"},
		Env:              []string{"A=1,2", "FROM_HERE=here"},
		Resources:        &ccv1.ContainerResources{MemoryBytes: 1 << 30, CpuMillis: 1500, Pids: 100},
		Timeout:          durationpb.New(10 * time.Minute),
		KillGrace:        durationpb.New(5 * time.Second),
		Priority:         -3,
		Queue:            "nightly",
		MaxAttempts:      3,
		RetryOnFailure:   true,
		Network:          true,
		OutputLimitBytes: 100 << 20, TmpLimitBytes: 256 << 20, MaxOutputFiles: 50,
		Labels:     map[string]string{"team": "data", "run": "7"},
		WebhookUrl: "https://ci.example/hook", WebhookSecret: "s3cret",
		IdempotencyKey: "build-42",
		OutputTtl:      durationpb.New(72 * time.Hour),
		User:           "1000:1000", Workdir: "/work",
	}}
	f.locked(func() {
		if !proto.Equal(f.submit, want) {
			t.Errorf("SubmitJob got\n%v\nwant\n%v", f.submit, want)
		}
	})

	// The least: the image, and "--" starts the command; "run" is an alias.
	r = runCtl(conn, "job", "run", "busybox", "--", "ls", "-l")
	want = &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", Command: []string{"ls", "-l"}}}
	f.locked(func() {
		if r.code != 0 || !proto.Equal(f.submit, want) {
			t.Errorf("job run busybox -- ls -l: %+v\nsent %v, want %v", r, f.submit, want)
		}
	})

	// -o json prints the response.
	r = runCtl(conn, "job", "submit", "-o", "json", "busybox")
	var got struct {
		Job struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.Job.ID != "j0b0123456789abc" || got.Job.State != "JOB_STATE_QUEUED" {
		t.Errorf("job submit -o json: %+v (%v)", r, err)
	}
}

func TestJobSubmitRejectsBadFlags(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	nope := filepath.Join(t.TempDir(), "nope")
	cases := map[string][]string{
		`ccctl: --memory "lots": use a size like 64m or 1g`:                                                 {"job", "submit", "--memory", "lots", "busybox"},
		`ccctl: --cpus "x": use a number of cores like 0.5 or 2`:                                            {"job", "submit", "--cpus", "x", "busybox"},
		`ccctl: --timeout "soon": use a duration more than 0 like 10s, 500ms or 1m30s`:                      {"job", "submit", "--timeout", "soon", "busybox"},
		`ccctl: --priority "high": use a whole number, higher first (e.g. 10 or -5)`:                        {"job", "submit", "--priority", "high", "busybox"},
		`ccctl: --max-attempts "1000": the most is 100`:                                                     {"job", "submit", "--max-attempts", "1000", "busybox"},
		`ccctl: --retry-on-failure retries up to --max-attempts, which is 1: add --max-attempts N (e.g. 3)`: {"job", "submit", "--retry-on-failure", "busybox"},
		`ccctl: --label "team" is not KEY=VALUE (e.g. zone=a)`:                                              {"job", "submit", "-l", "team", "busybox"},
		`ccctl: --webhook "ftp://x": use an http or https URL (e.g. https://ci.example/hook)`:               {"job", "submit", "--webhook", "ftp://x", "busybox"},
		`ccctl: --webhook-secret signs the webhook's requests: add --webhook URL`:                           {"job", "submit", "--webhook-secret", "s", "busybox"},
		`ccctl: --output-limit 0: give a size more than 0, or leave the flag out for the default`:           {"job", "submit", "--output-limit", "0", "busybox"},
		"ccctl: job submit needs an IMAGE (e.g. ccctl job submit alpine:3.20 -- echo hi)":                   {"job", "submit", "--queue", "q"},
		"ccctl: --input " + nope + ": no such file or directory":                                            {"job", "submit", "--input", nope, "busybox"},
	}
	for want, args := range cases {
		r := runCtl(conn, args...)
		if r.code != 1 || r.stderr != want+"\n" || r.stdout != "" {
			t.Errorf("%q: %+v; want exit 1 and %q", args, r, want)
		}
	}
	f.locked(func() {
		if f.submit != nil || f.upload != nil {
			t.Errorf("a job was submitted: %v", f.submit)
		}
	})
}

// readTarGz returns the entries of a tar.gz: name → content (or "-> target"
// for a link, "dir" for a directory), and the modes.
func readTarGz(t *testing.T, data []byte) (map[string]string, map[string]int64) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files, modes := map[string]string{}, map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, modes
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		switch h.Typeflag {
		case tar.TypeDir:
			files[h.Name] = "dir"
		case tar.TypeSymlink:
			files[h.Name] = "-> " + h.Linkname
		default:
			files[h.Name] = string(body)
		}
		modes[h.Name] = h.Mode
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: owner %d:%d %q; want none", h.Name, h.Uid, h.Gid, h.Uname)
		}
	}
}

func TestJobSubmitInputUploadsTarGz(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	dir := t.TempDir()
	write := func(rel, content string, mode fs.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("data.csv", "a,b\n1,2\n", 0o600)
	write("scripts/run.py", "print(1)\n", 0o755)
	write("scripts/lib/util.py", "X = 1\n", 0o644)
	if err := os.Symlink("lib/util.py", filepath.Join(dir, "scripts", "link.py")); err != nil {
		t.Fatal(err)
	}
	r := runCtl(conn, "job", "submit", "--progress", "--input", filepath.Join(dir, "data.csv"), "--input", filepath.Join(dir, "scripts")+"/",
		"python:3.12", "python", "/input/scripts/run.py")
	if r.code != 0 || r.stdout != "j0b0123456789abc\n" {
		t.Fatalf("job submit --input: %+v", r)
	}
	if !strings.Contains(r.stderr, "\rUploading") || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("--progress: no upload bar on stderr: %q", r.stderr)
	}
	f.locked(func() {
		sum := sha256.Sum256(f.upload)
		if f.uploadHeader.GetSize() != int64(len(f.upload)) || f.uploadHeader.GetSha256() != hex.EncodeToString(sum[:]) {
			t.Errorf("upload header %v; want the size %d and sha256 of the data", f.uploadHeader, len(f.upload))
		}
		if want := "sha256:" + hex.EncodeToString(sum[:]); f.submit.GetSpec().GetInputDigest() != want {
			t.Errorf("input_digest %q; want %q", f.submit.GetSpec().GetInputDigest(), want)
		}
		files, modes := readTarGz(t, f.upload)
		want := map[string]string{
			"data.csv":            "a,b\n1,2\n",
			"scripts/":            "dir",
			"scripts/run.py":      "print(1)\n",
			"scripts/lib/":        "dir",
			"scripts/lib/util.py": "X = 1\n",
			"scripts/link.py":     "-> lib/util.py",
		}
		if !equalMaps(files, want) {
			t.Errorf("archive holds %q; want %q", files, want)
		}
		if modes["data.csv"] != 0o644 || modes["scripts/run.py"] != 0o755 {
			t.Errorf("modes %v; want data.csv readable by all (0644), run.py 0755", modes)
		}
	})

	// Two inputs of one name would collide under /input.
	other := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(other, nil, 0o644)
	r = runCtl(conn, "job", "submit", "--input", filepath.Join(dir, "data.csv"), "--input", other, "busybox")
	if r.code != 1 || !strings.Contains(r.stderr, "would both be /input/data.csv") {
		t.Errorf("two inputs named data.csv: %+v", r)
	}
}

func equalMaps[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestJobSubmitWebhookSecretAndExisting(t *testing.T) {
	f := &fakeAPI{existing: true}
	conn := startFake(t, f)
	r := runCtl(conn, "job", "submit", "--webhook", "https://ci.example/hook", "--idempotency-key", "k1", "busybox")
	if r.code != 0 || r.stdout != "j0b0123456789abc\n" {
		t.Fatalf("job submit --webhook: %+v", r)
	}
	for _, want := range []string{"Webhook secret (shown once", "whsec-generated\n", `--idempotency-key "k1" matched job j0b0123456789abc`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func finished(state ccv1.JobState, exit int32, msg string) *ccv1.Job {
	start := time.Now().Add(-time.Minute)
	j := &ccv1.Job{
		Id: "j0b0123456789abc", State: state, ExitCode: exit, Message: msg,
		Spec:      &ccv1.JobSpec{Image: "busybox"},
		CreatedAt: timestamppb.New(start.Add(-time.Second)), StartedAt: timestamppb.New(start), FinishedAt: timestamppb.New(start.Add(12 * time.Second)),
		Attempts: []*ccv1.JobAttempt{{Id: "c0ffee0123456789", Number: 1, NodeId: "n1",
			State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: exit, StartedAt: timestamppb.New(start), FinishedAt: timestamppb.New(start.Add(12 * time.Second))}},
	}
	switch state {
	case ccv1.JobState_JOB_STATE_TIMED_OUT:
		j.Attempts[0].TimedOut, j.Attempts[0].ExitCode, j.ExitCode = true, 137, 0
	case ccv1.JobState_JOB_STATE_FAILED:
		if exit == 0 {
			j.Attempts[0].State = ccv1.ContainerState_CONTAINER_STATE_FAILED
			j.Attempts[0].Error = msg
		}
	}
	return j
}

func running() *ccv1.Job {
	return &ccv1.Job{Id: "j0b0123456789abc", State: ccv1.JobState_JOB_STATE_RUNNING, Spec: &ccv1.JobSpec{Image: "busybox"},
		StartedAt: timestamppb.Now(), Attempts: []*ccv1.JobAttempt{{Number: 1, NodeId: "n1", State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}
}

func queued() *ccv1.Job {
	return &ccv1.Job{Id: "j0b0123456789abc", State: ccv1.JobState_JOB_STATE_QUEUED, Spec: &ccv1.JobSpec{Image: "busybox"}}
}

func TestJobWaitExitCodes(t *testing.T) {
	cases := []struct {
		job      *ccv1.Job
		code     int
		lastLine string
	}{
		{finished(ccv1.JobState_JOB_STATE_SUCCEEDED, 0, ""), 0, "j0b012345678 succeeded after 12s"},
		{finished(ccv1.JobState_JOB_STATE_FAILED, 3, ""), 3, "j0b012345678 failed with exit code 3 after 12s"},
		{finished(ccv1.JobState_JOB_STATE_FAILED, 0, "node lost"), 1, "j0b012345678 failed after 12s: node lost"},
		{finished(ccv1.JobState_JOB_STATE_TIMED_OUT, 0, "ran longer than 10s"), 124, "j0b012345678 timed out after 12s: ran longer than 10s"},
		{finished(ccv1.JobState_JOB_STATE_CANCELLED, 0, ""), 130, "j0b012345678 cancelled after 12s"},
	}
	for _, c := range cases {
		f := &fakeAPI{watch: []*ccv1.Job{queued(), queued(), running()}, job: c.job}
		conn := startFake(t, f)
		r := runCtl(conn, "job", "wait", "j0b0")
		want := "j0b012345678 queued\nj0b012345678 running on node-1\n" + c.lastLine + "\n"
		if r.code != c.code || r.stdout != "" || r.stderr != want {
			t.Errorf("job wait for %v: %+v; want exit %d and stderr\n%s", c.job.State, r, c.code, want)
		}
		// -q says nothing; the exit code is the same.
		if r := runCtl(conn, "job", "wait", "-q", "j0b0"); r.code != c.code || r.stdout != "" || r.stderr != "" {
			t.Errorf("job wait -q for %v: %+v; want exit %d and no output", c.job.State, r, c.code)
		}
	}

	// submit --wait: the id, then the wait.
	f := &fakeAPI{watch: []*ccv1.Job{running()}, job: finished(ccv1.JobState_JOB_STATE_FAILED, 3, "")}
	conn := startFake(t, f)
	r := runCtl(conn, "job", "submit", "--wait", "busybox", "--", "sh", "-c", "exit 3")
	if r.code != 3 || r.stdout != "j0b0123456789abc\n" || !strings.HasSuffix(r.stderr, "failed with exit code 3 after 12s\n") {
		t.Errorf("job submit --wait: %+v; want exit 3", r)
	}
	// An unknown job: one line, exit 1.
	if r := runCtl(conn, "job", "wait", "zzz"); r.code != 1 || r.stderr != "ccctl: not found: no job zzz\n" {
		t.Errorf("job wait zzz: %+v", r)
	}
}

// fastPolls makes waitJob poll every 10ms for the test.
func fastPolls(t *testing.T) {
	was := jobPollInterval
	jobPollInterval = 10 * time.Millisecond
	t.Cleanup(func() { jobPollInterval = was })
}

func TestJobWaitPollsWhenTheStreamBreaks(t *testing.T) {
	fastPolls(t)
	for _, werr := range []error{status.Error(codes.Unavailable, "connection reset"), status.Error(codes.Unimplemented, "unknown method")} {
		f := &fakeAPI{watch: []*ccv1.Job{running()}, watchErr: werr, job: finished(ccv1.JobState_JOB_STATE_SUCCEEDED, 0, "")}
		conn := startFake(t, f)
		r := runCtl(conn, "job", "wait", "j0b0")
		if r.code != 0 || !strings.HasSuffix(r.stderr, "succeeded after 12s\n") {
			t.Errorf("job wait with a watch that fails with %v: %+v; want exit 0", werr, r)
		}
		f.locked(func() {
			if f.gets < 1 {
				t.Errorf("watch failed with %v, and GetJob was never called", werr)
			}
		})
	}

	// The job ends while the stream is down: polling finds it, and the
	// watch is tried again meanwhile.
	f := &fakeAPI{watch: []*ccv1.Job{running()}, watchErr: status.Error(codes.Unavailable, "leader changed"), job: running()}
	conn := startFake(t, f)
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.locked(func() { f.job = finished(ccv1.JobState_JOB_STATE_FAILED, 7, "") })
	}()
	r := runCtl(conn, "job", "wait", "j0b0")
	if r.code != 7 || strings.Count(r.stderr, "running on node-1") != 1 {
		t.Errorf("job wait across a broken stream: %+v; want exit 7 and one running line", r)
	}
	f.locked(func() {
		if f.watches < 2 {
			t.Errorf("%d watches; want reconnects", f.watches)
		}
	})
}

func TestJobWaitTimeout(t *testing.T) {
	f := &fakeAPI{watch: []*ccv1.Job{running()}, watchHang: true, job: running()}
	conn := startFake(t, f)
	start := time.Now()
	r := runCtl(conn, "job", "wait", "--timeout", "300ms", "j0b0")
	want := "ccctl: job j0b012345678 is still running after --timeout 300ms; it goes on: wait again with `ccctl job wait j0b012345678`, or stop it with `ccctl job cancel j0b012345678`\n"
	if r.code != 2 || !strings.HasSuffix(r.stderr, want) {
		t.Errorf("job wait --timeout: %+v; want exit 2 and\n%s", r, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("job wait --timeout 300ms took %v", d)
	}
	if r := runCtl(conn, "job", "wait", "--timeout", "0s", "j0b0"); r.code != 1 || !strings.Contains(r.stderr, "--timeout \"0s\"") {
		t.Errorf("--timeout 0s: %+v", r)
	}
}

func TestJobLsTable(t *testing.T) {
	now := time.Now()
	f := &fakeAPI{jobs: []*ccv1.Job{
		running(),
		{Id: "0123456789abcdef", State: ccv1.JobState_JOB_STATE_QUEUED, CreatedAt: timestamppb.New(now.Add(-3 * time.Minute)),
			Spec: &ccv1.JobSpec{Queue: "nightly", Priority: 5, MaxAttempts: 3}},
		finished(ccv1.JobState_JOB_STATE_FAILED, 3, "exit 3"),
	}}
	f.jobs[0].Id = "fedcba9876543210"
	conn := startFake(t, f)
	r := runCtl(conn, "job", "ls", "--state", "timed-out", "--queue", "q", "-l", "a=b", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("job ls: %+v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "ID STATE QUEUE PRIO NODE ATTEMPTS AGE DURATION EXIT" {
		t.Errorf("header %q", lines[0])
	}
	if got := strings.Fields(lines[1]); !slices.Equal(got, []string{"fedcba987654", "running", "default", "0", "node-1", "1/1", "-", "0s", "-"}) {
		t.Errorf("row 1 %q", got)
	}
	if got := strings.Fields(lines[2]); !slices.Equal(got, []string{"0123456789ab", "queued", "nightly", "5", "-", "0/3", "3m00s", "-", "-"}) {
		t.Errorf("row 2 %q", got)
	}
	if r.stderr != "More jobs: add --page p2 (or list them all with --all-pages)\n" {
		t.Errorf("no hint for the next page: %q", r.stderr)
	}
	f.locked(func() {
		want := &ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_TIMED_OUT, Queue: "q", Label: []string{"a=b"}, Limit: 2}
		if !proto.Equal(f.listReqs[0], want) {
			t.Errorf("ListJobs got %v, want %v", f.listReqs[0], want)
		}
	})

	// The next page, as the hint says.
	r = runCtl(conn, "job", "ls", "--limit", "2", "--page", "p2")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || r.stderr != "" {
		t.Fatalf("job ls --page p2: %+v", r)
	} else if got := strings.Fields(lines[1]); got[1] != "failed" || got[7] != "12s" || got[8] != "3" {
		t.Errorf("failed row %q", got)
	}

	// Every page, as JSON; -q prints whole ids.
	r = runCtl(conn, "job", "ls", "--limit", "1", "--all-pages", "-o", "json")
	var got struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
		Next string `json:"next_page_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || len(got.Jobs) != 3 || got.Next != "" {
		t.Errorf("job ls --all-pages -o json: %+v (%v) %+v", r, err, got)
	}
	if r := runCtl(conn, "job", "ls", "-q", "-A"); r.stdout != "fedcba9876543210\n0123456789abcdef\nj0b0123456789abc\n" {
		t.Errorf("job ls -q -A: %+v", r)
	}
	if r := runCtl(conn, "job", "ls", "--state", "done"); r.code != 1 || !strings.Contains(r.stderr, `--state "done": use queued, assigned, running`) {
		t.Errorf("--state done: %+v", r)
	}
}

func TestJobStatus(t *testing.T) {
	j := finished(ccv1.JobState_JOB_STATE_SUCCEEDED, 0, "")
	j.Spec = &ccv1.JobSpec{Image: "python:3.12", Command: []string{"python", "-c", "print('hi')"}, Queue: "nightly", Priority: 2,
		Labels: map[string]string{"team": "data", "a": "b"}, WebhookUrl: "https://ci.example/hook", MaxAttempts: 2,
		Resources: &ccv1.ContainerResources{MemoryBytes: 1 << 30}}
	j.OutputDigest, j.OutputSize, j.OutputFiles = "sha256:abcdef", 12<<10, 3
	j.WebhookState = "delivered"
	j.ExpiresAt = timestamppb.New(time.Now().Add(72 * time.Hour))
	f := &fakeAPI{job: j}
	conn := startFake(t, f)
	r := runCtl(conn, "job", "status", "j0b0")
	if r.code != 0 {
		t.Fatalf("job status: %+v", r)
	}
	for _, want := range []string{
		"ID:        j0b0123456789abc\n",
		"State:     succeeded after 12s\n",
		"Command:   python -c 'print('\\''hi'\\'')'\n",
		"Queue:     nightly, priority 2\n",
		"Labels:    a=b, team=data\n",
		"Limits:    memory 1.0 GiB\n",
		"Output:    sha256:abcdef, 12.0 KiB in 3 files: `ccctl job output j0b012345678`\n",
		"Webhook:   https://ci.example/hook: delivered\n",
		"Attempts:  1 of at most 2\n",
		"ATTEMPT",
		"c0ffee012345  node-1  exited (0)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCtl(conn, "job", "inspect", "-o", "json", "j0b0")
	var got struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.State != "JOB_STATE_SUCCEEDED" {
		t.Errorf("job inspect -o json: %+v (%v)", r, err)
	}
}

func TestJobCancelGoesOnAfterAFailure(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "job", "cancel", "a", "nope", "done")
	if r.code != 1 || r.stdout != "a\ndone\n" ||
		r.stderr != "ccctl: job cancel nope: not found: no job nope\nccctl: job done had already succeeded; left as it is\n" {
		t.Errorf("job cancel a nope done: %+v", r)
	}
	f.locked(func() {
		if !slices.Equal(f.cancels, []string{"a", "nope", "done"}) {
			t.Errorf("CancelJob calls %q", f.cancels)
		}
	})
}

func TestJobLogsSplitsStreams(t *testing.T) {
	f := &fakeAPI{jobLogs: []*ccv1.JobLogsResponse{
		{Stream: "stdout", Data: []byte("out1\n")},
		{Stream: "stderr", Data: []byte("err1\n")},
		{Stream: "stdout", Data: []byte("out2\n")},
	}}
	conn := startFake(t, f)
	r := runCtl(conn, "job", "logs", "-f", "--tail", "10", "j0b0")
	if r.code != 0 || r.stdout != "out1\nout2\n" || r.stderr != "err1\n" {
		t.Errorf("job logs: %+v", r)
	}
	f.locked(func() {
		if want := (&ccv1.JobLogsRequest{Id: "j0b0", Follow: true, Tail: 10}); !proto.Equal(f.jobLogsReq, want) {
			t.Errorf("JobLogs got %v, want %v", f.jobLogsReq, want)
		}
	})
}

func TestQueueSetAndLs(t *testing.T) {
	f := &fakeAPI{queues: []*ccv1.Queue{{Name: "default", Queued: 3, Running: 1}, {Name: "nightly", MaxRunning: 4, AllowNetwork: true, Queued: 10, Running: 4}}}
	conn := startFake(t, f)
	if r := runCtl(conn, "queue", "set", "nightly", "--max-running", "4"); r.code != 0 || r.stdout != "Queue nightly: at most 4 running jobs\n" {
		t.Errorf("queue set: %+v", r)
	}
	f.locked(func() {
		if want := (&ccv1.SetQueueRequest{Name: "nightly", MaxRunning: 4}); !proto.Equal(f.setQueue, want) {
			t.Errorf("SetQueue got %v", f.setQueue)
		}
	})
	if r := runCtl(conn, "queue", "set", "nightly", "--max-running", "0"); r.code != 0 || r.stdout != "Queue nightly: no limit on running jobs\n" {
		t.Errorf("queue set 0: %+v", r)
	}
	allow := true
	if r := runCtl(conn, "queue", "set", "nightly", "--max-running", "4", "--allow-network"); r.code != 0 ||
		r.stdout != "Queue nightly: at most 4 running jobs\nQueue nightly: jobs tokens may submit jobs with network\n" {
		t.Errorf("queue set --allow-network: %+v", r)
	}
	f.locked(func() {
		if want := (&ccv1.SetQueueRequest{Name: "nightly", MaxRunning: 4, AllowNetwork: &allow}); !proto.Equal(f.setQueue, want) {
			t.Errorf("SetQueue got %v", f.setQueue)
		}
	})
	if r := runCtl(conn, "queue", "set", "nightly", "--max-running", "4", "--allow-network=false"); r.code != 0 || !strings.Contains(r.stdout, "only admins may submit jobs with network") {
		t.Errorf("queue set --allow-network=false: %+v", r)
	}
	f.locked(func() {
		if f.setQueue.AllowNetwork == nil || *f.setQueue.AllowNetwork {
			t.Errorf("SetQueue got %v", f.setQueue)
		}
	})
	if r := runCtl(conn, "queue", "set", "nightly"); r.code != 1 || !strings.Contains(r.stderr, `"max-running"`) {
		t.Errorf("queue set without --max-running: %+v", r)
	}
	r := runCtl(conn, "queue", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 ||
		strings.Join(strings.Fields(lines[0]), " ") != "NAME MAX RUNNING NETWORK QUEUED RUNNING" ||
		strings.Join(strings.Fields(lines[1]), " ") != "default - admins 3 1" ||
		strings.Join(strings.Fields(lines[2]), " ") != "nightly 4 jobs 10 4" {
		t.Errorf("queue ls: %+v", r)
	}
	r = runCtl(conn, "queue", "ls", "-o", "json")
	var got struct {
		Queues []struct {
			Name       string `json:"name"`
			MaxRunning int    `json:"max_running"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || len(got.Queues) != 2 || got.Queues[1].MaxRunning != 4 {
		t.Errorf("queue ls -o json: %+v (%v)", r, err)
	}
}

// tarEntry is an entry of a test archive.
type tarEntry struct {
	name, body string
	typ        byte
	link       string
	mode       int64
}

func makeTarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	return gzipBytes(makeTar(t, entries...))
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree lists what is under dir: path → content, "dir", or "-> target".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

func TestJobOutputExtracts(t *testing.T) {
	big := make([]byte, 300<<10)
	rand.Read(big)
	f := &fakeAPI{output: makeTarGz(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "./result.txt", body: "42\n"},
		tarEntry{name: "data/", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "data/big.bin", body: string(big), mode: 0o600},
		tarEntry{name: "deep/er/x.txt", body: "x"},
		tarEntry{name: "latest", typ: tar.TypeSymlink, link: "data/big.bin"},
		tarEntry{name: "again.txt", typ: tar.TypeLink, link: "result.txt"},
		tarEntry{name: "dev/null", typ: tar.TypeChar},
	)}
	conn := startFake(t, f)
	dir := filepath.Join(t.TempDir(), "out")
	r := runCtl(conn, "job", "output", "-o", dir, "j0b0")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("job output: %+v", r)
	}
	want := map[string]string{
		"result.txt": "42\n", "data": "dir", "data/big.bin": string(big), "deep": "dir", "deep/er": "dir", "deep/er/x.txt": "x",
		"latest": "-> data/big.bin", "again.txt": "42\n",
	}
	if got := tree(t, dir); !equalMaps(got, want) {
		t.Errorf("extracted %d entries %v; want %v", len(got), keys(got), keys(want))
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "big.bin")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("data/big.bin: %v %v; want mode 0600", fi, err)
	}
	for _, w := range []string{"ccctl: warning: dev/null: a device or FIFO, skipped\n", "Extracted 4 files ("} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}

	// Again: the files exist; nothing changes without --force.
	os.WriteFile(filepath.Join(dir, "result.txt"), []byte("mine"), 0o644)
	r = runCtl(conn, "job", "output", "-o", dir, "j0b0")
	if r.code != 1 || !strings.Contains(r.stderr, "exists: extract into another directory, or overwrite with --force") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("job output over existing files: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "result.txt")); string(b) != "mine" {
		t.Errorf("result.txt was overwritten without --force: %q", b)
	}
	if r := runCtl(conn, "job", "output", "-q", "--force", "-o", dir, "j0b0"); r.code != 0 || r.stderr != "" {
		t.Errorf("job output --force -q: %+v", r)
	}
	if got := tree(t, dir); !equalMaps(got, want) {
		t.Errorf("after --force: %v", keys(got))
	}

	// --progress draws a bar.
	if r := runCtl(conn, "job", "output", "--progress", "-o", t.TempDir(), "j0b0"); r.code != 0 || !strings.Contains(r.stderr, "\rDownloading") {
		t.Errorf("job output --progress: %+v", r)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestJobOutputRefusesUnsafeArchives(t *testing.T) {
	cases := map[string][]tarEntry{
		`refused entry "../x": the path has a ".." component`:          {{name: "ok.txt", body: "ok"}, {name: "../x", body: "evil"}},
		`refused entry "a/../../x"`:                                    {{name: "a/../../x", body: "evil"}},
		`refused entry "/tmp/x": the path is absolute`:                 {{name: "ok.txt", body: "ok"}, {name: "/tmp/x", body: "evil"}},
		`the symbolic link points outside the directory`:               {{name: "l", typ: tar.TypeSymlink, link: "../.."}, {name: "l/x", body: "evil"}},
		`the symbolic link points to the absolute path`:                {{name: "l", typ: tar.TypeSymlink, link: "/etc"}},
		`written through the symbolic link l of the archive`:           {{name: "sub/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "sub"}, {name: "l/x", body: "through"}},
		`a hard link may only point to a file the archive made before`: {{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}},
		`the archive has ok.txt twice`:                                 {{name: "ok.txt", body: "1"}, {name: "ok.txt", typ: tar.TypeSymlink, link: "x"}},
	}
	for want, entries := range cases {
		f := &fakeAPI{output: makeTarGz(t, entries...)}
		conn := startFake(t, f)
		parent := t.TempDir()
		dir := filepath.Join(parent, "a", "b", "out")
		r := runCtl(conn, "job", "output", "-o", dir, "j0b0")
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("%s: %+v; want exit 1 and one line with %q", entries[len(entries)-1].name, r, want)
		}
		// Nothing at all, in DIR or around it.
		if got := tree(t, parent); !equalMaps(got, map[string]string{"a": "dir", "a/b": "dir"}) {
			t.Errorf("%s: left %v", want, keys(got))
		}
	}

	// A symbolic link already in DIR is not written through.
	outside := t.TempDir()
	dir := t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "data"))
	os.Symlink(".", filepath.Join(dir, "self"))
	for _, name := range []string{"data/x", "self/x"} {
		f := &fakeAPI{output: makeTarGz(t, tarEntry{name: name, body: "evil"})}
		conn := startFake(t, f)
		for _, force := range []string{"--force=false", "--force"} {
			r := runCtl(conn, "job", "output", force, "-o", dir, "j0b0")
			if r.code != 1 || !strings.Contains(r.stderr, "is a symbolic link here, and ccctl does not write through links") {
				t.Errorf("%s %s over a link: %+v", name, force, r)
			}
		}
	}
	// Nor is a link replaced by a file without --force, and with --force the
	// link goes, not its target.
	target := filepath.Join(outside, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, filepath.Join(dir, "f"))
	f := &fakeAPI{output: makeTarGz(t, tarEntry{name: "f", body: "new"})}
	conn := startFake(t, f)
	if r := runCtl(conn, "job", "output", "-o", dir, "j0b0"); r.code != 1 || !strings.Contains(r.stderr, "f exists") {
		t.Errorf("a file over a link: %+v", r)
	}
	if r := runCtl(conn, "job", "output", "--force", "-o", dir, "j0b0"); r.code != 0 {
		t.Errorf("a file over a link, --force: %+v", r)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("f: %v %v; want a regular file instead of the link", fi, err)
	}
	if got := tree(t, outside); !equalMaps(got, map[string]string{"target": "keep"}) {
		t.Errorf("outside DIR: %v", got)
	}
}

func TestJobOutputChecksumMismatchWritesNothing(t *testing.T) {
	f := &fakeAPI{output: makeTarGz(t, tarEntry{name: "a.txt", body: "a"}), outputSum: "sha256:" + strings.Repeat("0", 64),
		outputFiles: map[string][]byte{"a.txt": []byte("a")}}
	conn := startFake(t, f)
	parent := t.TempDir()
	for _, args := range [][]string{
		{"-o", filepath.Join(parent, "out")},
		{"--archive", filepath.Join(parent, "out.tar.gz")},
		{"--archive", "-"},
	} {
		r := runCtl(conn, append(append([]string{"job", "output"}, args...), "j0b0")...)
		if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, "does not match its sha256 (got ") || !strings.Contains(r.stderr, "the server announced 000000000000): it is damaged; nothing was written; try again") {
			t.Errorf("job output %q with a bad sha256: %+v", args, r)
		}
	}
	if got := tree(t, parent); len(got) != 0 {
		t.Errorf("a damaged download left %v", keys(got))
	}
}

func TestJobOutputResumes(t *testing.T) {
	data := make([]byte, 200<<10)
	rand.Read(data)
	archive := makeTarGz(t, tarEntry{name: "blob", body: string(data)})
	f := &fakeAPI{output: archive, outputBreaks: []int64{50 << 10, 10 << 10}}
	conn := startFake(t, f)
	saved := filepath.Join(t.TempDir(), "out.tar.gz")
	r := runCtl(conn, "job", "output", "--archive", saved, "j0b0")
	if r.code != 0 || strings.Count(r.stderr, "the download broke after") != 2 {
		t.Fatalf("job output across two breaks: %+v", r)
	}
	if b, err := os.ReadFile(saved); err != nil || !bytes.Equal(b, archive) {
		t.Errorf("saved archive differs (%v)", err)
	}
	f.locked(func() {
		var offsets []int64
		for _, r := range f.outputReqs {
			offsets = append(offsets, r.Offset)
		}
		if !slices.Equal(offsets, []int64{0, 50 << 10, 60 << 10}) {
			t.Errorf("offsets %v; want 0, 50 KiB, 60 KiB", offsets)
		}
	})

	// Three breaks are one too many.
	f = &fakeAPI{output: archive, outputBreaks: []int64{1000, 1000, 1000}}
	conn = startFake(t, f)
	dir := filepath.Join(t.TempDir(), "out")
	r = runCtl(conn, "job", "output", "-o", dir, "j0b0")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "ccctl: the download broke after 2.9 KiB of "+humanSize(int64(len(archive)))+": control plane unavailable at "+conn[1]+": connection reset by peer\n") {
		t.Errorf("job output across three breaks: %+v", r)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed download made %s", dir)
	}
}

func TestJobOutputArchiveAndPath(t *testing.T) {
	archive := makeTarGz(t, tarEntry{name: "a.txt", body: "a"})
	f := &fakeAPI{output: archive, outputFiles: map[string][]byte{"dir/report.csv": []byte("x,y\n")}}
	conn := startFake(t, f)

	// --archive -: the tar.gz on stdout, as it is.
	if r := runCtl(conn, "job", "output", "--archive", "-", "j0b0"); r.code != 0 || r.stdout != string(archive) {
		t.Errorf("job output --archive -: code %d, %d bytes, stderr %q", r.code, len(r.stdout), r.stderr)
	}
	// --archive FILE; a second time needs --force.
	saved := filepath.Join(t.TempDir(), "out.tar.gz")
	if r := runCtl(conn, "job", "output", "--archive", saved, "j0b0"); r.code != 0 || !strings.HasPrefix(r.stderr, "Saved "+saved) {
		t.Errorf("job output --archive FILE: %+v", r)
	}
	if b, _ := os.ReadFile(saved); !bytes.Equal(b, archive) {
		t.Errorf("saved archive differs")
	}
	if r := runCtl(conn, "job", "output", "--archive", saved, "j0b0"); r.code != 1 || r.stderr != "ccctl: "+saved+" exists: choose another name, or overwrite it with --force\n" {
		t.Errorf("job output --archive over a file: %+v", r)
	}

	// --path: to stdout, into a directory, to a file.
	if r := runCtl(conn, "job", "output", "--path", "/output/dir/report.csv", "-o", "-", "j0b0"); r.code != 0 || r.stdout != "x,y\n" {
		t.Errorf("job output --path -o -: %+v", r)
	}
	dir := t.TempDir()
	if r := runCtl(conn, "job", "output", "--path", "dir/report.csv", "-o", dir, "j0b0"); r.code != 0 {
		t.Errorf("job output --path -o DIR: %+v", r)
	}
	file := filepath.Join(dir, "renamed.csv")
	if r := runCtl(conn, "job", "output", "--path", "dir/report.csv", "-o", file, "j0b0"); r.code != 0 {
		t.Errorf("job output --path -o FILE: %+v", r)
	}
	if got := tree(t, dir); !equalMaps(got, map[string]string{"report.csv": "x,y\n", "renamed.csv": "x,y\n"}) {
		t.Errorf("--path wrote %v", got)
	}
	f.locked(func() {
		if r := f.outputReqs[len(f.outputReqs)-1]; r.Path != "dir/report.csv" {
			t.Errorf("JobOutput path %q", r.Path)
		}
	})
	cases := map[string][]string{
		"ccctl: no such file or directory": nil,
		`ccctl: --path "../x": give a file inside /output, as a relative path (e.g. report.csv or dir/b.bin)`: {"--path", "../x"},
		"ccctl: --archive saves the whole archive, --path one file of it: give one of them":                   {"--path", "a", "--archive", "x"},
		"ccctl: not found: no file nope in the output":                                                        {"--path", "nope", "-o", "-"},
	}
	for want, args := range cases {
		if args == nil {
			continue
		}
		r := runCtl(conn, append(append([]string{"job", "output"}, args...), "j0b0")...)
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("job output %q: %+v; want %q", args, r, want)
		}
	}
}

func TestTransferProgressFlags(t *testing.T) {
	f := &fakeAPI{output: makeTarGz(t, tarEntry{name: "a.txt", body: "a"})}
	conn := startFake(t, f)
	if r := runCtl(conn, "job", "output", "--progress", "-q", "--archive", filepath.Join(t.TempDir(), "x"), "j0b0"); r.code != 0 || r.stderr != "" {
		t.Errorf("--quiet beats --progress: %+v", r)
	}
	if r := runCtl(conn, "job", "output", "--archive", filepath.Join(t.TempDir(), "x"), "j0b0"); r.code != 0 || strings.Contains(r.stderr, "\r") {
		t.Errorf("a bar on a non-terminal without --progress: %+v", r)
	}
}

func TestDescribeJobAndExitCodes(t *testing.T) {
	now := time.Now()
	retry := finished(ccv1.JobState_JOB_STATE_QUEUED, 0, "")
	retry.Spec.MaxAttempts, retry.StartedAt, retry.FinishedAt = 3, nil, nil
	run2 := running()
	run2.Spec.MaxAttempts = 3
	run2.Attempts = append([]*ccv1.JobAttempt{{Number: 1, NodeId: "n9", Error: "node lost"}}, run2.Attempts...)
	overLimit := finished(ccv1.JobState_JOB_STATE_FAILED, 0, "the output is over its 1 MiB limit")
	cancelling := running()
	cancelling.CancelRequested = true
	nodes := map[string]string{"n1": "node-1"}
	cases := []struct {
		job  *ccv1.Job
		want string
		code int
		exit string
	}{
		{queued(), "queued", 1, "-"},
		{retry, "queued for attempt 2 of 3", 1, "-"},
		{run2, "running on node-1 (attempt 2 of 3)", 1, "-"},
		{cancelling, "running on node-1, cancelling", 1, "-"},
		{overLimit, "failed after 12s: the output is over its 1 MiB limit", 1, "-"},
		{finished(ccv1.JobState_JOB_STATE_FAILED, 300, ""), "failed with exit code 300 after 12s", 1, "300"},
		{finished(ccv1.JobState_JOB_STATE_FAILED, 137, ""), "failed with exit code 137 after 12s", 137, "137"},
		{finished(ccv1.JobState_JOB_STATE_SUCCEEDED, 0, ""), "succeeded after 12s", 0, "0"},
		{finished(ccv1.JobState_JOB_STATE_TIMED_OUT, 0, ""), "timed out after 12s", 124, "-"},
	}
	for _, c := range cases {
		if got := describeJob(c.job, nodes, now); got != c.want {
			t.Errorf("describeJob: %q, want %q", got, c.want)
		}
		if jobDone(c.job.GetState()) {
			if got := jobExitCode(c.job); got != c.code {
				t.Errorf("%q: exit code %d, want %d", c.want, got, c.code)
			}
		}
		exit := "-"
		if code, ok := jobExit(c.job); ok {
			exit = strconv.Itoa(int(code))
		}
		if exit != c.exit {
			t.Errorf("%q: EXIT %s, want %s", c.want, exit, c.exit)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", 59 * time.Second: "59s", 3*time.Minute + 5*time.Second: "3m05s",
		5*time.Hour + 2*time.Minute: "5h02m", 50 * time.Hour: "2d02h", -time.Second: "0s"} {
		if got := compactDuration(d); got != want {
			t.Errorf("compactDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
