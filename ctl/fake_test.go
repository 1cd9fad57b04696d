package ctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fakeAPI is an in-process control plane that records what ccctl sends.
type fakeAPI struct {
	ccv1.UnimplementedContainerServiceServer
	ccv1.UnimplementedImageServiceServer
	ccv1.UnimplementedTokenServiceServer
	ccv1.UnimplementedNodeServiceServer
	ccv1.UnimplementedServiceServiceServer
	ccv1.UnimplementedClusterServiceServer
	ccv1.UnimplementedJobServiceServer
	ccv1.UnimplementedEdgeServiceServer
	ccv1.UnimplementedCertServiceServer
	ccv1.UnimplementedAuditServiceServer
	ccv1.UnimplementedStatsServiceServer

	mu         sync.Mutex
	create     *ccv1.CreateContainerRequest
	stops      []*ccv1.StopContainerRequest
	logsReq    *ccv1.ContainerLogsRequest
	logsPause  time.Duration
	loadHeader *ccv1.LoadImageHeader
	loadChunks []int
	loadSum    string
	token      *ccv1.CreateTokenRequest
	containers []*ccv1.Container
	listReq    *ccv1.ListContainersRequest
	statsReq   *ccv1.ContainerStatsRequest
	stats      []*ccv1.ContainerStats // each frame of ContainerStats
	nodes      []*ccv1.Node           // ListNodes; node-1 (n1) when nil

	// Services and cluster settings: see services_test.go.
	svc         *ccv1.Service // GetService
	raced       bool          // UpdateService: another update came after GetService
	services    []*ccv1.Service
	tasks       []*ccv1.Container
	logs        []*ccv1.ServiceLogsResponse
	createSvc   *ccv1.CreateServiceRequest
	updateSvc   *ccv1.UpdateServiceRequest
	scales      []*ccv1.ScaleServiceRequest
	rollbacks   []string
	removes     []string
	tasksReq    *ccv1.ListServiceTasksRequest
	svcLogsReq  *ccv1.ServiceLogsRequest
	nodeUpdates []*ccv1.UpdateNodeRequest
	settings    *ccv1.Settings
	// settingsReqs are the UpdateSettings requests, in order.
	settingsReqs []*ccv1.UpdateSettingsRequest

	// Jobs and queues: the handlers are below.
	submit       *ccv1.SubmitJobRequest
	existing     bool // SubmitJob: the idempotency key matched
	uploadHeader *ccv1.UploadHeader
	upload       []byte
	jobs         []*ccv1.Job // ListJobs, a page of limit (default 50) at a time
	listReqs     []*ccv1.ListJobsRequest
	job          *ccv1.Job // GetJob, and what a watch ends with
	gets         int
	watch        []*ccv1.Job // WatchJobs sends these, then job...
	watchErr     error       // ...unless this is set: then it fails with it
	watchHang    bool        // ...or hangs until the client goes
	watches      int
	cancels      []string
	jobLogs      []*ccv1.JobLogsResponse
	jobLogsReq   *ccv1.JobLogsRequest
	output       []byte            // JobOutput: the archive
	outputFiles  map[string][]byte // JobOutput with a path
	outputSum    string            // the sha256 announced; default: the right one
	outputBreaks []int64           // the n-th JobOutput stream breaks after this many bytes (-1: does not)
	outputReqs   []*ccv1.JobOutputRequest
	queues       []*ccv1.Queue
	setQueue     *ccv1.SetQueueRequest

	// The edge: see edge_test.go.
	edge fakeEdge
	// Certificates: see certs_test.go.
	certs fakeCerts
	// The audit trail: see audit_test.go.
	audit fakeAudit
}

func (f *fakeAPI) CreateContainer(_ context.Context, r *ccv1.CreateContainerRequest) (*ccv1.CreateContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.create = r
	return &ccv1.CreateContainerResponse{Container: &ccv1.Container{Id: "c0ffee0123456789", Name: r.Name, Spec: r.Spec}}, nil
}

func (f *fakeAPI) StopContainer(_ context.Context, r *ccv1.StopContainerRequest) (*ccv1.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, r)
	if r.Id == "b" {
		return nil, status.Error(codes.NotFound, "no container b")
	}
	return &ccv1.StopContainerResponse{Container: &ccv1.Container{Id: r.Id}}, nil
}

func (f *fakeAPI) ContainerLogs(r *ccv1.ContainerLogsRequest, s grpc.ServerStreamingServer[ccv1.ContainerLogsResponse]) error {
	f.mu.Lock()
	f.logsReq = r
	pause := f.logsPause
	f.mu.Unlock()
	for _, m := range []*ccv1.ContainerLogsResponse{
		{Stream: "stdout", Data: []byte("out1\n")},
		{Stream: "stderr", Data: []byte("err1\n")},
		{Stream: "stdout", Data: []byte("out2\n")},
	} {
		time.Sleep(pause)
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeAPI) ListContainers(_ context.Context, r *ccv1.ListContainersRequest) (*ccv1.ListContainersResponse, error) {
	f.mu.Lock()
	f.listReq = r
	f.mu.Unlock()
	return &ccv1.ListContainersResponse{Containers: f.containers}, nil
}

func (f *fakeAPI) ListNodes(context.Context, *ccv1.ListNodesRequest) (*ccv1.ListNodesResponse, error) {
	if f.nodes != nil {
		return &ccv1.ListNodesResponse{Nodes: f.nodes}, nil
	}
	return &ccv1.ListNodesResponse{Nodes: []*ccv1.Node{{Id: "n1", Name: "node-1"}}}, nil
}

func (f *fakeAPI) LoadImage(s grpc.ClientStreamingServer[ccv1.LoadImageRequest, ccv1.LoadImageResponse]) error {
	h := sha256.New()
	var header *ccv1.LoadImageHeader
	var chunks []int
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case m.GetHeader() != nil:
			header = m.GetHeader()
		default:
			chunks = append(chunks, len(m.GetChunk()))
			h.Write(m.GetChunk())
		}
	}
	f.mu.Lock()
	f.loadHeader, f.loadChunks, f.loadSum = header, chunks, hex.EncodeToString(h.Sum(nil))
	f.mu.Unlock()
	return s.SendAndClose(&ccv1.LoadImageResponse{Image: &ccv1.Image{Digest: "sha256:" + f.loadSum, Names: []string{"app:1.0", "app:latest"}}})
}

func (f *fakeAPI) CreateToken(_ context.Context, r *ccv1.CreateTokenRequest) (*ccv1.CreateTokenResponse, error) {
	f.mu.Lock()
	f.token = r
	f.mu.Unlock()
	return &ccv1.CreateTokenResponse{Token: &ccv1.Token{Id: "tok1", Role: r.Role, MaxUses: r.MaxUses}, Secret: "CCTKN-1-abc-def"}, nil
}

// locked runs fn, which reads what the handlers recorded, under f.mu.
func (f *fakeAPI) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// startFake serves f over TLS and returns ccctl's connection flags.
func startFake(t *testing.T, f *fakeAPI) []string {
	t.Helper()
	t.Setenv("CC_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IssueServer("s1", []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	ccv1.RegisterContainerServiceServer(srv, f)
	ccv1.RegisterImageServiceServer(srv, f)
	ccv1.RegisterTokenServiceServer(srv, f)
	ccv1.RegisterNodeServiceServer(srv, f)
	ccv1.RegisterServiceServiceServer(srv, f)
	ccv1.RegisterClusterServiceServer(srv, f)
	ccv1.RegisterJobServiceServer(srv, f)
	ccv1.RegisterEdgeServiceServer(srv, f)
	ccv1.RegisterCertServiceServer(srv, f)
	ccv1.RegisterAuditServiceServer(srv, f)
	ccv1.RegisterStatsServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return []string{"--addr", lis.Addr().String(), "--token", "t", "--ca-cert", caFile}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCtl(conn []string, args ...string) result {
	var out, errb bytes.Buffer
	code := Main(append(append([]string{"ccctl"}, conn...), args...), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestRunSendsTheSpec(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "run", "--name", "web", "-e", "A=1,2", "-e", "B=x", "-p", "8080:80", "-p", "5353:53/udp",
		"-m", "64m", "--cpus", "0.5", "--pids", "100", "--read-only", "-u", "1000:1000", "-w", "/app",
		"--restart", "always", "--network", "none", "-d", "--node", "node-1",
		"alpine:3.20", "sh", "-c", "echo hi", "--name", "-o", "json")
	if r.code != 0 || r.stdout != "c0ffee0123456789\n" || r.stderr != "" {
		t.Fatalf("run: %+v; want the id only", r)
	}
	want := &ccv1.CreateContainerRequest{Name: "web", Node: "node-1", Spec: &ccv1.ContainerSpec{
		Image:     "alpine:3.20",
		Command:   []string{"sh", "-c", "echo hi", "--name", "-o", "json"},
		Env:       []string{"A=1,2", "B=x"},
		Resources: &ccv1.ContainerResources{MemoryBytes: 64 << 20, CpuMillis: 500, Pids: 100},
		ReadOnly:  true, User: "1000:1000", Workdir: "/app",
		Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS,
		Ports: []*ccv1.PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		},
		Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
	}}
	f.locked(func() {
		if !proto.Equal(f.create, want) {
			t.Errorf("CreateContainer got\n%v\nwant\n%v", f.create, want)
		}
	})

	// "--" after the image starts the command; the minimum spec.
	r = runCtl(conn, "run", "-d", "busybox", "--", "ls", "-l")
	want = &ccv1.CreateContainerRequest{Spec: &ccv1.ContainerSpec{Image: "busybox", Command: []string{"ls", "-l"}}}
	f.locked(func() {
		if r.code != 0 || !proto.Equal(f.create, want) {
			t.Errorf("run busybox -- ls -l: %+v\nsent %v, want %v", r, f.create, want)
		}
	})
}

func TestRunRejectsBadFlagsBeforeCalling(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	cases := map[string][]string{
		`ccctl: --memory "6x": use a size like 64m or 1g`:            {"run", "--memory", "6x", "alpine"},
		`ccctl: --cpus "lots": use a number of cores like 0.5 or 2`:  {"run", "--cpus", "lots", "alpine"},
		`ccctl: --restart "sometimes": use no, on-failure or always`: {"run", "--restart", "sometimes", "alpine"},
		`ccctl: --network "host": use bridge or none`:                {"run", "--network", "host", "alpine"},
		"ccctl: run needs an IMAGE (see `ccctl run --help`)":         {"run", "--name", "x"},
	}
	for want, args := range cases {
		r := runCtl(conn, args...)
		if r.code != 1 || r.stderr != want+"\n" || r.stdout != "" {
			t.Errorf("%q: %+v; want exit 1 and %q", args, r, want)
		}
	}
	f.locked(func() {
		if f.create != nil {
			t.Errorf("CreateContainer was called: %v", f.create)
		}
	})
}

func TestLogsSplitsStreamsAndOutlivesTimeout(t *testing.T) {
	f := &fakeAPI{logsPause: 400 * time.Millisecond}
	conn := startFake(t, f)
	// The three chunks take 1.2s; --timeout 1s bounds only connecting.
	r := runCtl(conn, "logs", "web", "-f", "--tail", "5", "--timeout", "1s")
	if r.code != 0 || r.stdout != "out1\nout2\n" || r.stderr != "err1\n" {
		t.Errorf("logs: %+v; want stdout out1 out2 and stderr err1", r)
	}
	want := &ccv1.ContainerLogsRequest{Id: "web", Follow: true, Tail: 5}
	f.locked(func() {
		if !proto.Equal(f.logsReq, want) {
			t.Errorf("ContainerLogs got %v, want %v", f.logsReq, want)
		}
	})
}

func TestStopGoesOnAfterAFailure(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "stop", "-t", "5", "a", "b", "c")
	want := "ccctl: stop b: not found: no container b\n"
	if r.code != 1 || r.stdout != "a\nc\n" || r.stderr != want {
		t.Errorf("stop a b c: %+v; want stdout a, c and stderr %q", r, want)
	}
	f.locked(func() {
		if len(f.stops) != 3 || f.stops[0].Timeout.AsDuration() != 5*time.Second {
			t.Errorf("StopContainer calls: %v; want 3 with timeout 5s", f.stops)
		}
	})
	if r := runCtl(conn, "stop"); r.code != 1 || !strings.Contains(r.stderr, "stop needs at least one argument") {
		t.Errorf("stop with no ids: %+v", r)
	}
}

func TestImageLoadFile(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	data := make([]byte, 2<<20+12345)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	r := runCtl(conn, "image", "load", path)
	wantOut := "Loaded image: app:1.0\nLoaded image: app:latest\nDigest: sha256:" + hex.EncodeToString(sum[:]) + "\n"
	if r.code != 0 || r.stdout != wantOut || r.stderr != "" {
		t.Fatalf("image load: %+v; want %q", r, wantOut)
	}
	f.locked(func() {
		if f.loadHeader.GetSize() != int64(len(data)) || f.loadHeader.GetSha256() != hex.EncodeToString(sum[:]) {
			t.Errorf("header %v; want size %d and the sha256", f.loadHeader, len(data))
		}
		if !reflect.DeepEqual(f.loadChunks, []int{1 << 20, 1 << 20, 12345}) {
			t.Errorf("chunks %v; want 1 MiB pieces", f.loadChunks)
		}
	})

	// -i FILE is the same; a missing file is one line.
	if r := runCtl(conn, "image", "load", "-i", path); r.code != 0 {
		t.Errorf("image load -i: %+v", r)
	}
	if r := runCtl(conn, "image", "load", filepath.Join(t.TempDir(), "nope.tar")); r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "nope.tar") {
		t.Errorf("image load of a missing file: %+v", r)
	}
}

func TestImageLoadStdinPipe(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	data := bytes.Repeat([]byte("x"), 1<<20+1)
	go func() { pw.Write(data); pw.Close() }()
	var out, errb bytes.Buffer
	app := App(&out, &errb)
	app.Reader = pr
	if err := app.Run(Interspersed(app, append(append([]string{"ccctl"}, conn...), "image", "load", "-"))); err != nil {
		t.Fatalf("image load -: %v\n%s", err, errb.String())
	}
	f.locked(func() {
		if f.loadHeader == nil || f.loadHeader.Size != 0 || f.loadHeader.Sha256 != "" {
			t.Errorf("header %v; want no size or digest for a pipe", f.loadHeader)
		}
		if !reflect.DeepEqual(f.loadChunks, []int{1 << 20, 1}) {
			t.Errorf("chunks %v", f.loadChunks)
		}
	})
}

func TestTokenCreateJoinToken(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "token", "create", "--uses", "3")
	if r.code != 0 {
		t.Fatalf("token create: %+v", r)
	}
	f.locked(func() {
		if f.token.GetRole() != ccv1.Role_ROLE_AGENT || f.token.GetMaxUses() != 3 {
			t.Errorf("CreateToken got %v; want role agent, max_uses 3", f.token)
		}
	})
	addr := conn[1]
	for _, want := range []string{"Join token (shown once): CCTKN-1-abc-def\n", "  cc-agent --join " + addr + " --token CCTKN-1-abc-def\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("token create output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCtl(conn, "token", "create", "--role", "viewer", "--uses", "2"); r.code != 1 || !strings.Contains(r.stderr, "agent and server tokens only") {
		t.Errorf("--uses with a viewer token: %+v", r)
	}
}

func TestPsTable(t *testing.T) {
	f := &fakeAPI{containers: []*ccv1.Container{{
		Id: "0123456789abcdef", Name: "web", NodeId: "n1", CreatedAt: timestamppb.New(time.Now().Add(-3 * time.Minute)),
		Spec:   &ccv1.ContainerSpec{Image: "nginx", Ports: []*ccv1.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: 137, OomKilled: true},
	}}}
	conn := startFake(t, f)
	r := runCtl(conn, "ps", "-a")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("ps: %+v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "CONTAINER ID NAME IMAGE NODE STATE CREATED PORTS" {
		t.Errorf("header %q", lines[0])
	}
	for _, want := range []string{"0123456789ab ", " web ", " nginx ", " node-1 ", " exited (137, oom-killed) ", " 3 minutes ago ", " 8080->80/tcp"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if r := runCtl(conn, "ps", "-q"); r.stdout != "0123456789ab\n" {
		t.Errorf("ps -q: %+v", r)
	}
}

// The fake JobService.

func (f *fakeAPI) SubmitJob(_ context.Context, r *ccv1.SubmitJobRequest) (*ccv1.SubmitJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submit = r
	resp := &ccv1.SubmitJobResponse{Existing: f.existing, Job: &ccv1.Job{Id: "j0b0123456789abc", Spec: r.Spec, State: ccv1.JobState_JOB_STATE_QUEUED}}
	if r.Spec.GetWebhookUrl() != "" && r.Spec.GetWebhookSecret() == "" {
		resp.WebhookSecret = "whsec-generated"
	}
	return resp, nil
}

func (f *fakeAPI) UploadInput(s grpc.ClientStreamingServer[ccv1.UploadInputRequest, ccv1.UploadInputResponse]) error {
	var header *ccv1.UploadHeader
	var data []byte
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if h := m.GetHeader(); h != nil {
			header = h
		} else {
			data = append(data, m.GetChunk()...)
		}
	}
	sum := sha256.Sum256(data)
	f.mu.Lock()
	f.uploadHeader, f.upload = header, data
	f.mu.Unlock()
	return s.SendAndClose(&ccv1.UploadInputResponse{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))})
}

func (f *fakeAPI) ListJobs(_ context.Context, r *ccv1.ListJobsRequest) (*ccv1.ListJobsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listReqs = append(f.listReqs, r)
	start := 0
	if r.PageToken != "" {
		var err error
		if start, err = strconv.Atoi(strings.TrimPrefix(r.PageToken, "p")); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	limit := int(r.Limit)
	if limit == 0 {
		limit = 50
	}
	end := min(start+limit, len(f.jobs))
	resp := &ccv1.ListJobsResponse{Jobs: f.jobs[start:end]}
	if end < len(f.jobs) {
		resp.NextPageToken = "p" + strconv.Itoa(end)
	}
	return resp, nil
}

func (f *fakeAPI) GetJob(_ context.Context, r *ccv1.GetJobRequest) (*ccv1.GetJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.job == nil || !strings.HasPrefix(f.job.Id, r.Id) {
		return nil, status.Errorf(codes.NotFound, "no job %s", r.Id)
	}
	return &ccv1.GetJobResponse{Job: f.job}, nil
}

func (f *fakeAPI) WatchJobs(r *ccv1.WatchJobsRequest, s grpc.ServerStreamingServer[ccv1.WatchJobsResponse]) error {
	f.mu.Lock()
	f.watches++
	msgs, last, werr, hang := f.watch, f.job, f.watchErr, f.watchHang
	f.mu.Unlock()
	if len(r.Ids) != 1 || !r.UntilDone {
		return status.Error(codes.InvalidArgument, "want one id and until_done")
	}
	if last == nil || !strings.HasPrefix(last.Id, r.Ids[0]) {
		return status.Errorf(codes.NotFound, "no job %s", r.Ids[0])
	}
	for _, j := range msgs {
		if err := s.Send(&ccv1.WatchJobsResponse{Job: j}); err != nil {
			return err
		}
	}
	switch {
	case werr != nil:
		return werr
	case hang:
		<-s.Context().Done()
		return s.Context().Err()
	}
	return s.Send(&ccv1.WatchJobsResponse{Job: last})
}

func (f *fakeAPI) CancelJob(_ context.Context, r *ccv1.CancelJobRequest) (*ccv1.CancelJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, r.Id)
	switch r.Id {
	case "nope":
		return nil, status.Error(codes.NotFound, "no job nope")
	case "done":
		return &ccv1.CancelJobResponse{Job: &ccv1.Job{Id: "done", State: ccv1.JobState_JOB_STATE_SUCCEEDED}}, nil
	}
	return &ccv1.CancelJobResponse{Job: &ccv1.Job{Id: r.Id, State: ccv1.JobState_JOB_STATE_CANCELLED}}, nil
}

func (f *fakeAPI) JobLogs(r *ccv1.JobLogsRequest, s grpc.ServerStreamingServer[ccv1.JobLogsResponse]) error {
	f.mu.Lock()
	f.jobLogsReq = r
	msgs := f.jobLogs
	f.mu.Unlock()
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeAPI) JobOutput(r *ccv1.JobOutputRequest, s grpc.ServerStreamingServer[ccv1.JobOutputResponse]) error {
	f.mu.Lock()
	f.outputReqs = append(f.outputReqs, r)
	n := len(f.outputReqs)
	data, sum := f.output, f.outputSum
	if r.Path != "" {
		var ok bool
		if data, ok = f.outputFiles[r.Path]; !ok {
			f.mu.Unlock()
			return status.Errorf(codes.NotFound, "no file %s in the output", r.Path)
		}
		sum = ""
	}
	breakAt := int64(-1)
	if n <= len(f.outputBreaks) {
		breakAt = f.outputBreaks[n-1]
	}
	f.mu.Unlock()
	if sum == "" {
		h := sha256.Sum256(data)
		sum = "sha256:" + hex.EncodeToString(h[:])
	}
	if r.Offset < 0 || r.Offset > int64(len(data)) {
		return status.Errorf(codes.OutOfRange, "offset %d", r.Offset)
	}
	if err := s.Send(&ccv1.JobOutputResponse{Size: int64(len(data)), Sha256: sum}); err != nil {
		return err
	}
	const chunk = 32 << 10
	sent := int64(0)
	for rest := data[r.Offset:]; len(rest) > 0; {
		n := min(len(rest), chunk)
		if breakAt >= 0 && sent+int64(n) > breakAt {
			n = int(breakAt - sent)
			if n > 0 {
				if err := s.Send(&ccv1.JobOutputResponse{Data: rest[:n]}); err != nil {
					return err
				}
			}
			return status.Error(codes.Unavailable, "connection reset by peer")
		}
		if err := s.Send(&ccv1.JobOutputResponse{Data: rest[:n]}); err != nil {
			return err
		}
		rest, sent = rest[n:], sent+int64(n)
	}
	return nil
}

func (f *fakeAPI) SetQueue(_ context.Context, r *ccv1.SetQueueRequest) (*ccv1.SetQueueResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setQueue = r
	return &ccv1.SetQueueResponse{Queue: &ccv1.Queue{Name: r.Name, MaxRunning: r.MaxRunning, AllowNetwork: r.GetAllowNetwork()}}, nil
}

func (f *fakeAPI) ListQueues(context.Context, *ccv1.ListQueuesRequest) (*ccv1.ListQueuesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &ccv1.ListQueuesResponse{Queues: f.queues}, nil
}
