package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/api"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// jobHarness is a one-server cluster and a way to write its state
// directly: raft commands and blobs go in through PeerService with the
// server's own certificate, as another server's would.
type jobHarness struct {
	t     *testing.T
	srv   *testcluster.Server
	peer  ccv1.PeerServiceClient
	admin ccv1.JobServiceClient
}

func newJobHarness(t *testing.T, opts ...testcluster.Option) *jobHarness {
	t.Helper()
	srv := testcluster.Start(t, opts...)
	cert, err := tls.LoadX509KeyPair(filepath.Join(srv.Config.DataDir, "tls", "server.crt"), filepath.Join(srv.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &jobHarness{t: t, srv: srv, peer: ccv1.NewPeerServiceClient(certConn(t, srv, cert)), admin: ccv1.NewJobServiceClient(srv.Conn(""))}
}

func certConn(t *testing.T, srv *testcluster.Server, cert tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := srv.TLSConfig()
	cfg.Certificates = []tls.Certificate{cert}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// apply writes one raft command and fails the test if it is refused.
func (h *jobHarness) apply(typ statev1.CommandType, msg proto.Message) {
	h.t.Helper()
	data, err := fsm.Encode(typ, msg, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.peer.Apply(ctxT(h.t), &ccv1.ApplyRequest{Command: data})
	if err != nil {
		h.t.Fatalf("apply %v: %v", typ, err)
	}
	if resp.Error != "" {
		h.t.Fatalf("apply %v: %s", typ, resp.Error)
	}
}

// token creates an API token of any role (ROLE_JOBS included) and returns
// its id and bearer string. A state machine that does not know ROLE_JOBS
// yet skips the test.
func (h *jobHarness) token(role ccv1.Role) (string, string) {
	h.t.Helper()
	rec, bearer, err := api.NewTokenRecord(role, "test "+role.String(), 0, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	data, err := fsm.Encode(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: rec}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.peer.Apply(ctxT(h.t), &ccv1.ApplyRequest{Command: data})
	switch {
	case err != nil:
		h.t.Fatalf("create %v token: %v", role, err)
	case role == ccv1.Role_ROLE_JOBS && strings.Contains(resp.Error, "unknown role"):
		h.t.Skipf("the state machine refuses ROLE_JOBS tokens (%s): fsm.applyCreateToken must accept the role", resp.Error)
	case resp.Error != "":
		h.t.Fatalf("create %v token: %s", role, resp.Error)
	}
	return rec.Id, bearer
}

func (h *jobHarness) jobsAs(bearer string) ccv1.JobServiceClient {
	return ccv1.NewJobServiceClient(h.srv.Conn(bearer))
}

// pushBlob stores data in the server's blob store and returns its digest.
func (h *jobHarness) pushBlob(data []byte) string {
	h.t.Helper()
	digest := "sha256:" + sha(data)
	st, err := h.peer.PushBlob(ctxT(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := st.Send(&ccv1.PushBlobRequest{Digest: digest, Data: data}); err != nil {
		h.t.Fatal(err)
	}
	if _, err := st.CloseAndRecv(); err != nil {
		h.t.Fatalf("push blob: %v", err)
	}
	return digest
}

// node joins a node with a join token and returns its id and an agent
// client holding its certificate. The node is paused, so that the job
// dispatcher places nothing on it (tests place attempts themselves), and
// holds a session (a fake agent), so that it stays ready.
func (h *jobHarness) node(name string) (string, ccv1.AgentServiceClient, *fakeAgent) {
	h.t.Helper()
	join := createToken(h.t, h.srv.Client(), &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT})
	key, csr, err := pki.NewKeyAndCSR(name)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := ccv1.NewAgentServiceClient(h.srv.Conn("-")).Join(ctxT(h.t), &ccv1.JoinRequest{Token: join.Secret, CsrDer: csr, Name: name})
	if err != nil {
		h.t.Fatalf("join: %v", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		h.t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(resp.CertificatePem, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.srv.Client().Nodes.UpdateNode(ctxT(h.t), &ccv1.UpdateNodeRequest{Id: resp.NodeId, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE}); err != nil {
		h.t.Fatal(err)
	}
	client := ccv1.NewAgentServiceClient(certConn(h.t, h.srv, cert))
	fake := startFakeAgent(h.t, client)
	for deadline := time.Now().Add(callTimeout); !h.srv.Srv.HasSession(resp.NodeId); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("node %s has no session", name)
		}
	}
	return resp.NodeId, client, fake
}

// start places a queued job on a node as its attempt n, with container id
// cid.
func (h *jobHarness) start(jobID, nodeID, cid string, n uint32) {
	h.t.Helper()
	h.apply(statev1.CommandType_COMMAND_TYPE_JOB_OPS, &statev1.JobOps{Ops: []*statev1.JobOp{{Op: &statev1.JobOp_Start{Start: &statev1.StartJobAttempt{
		JobId: jobID, NodeId: nodeID, Attempt: n, ContainerId: cid}}}}})
}

// report writes an attempt's status as its node would.
func (h *jobHarness) report(nodeID, cid string, st *ccv1.ContainerStatus) {
	h.t.Helper()
	h.apply(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: nodeID, Statuses: []*ccv1.TaskStatus{{
		ContainerId: cid, Generation: 1, Status: st}}})
}

// finish drives a queued job through one attempt to success, with the
// output and logs blobs given, recorded as uploaded by the node for the
// attempt (as AgentService.UploadBlob does).
func (h *jobHarness) finish(jobID, nodeID, output, logs string) {
	h.t.Helper()
	cid := "c-" + jobID
	h.start(jobID, nodeID, cid, 1)
	h.uploaded(nodeID, cid, "output", output)
	h.uploaded(nodeID, cid, "logs", logs)
	now := timestamppb.Now()
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: now})
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, StartedAt: now, FinishedAt: timestamppb.Now(),
		JobResult: &ccv1.JobResult{Collected: true, OutputDigest: output, OutputSize: 1, OutputFiles: 1, LogsDigest: logs}})
}

// uploaded records that the node uploaded the blob digest (if not "") for
// the attempt cid.
func (h *jobHarness) uploaded(nodeID, cid, kind, digest string) {
	h.t.Helper()
	if digest != "" {
		h.apply(statev1.CommandType_COMMAND_TYPE_RECORD_ATTEMPT_UPLOAD, &statev1.RecordAttemptUpload{ContainerId: cid, NodeId: nodeID, Kind: kind, Digest: digest})
	}
}

func (h *jobHarness) get(id string) *ccv1.Job {
	h.t.Helper()
	resp, err := h.admin.GetJob(ctxT(h.t), &ccv1.GetJobRequest{Id: id})
	if err != nil {
		h.t.Fatalf("GetJob(%s): %v", id, err)
	}
	return resp.Job
}

func submit(t *testing.T, c ccv1.JobServiceClient, spec *ccv1.JobSpec) *ccv1.SubmitJobResponse {
	t.Helper()
	resp, err := c.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatalf("SubmitJob(%v): %v", spec, err)
	}
	return resp
}

func TestSubmitJobDefaultsAndSecret(t *testing.T) {
	h := newJobHarness(t)
	ownerID, bearer := h.token(ccv1.Role_ROLE_ADMIN)
	jobs := h.jobsAs(bearer)

	in := &ccv1.JobSpec{Image: "busybox", Command: []string{"echo", "hi"}, WebhookUrl: "https://example.com/hook", Labels: map[string]string{"team": "a"}}
	resp := submit(t, jobs, in)
	j := resp.Job
	if len(resp.WebhookSecret) != 64 || strings.Trim(resp.WebhookSecret, "0123456789abcdef") != "" {
		t.Fatalf("generated webhook secret %q, want 64 hex digits", resp.WebhookSecret)
	}
	if resp.Existing || j.State != ccv1.JobState_JOB_STATE_QUEUED || j.OwnerTokenId != ownerID || len(j.Id) != 32 {
		t.Fatalf("submitted %v", resp)
	}
	// The stored spec is the submitted one with every default filled
	// (each default's value is checked in internal/jobspec).
	s := j.Spec
	want, err := jobspec.Normalize(in, jobspec.Caps{})
	if err != nil {
		t.Fatal(err)
	}
	if want.Timeout == nil || want.Resources.GetMemoryBytes() == 0 || want.Queue == "" {
		t.Fatalf("normalized spec lacks defaults: %v", want)
	}
	if !proto.Equal(s, want) {
		t.Fatalf("stored spec\n%v\nwant\n%v", s, want)
	}
	// The secret is never read back.
	if g := h.get(j.Id); g.Spec.WebhookSecret != "" || !proto.Equal(g.Spec, want) {
		t.Fatalf("GetJob spec %v", g.Spec)
	}
	list, err := jobs.ListJobs(ctxT(t), &ccv1.ListJobsRequest{})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].Spec.WebhookSecret != "" {
		t.Fatalf("ListJobs: %v, %v", list, err)
	}
	// A secret given is kept, and not echoed.
	resp = submit(t, jobs, &ccv1.JobSpec{Image: "busybox", WebhookUrl: "http://hooks.local/x", WebhookSecret: "mine"})
	if resp.WebhookSecret != "" || resp.Job.Spec.WebhookSecret != "" {
		t.Fatalf("given secret echoed: %v", resp)
	}
	// Without a webhook there is no secret.
	if resp = submit(t, jobs, &ccv1.JobSpec{Image: "busybox"}); resp.WebhookSecret != "" {
		t.Fatalf("secret without webhook: %q", resp.WebhookSecret)
	}
	resp = submit(t, h.admin, &ccv1.JobSpec{Image: "busybox:1.36", Resources: &ccv1.ContainerResources{MemoryBytes: 64 << 20}})
	if r := resp.Job.Spec.Resources; r.MemoryBytes != 64<<20 || r.CpuMillis != 1000 || r.Pids != 512 {
		t.Fatalf("partial resources: %v", r)
	}
	if resp.Job.OwnerTokenId == ownerID {
		t.Fatalf("the bootstrap token's job owned by %s", resp.Job.OwnerTokenId)
	}
}

// A loaded image is resolved at submit: the attempt's container runs that
// archive.
func TestSubmitJobResolvesImage(t *testing.T) {
	h := newJobHarness(t)
	img := h.srv.Client().LoadImage(t, ociArchive(t, "docker.io/library/busybox:latest", 1000))
	nodeID, _, _ := h.node("n1")
	job := submit(t, h.admin, &ccv1.JobSpec{Image: "busybox"}).Job
	pulled := submit(t, h.admin, &ccv1.JobSpec{Image: "example.com/not/loaded:1"}).Job
	h.start(job.Id, nodeID, "c1", 1)
	h.start(pulled.Id, nodeID, "c2", 1)
	for cid, want := range map[string]string{"c1": img.Digest, "c2": ""} {
		c, err := h.srv.Client().Containers.GetContainer(ctxT(t), &ccv1.GetContainerRequest{Id: cid})
		if err != nil {
			t.Fatal(err)
		}
		if c.Container.ImageDigest != want || c.Container.Spec.GetSandbox().GetJobId() == "" {
			t.Errorf("attempt %s: image digest %q, want %q", cid, c.Container.ImageDigest, want)
		}
	}
}

func TestSubmitJobIdempotency(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_ADMIN)
	_, b := h.token(ccv1.Role_ROLE_ADMIN)
	ja, jb := h.jobsAs(a), h.jobsAs(b)

	first := submit(t, ja, &ccv1.JobSpec{Image: "busybox", IdempotencyKey: "k1", WebhookUrl: "https://x.test/"})
	again := submit(t, ja, &ccv1.JobSpec{Image: "other", IdempotencyKey: "k1", WebhookUrl: "https://x.test/"})
	if first.Existing || !again.Existing || again.Job.Id != first.Job.Id || again.Job.Spec.Image != first.Job.Spec.Image {
		t.Fatalf("first %v\nagain %v", first, again)
	}
	if again.WebhookSecret != "" {
		t.Fatalf("the earlier job's secret was returned again")
	}
	// Keys are per token.
	other := submit(t, jb, &ccv1.JobSpec{Image: "busybox", IdempotencyKey: "k1"})
	if other.Existing || other.Job.Id == first.Job.Id {
		t.Fatalf("another token's key matched: %v", other)
	}
	// Concurrent submits with one key make one job.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", IdempotencyKey: "k2"}})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- r.Job.Id
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one key made jobs %v", seen)
	}
}

// Every refusal of a spec is tabled in internal/jobspec; here, that the API
// answers InvalidArgument with the whole message, checks what only it can
// (an input no server holds), and writes nothing.
func TestSubmitJobValidation(t *testing.T) {
	h := newJobHarness(t)
	tests := []struct {
		name string
		spec *ccv1.JobSpec
		text string
	}{
		{"no spec", nil, "spec.image: required"},
		{"timeout too long", &ccv1.JobSpec{Image: "busybox", Timeout: durationpb.New(8 * 24 * time.Hour)}, "timeout: 192h0m0s is longer"},
		{"input not uploaded", &ccv1.JobSpec{Image: "busybox", InputDigest: "sha256:" + strings.Repeat("ab", 32)}, "upload the input first"},
		{"several", &ccv1.JobSpec{Image: "busybox", MaxAttempts: 99, Env: []string{"=x"}}, "; "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.admin.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: tt.spec})
			wantCode(t, err, codes.InvalidArgument, tt.text)
		})
	}
	list, err := h.admin.ListJobs(ctxT(t), &ccv1.ListJobsRequest{})
	if err != nil || len(list.Jobs) != 0 {
		t.Fatalf("refused submits left jobs: %v, %v", list, err)
	}
}

func TestListJobsPagingAndPrefix(t *testing.T) {
	h := newJobHarness(t)
	const n = 300
	ids := make([]string, 0, n) // oldest first
	for i := range n {
		r := submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", Labels: map[string]string{"i": fmt.Sprint(i % 3)}, Queue: []string{"default", "q2"}[i%2]})
		ids = append(ids, r.Job.Id)
	}
	// Cancel every tenth: it leaves the queued state.
	cancelled := map[string]bool{}
	for i := 0; i < n; i += 10 {
		if _, err := h.admin.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: ids[i]}); err != nil {
			t.Fatal(err)
		}
		cancelled[ids[i]] = true
	}
	collect := func(req *ccv1.ListJobsRequest) []string {
		t.Helper()
		var out []string
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatal("paging does not end")
			}
			resp, err := h.admin.ListJobs(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if lim := int(req.Limit); lim > 0 && len(resp.Jobs) > lim {
				t.Fatalf("page of %d jobs, limit %d", len(resp.Jobs), lim)
			}
			for _, j := range resp.Jobs {
				if req.State != 0 && j.State != req.State {
					t.Fatalf("state filter %v listed %v", req.State, j.State)
				}
				out = append(out, j.Id)
			}
			if resp.NextPageToken == "" {
				return out
			}
			req.PageToken = resp.NextPageToken
		}
	}
	var wantQueued []string
	for i := n - 1; i >= 0; i-- {
		if !cancelled[ids[i]] {
			wantQueued = append(wantQueued, ids[i])
		}
	}
	if got := collect(&ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_QUEUED, Limit: 37}); strings.Join(got, ",") != strings.Join(wantQueued, ",") {
		t.Fatalf("queued jobs by pages: %d jobs, want %d newest first", len(got), len(wantQueued))
	}
	if got := collect(&ccv1.ListJobsRequest{State: ccv1.JobState_JOB_STATE_CANCELLED, Limit: 7}); len(got) != len(cancelled) || got[0] != ids[290] {
		t.Fatalf("cancelled: %d jobs, want %d", len(got), len(cancelled))
	}
	if got := collect(&ccv1.ListJobsRequest{}); len(got) != n || got[0] != ids[n-1] || got[n-1] != ids[0] {
		t.Fatalf("all jobs: %d", len(got))
	}
	if got := collect(&ccv1.ListJobsRequest{Label: []string{"i=1"}, Queue: "q2", Limit: 10}); len(got) != 50 {
		t.Fatalf("label i=1 in q2: %d jobs, want 50", len(got))
	}
	resp, err := h.admin.ListJobs(ctxT(t), &ccv1.ListJobsRequest{})
	if err != nil || len(resp.Jobs) != api.DefaultJobListLimit || resp.NextPageToken == "" {
		t.Fatalf("default page: %d jobs, %v", len(resp.GetJobs()), err)
	}
	for _, bad := range []*ccv1.ListJobsRequest{
		{PageToken: "garbage"}, {Limit: -1}, {Label: []string{"novalue"}}, {State: ccv1.JobState(99)},
	} {
		_, err := h.admin.ListJobs(ctxT(t), bad)
		wantCode(t, err, codes.InvalidArgument, "")
	}

	// Get by a unique prefix; a short prefix matches several.
	if j := h.get(ids[5][:12]); j.Id != ids[5] {
		t.Fatalf("prefix %s found %s", ids[5][:12], j.Id)
	}
	_, err = h.admin.GetJob(ctxT(t), &ccv1.GetJobRequest{Id: ids[5][:1]})
	wantCode(t, err, codes.InvalidArgument, "several job ids")
	_, err = h.admin.GetJob(ctxT(t), &ccv1.GetJobRequest{Id: "zzzz"})
	wantCode(t, err, codes.NotFound, "no job")

	// Queues: the default one and q2, with their counts.
	qs, err := h.admin.ListQueues(ctxT(t), &ccv1.ListQueuesRequest{})
	if err != nil || len(qs.Queues) != 2 || qs.Queues[0].Name != "default" || qs.Queues[1].Name != "q2" || qs.Queues[0].Queued+qs.Queues[1].Queued != uint64(len(wantQueued)) {
		t.Fatalf("ListQueues: %v, %v", qs, err)
	}
}

func TestCancelJobAndViewers(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_ADMIN)
	_, v := h.token(ccv1.Role_ROLE_VIEWER)
	ja, jv := h.jobsAs(a), h.jobsAs(v)

	job := submit(t, ja, &ccv1.JobSpec{Image: "busybox"}).Job
	// Viewers read records but do nothing else.
	if l, err := jv.ListJobs(ctxT(t), &ccv1.ListJobsRequest{}); err != nil || len(l.Jobs) != 1 {
		t.Fatalf("viewer ListJobs: %v, %v", l, err)
	}
	if _, err := jv.GetJob(ctxT(t), &ccv1.GetJobRequest{Id: job.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := jv.ListQueues(ctxT(t), &ccv1.ListQueuesRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := jv.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	wantCode(t, err, codes.PermissionDenied, "")
	_, err = recvOutput(t, jv, &ccv1.JobOutputRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "")
	_, err = recvLogs(t, jv, &ccv1.JobLogsRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "")
	_, err = jv.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "")
	_, err = jv.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "gpu"})
	wantCode(t, err, codes.PermissionDenied, "")
	q, err := h.admin.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "gpu", MaxRunning: 2})
	if err != nil || q.Queue.Name != "gpu" || q.Queue.MaxRunning != 2 {
		t.Fatalf("SetQueue: %v, %v", q, err)
	}
	_, err = h.admin.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "GPU!"})
	wantCode(t, err, codes.InvalidArgument, "queue name")

	// Cancelling a queued job ends it at once; again changes nothing.
	resp, err := ja.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: job.Id[:10]})
	if err != nil || resp.Job.State != ccv1.JobState_JOB_STATE_CANCELLED || resp.Job.FinishedAt == nil {
		t.Fatalf("cancel: %v, %v", resp, err)
	}
	if again, err := ja.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: job.Id}); err != nil || again.Job.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancel again: %v, %v", again, err)
	}
	_, err = ja.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: "nosuchjob"})
	wantCode(t, err, codes.NotFound, "no job")
	// No output for a cancelled job, nor for a queued one.
	_, err = recvOutput(t, ja, &ccv1.JobOutputRequest{Id: job.Id})
	wantCode(t, err, codes.FailedPrecondition, "has no output: it ended cancelled")
	queued := submit(t, ja, &ccv1.JobSpec{Image: "busybox"}).Job
	_, err = recvOutput(t, ja, &ccv1.JobOutputRequest{Id: queued.Id})
	wantCode(t, err, codes.FailedPrecondition, "has no output yet: it is queued")
}

// Tokens of role jobs submit, and cancel, read the logs and download the
// output of their own jobs only; they may not set queues.
func TestJobsRole(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_JOBS)
	_, b := h.token(ccv1.Role_ROLE_JOBS)
	ja, jb := h.jobsAs(a), h.jobsAs(b)

	nodeID, _, _ := h.node("n1")
	job := submit(t, ja, &ccv1.JobSpec{Image: "busybox", Env: []string{"API_KEY=s3cret"}, WebhookUrl: "http://203.0.113.7:1/hook?key=k"}).Job
	out := h.pushBlob(targz(t, []tarEntry{{name: "r.txt", body: []byte("r")}}))
	logs := h.pushBlob(logLines([2]string{"stdout", "hi\n"}))
	h.finish(job.Id, nodeID, out, logs)

	_, err := jb.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "only that token or an admin token may cancel it")
	_, err = recvLogs(t, jb, &ccv1.JobLogsRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "read the logs of")
	_, err = recvOutput(t, jb, &ccv1.JobOutputRequest{Id: job.Id})
	wantCode(t, err, codes.PermissionDenied, "download the output of")
	res := httpGet(t, h.srv, "/v1/jobs/"+job.Id+"/output", b, nil)
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("REST output with another jobs token: %d", res.StatusCode)
	}
	// Others' records are visible, without what may hold secrets.
	if r, err := jb.GetJob(ctxT(t), &ccv1.GetJobRequest{Id: job.Id}); err != nil {
		t.Fatal(err)
	} else if r.Job.Spec.Env[0] != "API_KEY=(hidden)" || r.Job.Spec.WebhookUrl != "(hidden)" {
		t.Fatalf("another token's job shows env %v and webhook %q", r.Job.Spec.Env, r.Job.Spec.WebhookUrl)
	}
	if r, err := ja.GetJob(ctxT(t), &ccv1.GetJobRequest{Id: job.Id}); err != nil || r.Job.Spec.Env[0] != "API_KEY=s3cret" {
		t.Fatalf("the owner's view: %v, %v", r, err)
	}
	if _, err := jb.ListJobs(ctxT(t), &ccv1.ListJobsRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = ja.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "gpu", MaxRunning: 2})
	wantCode(t, err, codes.PermissionDenied, "")
	if _, err := ccv1.NewClusterServiceClient(h.srv.Conn(a)).GetStatus(ctxT(t), &ccv1.GetStatusRequest{}); err != nil {
		t.Fatalf("jobs token GetStatus: %v", err)
	}
	_, err = ccv1.NewContainerServiceClient(h.srv.Conn(a)).ListContainers(ctxT(t), &ccv1.ListContainersRequest{})
	wantCode(t, err, codes.PermissionDenied, "")

	// The owner reads its own.
	if got, err := recvLogs(t, ja, &ccv1.JobLogsRequest{Id: job.Id}); err != nil || got != "stdout:hi\n|" {
		t.Fatalf("owner logs: %q, %v", got, err)
	}
	if got, err := recvOutput(t, ja, &ccv1.JobOutputRequest{Id: job.Id, Path: "r.txt"}); err != nil || string(got.data) != "r" {
		t.Fatalf("owner output: %q, %v", got.data, err)
	}
	if res := httpGet(t, h.srv, "/v1/jobs/"+job.Id+"/output", a, nil); res.StatusCode != 200 {
		t.Fatalf("REST output as owner: %d", res.StatusCode)
	}
	mine := submit(t, ja, &ccv1.JobSpec{Image: "busybox"}).Job
	if r, err := ja.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: mine.Id}); err != nil || r.Job.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("owner cancel: %v, %v", r, err)
	}
	// An admin cancels anyone's.
	theirs := submit(t, jb, &ccv1.JobSpec{Image: "busybox"}).Job
	if r, err := h.admin.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: theirs.Id}); err != nil || r.Job.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("admin cancel: %v, %v", r, err)
	}
}

type httpResponse struct {
	*http.Response
	body []byte
}

func httpGet(t *testing.T, srv *testcluster.Server, path, bearer string, hdr map[string]string) httpResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResponse{resp, body}
}

func recvLogs(t *testing.T, c ccv1.JobServiceClient, req *ccv1.JobLogsRequest) (string, error) {
	t.Helper()
	st, err := c.JobLogs(ctxT(t), req)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		fmt.Fprintf(&b, "%s:%s|", m.Stream, m.Data)
	}
}

type outputResult struct {
	size int64
	sha  string
	data []byte
}

func recvOutput(t *testing.T, c ccv1.JobServiceClient, req *ccv1.JobOutputRequest) (outputResult, error) {
	t.Helper()
	var out outputResult
	st, err := c.JobOutput(ctxT(t), req)
	if err != nil {
		return out, err
	}
	for i := 0; ; i++ {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if i == 0 {
			out.size, out.sha = m.Size, m.Sha256
		} else if m.Size != 0 || m.Sha256 != "" {
			t.Fatalf("message %d carries size or sha256", i)
		}
		out.data = append(out.data, m.Data...)
	}
}

func TestUploadInput(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_JOBS)
	ja := h.jobsAs(a)
	upload := func(hdr *ccv1.UploadHeader, data []byte, chunk int) (*ccv1.UploadInputResponse, error) {
		st, err := ja.UploadInput(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if hdr != nil {
			st.Send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Header{Header: hdr}})
		}
		for len(data) > 0 {
			k := min(chunk, len(data))
			if st.Send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Chunk{Chunk: data[:k]}}) != nil {
				break
			}
			data = data[k:]
		}
		return st.CloseAndRecv()
	}
	data := targz(t, []tarEntry{{name: "in.txt", body: bytes.Repeat([]byte("input "), 100000)}})
	resp, err := upload(&ccv1.UploadHeader{Size: int64(len(data)), Sha256: sha(data)}, data, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Digest != "sha256:"+sha(data) || resp.Size != int64(len(data)) {
		t.Fatalf("uploaded %v, want sha256:%s, %d bytes", resp, sha(data), len(data))
	}
	if !blobFiles(t, h.srv)[resp.Digest] {
		t.Fatalf("blob %s not stored", resp.Digest)
	}
	job := submit(t, ja, &ccv1.JobSpec{Image: "busybox", InputDigest: strings.TrimPrefix(resp.Digest, "sha256:")}).Job
	if job.Spec.InputDigest != resp.Digest {
		t.Fatalf("input digest stored as %q", job.Spec.InputDigest)
	}
	// Another jobs token may not mount it by its digest; an admin may.
	_, other := h.token(ccv1.Role_ROLE_JOBS)
	_, err = h.jobsAs(other).SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", InputDigest: resp.Digest}})
	wantCode(t, err, codes.PermissionDenied, "was not uploaded with this token")
	submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", InputDigest: resp.Digest})
	// Refusals.
	_, err = upload(nil, data, 1000)
	wantCode(t, err, codes.InvalidArgument, "header")
	_, err = upload(&ccv1.UploadHeader{Sha256: sha([]byte("x"))}, data, 1000)
	wantCode(t, err, codes.InvalidArgument, "does not match")
	_, err = upload(&ccv1.UploadHeader{Size: int64(len(data)) + 1}, data, 1000)
	wantCode(t, err, codes.InvalidArgument, "ended after")
	_, err = upload(&ccv1.UploadHeader{Size: 5 << 30}, data, 1000)
	wantCode(t, err, codes.InvalidArgument, "limit")
	_, err = upload(&ccv1.UploadHeader{}, nil, 1000)
	wantCode(t, err, codes.InvalidArgument, "empty")
}

type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
}

func targz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(e.body)
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func logLines(recs ...[2]string) []byte {
	var b bytes.Buffer
	for i, r := range recs {
		line := map[string]string{"t": time.Unix(int64(i), 0).UTC().Format(time.RFC3339Nano), "s": r[0], "d": r[1]}
		if r[0] == "bin" {
			line = map[string]string{"t": "2025-01-01T00:00:00Z", "s": "stderr", "b": "/w=="}
		}
		j, _ := json.Marshal(line)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// outputFixture is a finished job with an output archive and stored logs.
type outputFixture struct {
	*jobHarness
	owner   ccv1.JobServiceClient
	bearer  string
	job     *ccv1.Job
	archive []byte
	big     []byte
}

func newOutputFixture(t *testing.T) *outputFixture {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_ADMIN)
	f := &outputFixture{jobHarness: h, owner: h.jobsAs(a), bearer: a}
	f.big = make([]byte, 3<<20+123)
	for i := range f.big {
		f.big[i] = byte(i * 7 % 251)
	}
	f.archive = targz(t, []tarEntry{
		{name: "a.txt", body: []byte("hello a\n")},
		{name: "dir/", typ: tar.TypeDir},
		{name: "dir/b.bin", body: f.big},
		{name: "hard", typ: tar.TypeLink, link: "a.txt"},
		{name: "link", typ: tar.TypeSymlink, link: "a.txt"},
		{name: "nodir/c.txt", body: []byte("c")},
	})
	out := h.pushBlob(f.archive)
	logs := h.pushBlob(logLines([2]string{"stdout", "one\ntwo\n"}, [2]string{"stderr", "warn\n"}, [2]string{"stdout", "three\nfour"}))
	nodeID, _, _ := h.node("n1")
	f.job = submit(t, f.owner, &ccv1.JobSpec{Image: "busybox"}).Job
	h.finish(f.job.Id, nodeID, out, logs)
	f.job = h.get(f.job.Id)
	if f.job.State != ccv1.JobState_JOB_STATE_SUCCEEDED || f.job.OutputDigest != out || f.job.LogsDigest != logs {
		t.Fatalf("driven job: %v", f.job)
	}
	return f
}

func TestJobOutput(t *testing.T) {
	f := newOutputFixture(t)
	id := f.job.Id
	got, err := recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.data, f.archive) || got.size != int64(len(f.archive)) || got.sha != "sha256:"+sha(f.archive) {
		t.Fatalf("archive: %d bytes (size %d, %s), want %d", len(got.data), got.size, got.sha, len(f.archive))
	}
	got, err = recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Offset: 100})
	if err != nil || !bytes.Equal(got.data, f.archive[100:]) || got.size != int64(len(f.archive)) {
		t.Fatalf("archive from 100: %d bytes, %v", len(got.data), err)
	}
	got, err = recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Path: "dir/b.bin"})
	if err != nil || !bytes.Equal(got.data, f.big) || got.sha != "sha256:"+sha(f.big) || got.size != int64(len(f.big)) {
		t.Fatalf("dir/b.bin: %d bytes, %s, %v", len(got.data), got.sha, err)
	}
	got, err = recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Path: "/output/dir/b.bin", Offset: 1 << 20})
	if err != nil || !bytes.Equal(got.data, f.big[1<<20:]) {
		t.Fatalf("dir/b.bin from 1 MiB: %d bytes, %v", len(got.data), err)
	}
	for _, p := range []string{"a.txt", "./a.txt", "hard"} {
		got, err = recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Path: p})
		if err != nil || string(got.data) != "hello a\n" {
			t.Fatalf("%s: %q, %v", p, got.data, err)
		}
	}
	// The admin may download too.
	if got, err = recvOutput(t, f.admin, &ccv1.JobOutputRequest{Id: id, Path: "nodir/c.txt"}); err != nil || string(got.data) != "c" {
		t.Fatalf("admin: %q, %v", got.data, err)
	}
	for p, want := range map[string]struct {
		code codes.Code
		text string
	}{
		"dir":     {codes.InvalidArgument, "is a directory"},
		"nodir":   {codes.InvalidArgument, "is a directory"},
		"link":    {codes.InvalidArgument, "symbolic link"},
		"missing": {codes.NotFound, `has no file "missing"`},
		"../etc":  {codes.InvalidArgument, "inside /output"},
		"/":       {codes.InvalidArgument, "inside /output"},
	} {
		_, err := recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Path: p})
		wantCode(t, err, want.code, want.text)
	}
	_, err = recvOutput(t, f.owner, &ccv1.JobOutputRequest{Id: id, Offset: int64(len(f.archive)) + 1})
	wantCode(t, err, codes.OutOfRange, "offset")
	// No extracted file is left behind.
	left, _ := filepath.Glob(filepath.Join(f.srv.Config.DataDir, "tmp", "job-output-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestJobOutputREST(t *testing.T) {
	f := newOutputFixture(t)
	path := "/v1/jobs/" + f.job.Id + "/output"
	etag := `"sha256:` + sha(f.archive) + `"`
	res := httpGet(t, f.srv, path, f.bearer, nil)
	if res.StatusCode != 200 || !bytes.Equal(res.body, f.archive) {
		t.Fatalf("GET: %d, %d bytes", res.StatusCode, len(res.body))
	}
	h := res.Header
	if h.Get("ETag") != etag || h.Get("Content-Type") != "application/gzip" || h.Get("Content-Length") != fmt.Sprint(len(f.archive)) ||
		h.Get("X-Content-Sha256") != sha(f.archive) || !strings.HasPrefix(h.Get("Digest"), "sha-256=") || h.Get("Accept-Ranges") != "bytes" ||
		h.Get("Content-Disposition") != `attachment; filename="`+f.job.Id+`-output.tar.gz"` {
		t.Fatalf("headers: %v", h)
	}
	res = httpGet(t, f.srv, path, f.bearer, map[string]string{"Range": "bytes=10-19"})
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(res.body, f.archive[10:20]) ||
		res.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(f.archive)) {
		t.Fatalf("range: %d %q %v", res.StatusCode, res.body, res.Header)
	}
	res = httpGet(t, f.srv, path, f.bearer, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(f.archive)-5)})
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(res.body, f.archive[len(f.archive)-5:]) {
		t.Fatalf("range to the end: %d %q", res.StatusCode, res.body)
	}
	res = httpGet(t, f.srv, path, f.bearer, map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified || len(res.body) != 0 {
		t.Fatalf("If-None-Match: %d", res.StatusCode)
	}
	res = httpGet(t, f.srv, path, f.bearer, map[string]string{"If-None-Match": `"sha256:other"`})
	if res.StatusCode != 200 || len(res.body) != len(f.archive) {
		t.Fatalf("If-None-Match other: %d", res.StatusCode)
	}
	// One file.
	res = httpGet(t, f.srv, path+"?path=dir/b.bin", f.bearer, map[string]string{"Range": "bytes=1048576-1048600"})
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(res.body, f.big[1<<20:1<<20+25]) ||
		res.Header.Get("ETag") != `"sha256:`+sha(f.big)+`"` || res.Header.Get("Content-Disposition") != `attachment; filename="b.bin"` {
		t.Fatalf("path range: %d, %d bytes, %v", res.StatusCode, len(res.body), res.Header)
	}
	res = httpGet(t, f.srv, path+"?path=a.txt", f.srv.Token, map[string]string{"If-None-Match": `"sha256:` + sha([]byte("hello a\n")) + `"`})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("path If-None-Match: %d", res.StatusCode)
	}
	res = httpGet(t, f.srv, path+"?path=a.txt", f.srv.Token, nil)
	if res.StatusCode != 200 || string(res.body) != "hello a\n" || res.Header.Get("X-Content-Sha256") != sha([]byte("hello a\n")) {
		t.Fatalf("admin path: %d %q", res.StatusCode, res.body)
	}
	// Refusals, as JSON errors.
	_, viewer := f.token(ccv1.Role_ROLE_VIEWER)
	for _, c := range []struct {
		path, bearer string
		code         int
		text         string
	}{
		{path, "", 401, "token"},
		{path, viewer, 403, "may not download"},
		{path + "?path=missing", f.bearer, 404, "has no file"},
		{path + "?path=dir", f.bearer, 400, "is a directory"},
		{"/v1/jobs/nosuchjob/output", f.bearer, 404, "no job"},
	} {
		res := httpGet(t, f.srv, c.path, c.bearer, nil)
		var e struct {
			Message string `json:"message"`
		}
		if res.StatusCode != c.code || json.Unmarshal(res.body, &e) != nil || !strings.Contains(e.Message, c.text) {
			t.Errorf("GET %s: %d %s, want %d with %q", c.path, res.StatusCode, res.body, c.code, c.text)
		}
	}
}

func TestJobLogsStored(t *testing.T) {
	f := newOutputFixture(t)
	got, err := recvLogs(t, f.owner, &ccv1.JobLogsRequest{Id: f.job.Id})
	if err != nil || got != "stdout:one\ntwo\n|stderr:warn\n|stdout:three\nfour|" {
		t.Fatalf("logs: %q, %v", got, err)
	}
	for tail, want := range map[int64]string{
		1:  "stdout:four|",
		2:  "stdout:three\nfour|",
		3:  "stderr:warn\n|stdout:three\nfour|",
		4:  "stdout:two\n|stderr:warn\n|stdout:three\nfour|",
		10: "stdout:one\ntwo\n|stderr:warn\n|stdout:three\nfour|",
	} {
		got, err := recvLogs(t, f.owner, &ccv1.JobLogsRequest{Id: f.job.Id, Tail: tail})
		if err != nil || got != want {
			t.Errorf("tail %d: %q, %v; want %q", tail, got, err, want)
		}
	}
	// Follow on an ended job ends.
	if got, err := recvLogs(t, f.owner, &ccv1.JobLogsRequest{Id: f.job.Id, Follow: true}); err != nil || !strings.HasPrefix(got, "stdout:one") {
		t.Fatalf("follow ended job: %q, %v", got, err)
	}
	// A queued job has no logs yet.
	q := submit(t, f.owner, &ccv1.JobSpec{Image: "busybox"}).Job
	if got, err := recvLogs(t, f.owner, &ccv1.JobLogsRequest{Id: q.Id}); err != nil || got != "" {
		t.Fatalf("queued job logs: %q, %v", got, err)
	}
}

func TestSendStoredLogs(t *testing.T) {
	plain := logLines([2]string{"stdout", "a\nb\n"}, [2]string{"bin", ""}, [2]string{"stdout", "c\n"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Write([]byte(`{"t":"x","s":"stdout","d":"cut sh`)) // a torn last line
	zw.Close()
	for name, data := range map[string][]byte{"plain": plain, "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			var out []string
			err := api.SendStoredLogs(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, 0,
				func(s string, d []byte) error { out = append(out, s+":"+string(d)); return nil })
			if err != nil || strings.Join(out, "|") != "stdout:a\nb\n|stderr:\xff|stdout:c\n" {
				t.Fatalf("%q, %v", out, err)
			}
		})
	}
}

// fakeAgent holds a node's session and answers log requests with lines,
// holding followed streams open until release is closed.
type fakeAgent struct {
	client  ccv1.AgentServiceClient
	release chan struct{}
	asked   chan *ccv1.LogRequest

	mu    sync.Mutex
	lines []string
	// edge, when set, goes in every heartbeat (a node that runs the edge).
	edge atomic.Pointer[ccv1.EdgeTraffic]
}

func (a *fakeAgent) setLines(lines ...string) {
	a.mu.Lock()
	a.lines = lines
	a.mu.Unlock()
}

func startFakeAgent(t *testing.T, client ccv1.AgentServiceClient) *fakeAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := &fakeAgent{client: client, release: make(chan struct{}), asked: make(chan *ccv1.LogRequest, 16)}
	st, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Hello{Hello: &ccv1.SessionHello{Version: "test"}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			if st.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Heartbeat{Heartbeat: &ccv1.Heartbeat{Edge: a.edge.Load()}}}) != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				return
			}
			if l := m.GetLogs(); l != nil {
				a.asked <- l
				go a.answer(ctx, l)
			}
			if r := m.GetStats(); r != nil {
				go a.answerStats(ctx, r)
			}
		}
	}()
	return a
}

func (a *fakeAgent) answer(ctx context.Context, l *ccv1.LogRequest) {
	st, err := a.client.SendLogs(ctx)
	if err != nil {
		return
	}
	st.Send(&ccv1.SendLogsRequest{Msg: &ccv1.SendLogsRequest_Header{Header: &ccv1.LogHeader{RequestId: l.RequestId}}})
	a.mu.Lock()
	lines := a.lines
	a.mu.Unlock()
	for _, line := range lines {
		st.Send(&ccv1.SendLogsRequest{Msg: &ccv1.SendLogsRequest_Chunk{Chunk: &ccv1.ContainerLogsResponse{Stream: "stdout", Data: []byte(line)}}})
	}
	if l.Follow {
		select {
		case <-a.release:
		case <-ctx.Done():
		}
	}
	st.CloseAndRecv()
}

func TestJobLogsFromNodeAndWatch(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_ADMIN)
	_, v := h.token(ccv1.Role_ROLE_VIEWER)
	ja := h.jobsAs(a)
	nodeID, _, fake := h.node("n1")
	fake.setLines("live 1\n", "live 2\n")
	job := submit(t, ja, &ccv1.JobSpec{Image: "busybox"}).Job

	// A viewer watches the job until it is done.
	watchCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch, err := h.jobsAs(v).WatchJobs(watchCtx, &ccv1.WatchJobsRequest{Ids: []string{job.Id[:8]}, UntilDone: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.Job.Id != job.Id || first.Job.State != ccv1.JobState_JOB_STATE_QUEUED {
		t.Fatalf("first watch message: %v, %v", first, err)
	}
	// Every job: active ones first.
	all, err := h.admin.WatchJobs(watchCtx, &ccv1.WatchJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := all.Recv(); err != nil || m.Job.Id != job.Id {
		t.Fatalf("watch all: %v, %v", m, err)
	}

	cid := "c-" + job.Id
	h.start(job.Id, nodeID, cid, 1)
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.Now()})

	// Running: the logs come from the node.
	got, err := recvLogs(t, ja, &ccv1.JobLogsRequest{Id: job.Id, Tail: 5})
	if err != nil || got != "stdout:live 1\n|stdout:live 2\n|" {
		t.Fatalf("running job logs: %q, %v", got, err)
	}
	if l := <-fake.asked; l.ContainerId != cid || l.Follow || l.Tail != 5 {
		t.Fatalf("agent asked %v", l)
	}
	// Followed: the stream stays open while the job runs, and ends when
	// the attempt's stream ends and the job has ended.
	followed := make(chan string, 1)
	go func() {
		got, err := recvLogs(t, ja, &ccv1.JobLogsRequest{Id: job.Id, Follow: true})
		if err != nil {
			got += "ERR " + err.Error()
		}
		followed <- got
	}()
	if l := <-fake.asked; !l.Follow {
		t.Fatalf("follow: agent asked %v", l)
	}
	logs := h.pushBlob(logLines([2]string{"stdout", "stored\n"}))
	h.uploaded(nodeID, cid, "logs", logs)
	h.report(nodeID, cid, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: 3, FinishedAt: timestamppb.Now(),
		JobResult: &ccv1.JobResult{Collected: true, LogsDigest: logs}})
	select {
	case got := <-followed:
		t.Fatalf("follow ended before the node's stream: %q", got)
	case <-time.After(200 * time.Millisecond):
	}
	close(fake.release)
	select {
	case got := <-followed:
		if got != "stdout:live 1\n|stdout:live 2\n|" {
			t.Fatalf("followed logs: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end with the job")
	}
	// Ended: the stored logs.
	if got, err := recvLogs(t, ja, &ccv1.JobLogsRequest{Id: job.Id}); err != nil || got != "stdout:stored\n|" {
		t.Fatalf("ended job logs: %q, %v", got, err)
	}

	// The watch saw the job through to its end, then ended.
	var states []ccv1.JobState
	for {
		m, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v (saw %v)", err, states)
		}
		if m.Job.Spec.WebhookSecret != "" {
			t.Fatal("watch carries the webhook secret")
		}
		if n := len(states); n == 0 || states[n-1] != m.Job.State {
			states = append(states, m.Job.State)
		}
	}
	if len(states) == 0 || states[len(states)-1] != ccv1.JobState_JOB_STATE_FAILED {
		t.Fatalf("watched states %v, want ending with failed", states)
	}
	// The watch of every job saw it too.
	for {
		m, err := all.Recv()
		if err != nil {
			t.Fatalf("watch all: %v", err)
		}
		if m.Job.Id == job.Id && m.Job.State == ccv1.JobState_JOB_STATE_FAILED {
			break
		}
	}
}

func TestUploadBlob(t *testing.T) {
	h := newJobHarness(t)
	nodeID, agent, _ := h.node("n1")
	_, otherAgent, _ := h.node("n2")
	job := submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", OutputLimitBytes: 1 << 20, MaxOutputFiles: 10}).Job
	cid := "c-" + job.Id
	h.start(job.Id, nodeID, cid, 1)

	upload := func(c ccv1.AgentServiceClient, hdr *ccv1.UploadBlobHeader, data []byte) (*ccv1.UploadBlobResponse, error) {
		st, err := c.UploadBlob(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		st.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Header{Header: hdr}})
		for len(data) > 0 {
			k := min(len(data), 256<<10)
			if st.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Chunk{Chunk: data[:k]}}) != nil {
				break
			}
			data = data[k:]
		}
		return st.CloseAndRecv()
	}
	out := targz(t, []tarEntry{{name: "r.txt", body: []byte("result")}})
	resp, err := upload(agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output", Size: int64(len(out)), Sha256: "sha256:" + sha(out)}, out)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Digest != "sha256:"+sha(out) || resp.Size != int64(len(out)) || resp.Have != 1 || resp.Voters != 1 {
		t.Fatalf("UploadBlob: %v", resp)
	}
	if !blobFiles(t, h.srv)[resp.Digest] {
		t.Fatal("output blob not stored")
	}
	logs := logLines([2]string{"stdout", "x\n"})
	if _, err := upload(agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "logs", Sha256: sha(logs)}, logs); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	for name, c := range map[string]struct {
		client ccv1.AgentServiceClient
		hdr    *ccv1.UploadBlobHeader
		data   []byte
		code   codes.Code
		text   string
	}{
		"other node":   {otherAgent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output", Sha256: sha(out)}, out, codes.PermissionDenied, "not assigned to node"},
		"no container": {agent, &ccv1.UploadBlobHeader{ContainerId: "nope", Kind: "output", Sha256: sha(out)}, out, codes.FailedPrecondition, "does not exist"},
		"kind":         {agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "core", Sha256: sha(out)}, out, codes.InvalidArgument, "use output or logs"},
		"no sha256":    {agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output"}, out, codes.InvalidArgument, "sha256"},
		"mismatch":     {agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output", Sha256: sha([]byte("x"))}, out, codes.InvalidArgument, "does not match"},
		"over limit":   {agent, &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output", Sha256: sha(big)}, big, codes.InvalidArgument, "larger than the limit"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := upload(c.client, c.hdr, c.data)
			wantCode(t, err, c.code, c.text)
		})
	}
	// API tokens cannot upload as a node.
	_, err = upload(ccv1.NewAgentServiceClient(h.srv.Conn("")), &ccv1.UploadBlobHeader{ContainerId: cid, Kind: "output", Sha256: sha(out)}, out)
	wantCode(t, err, codes.Unauthenticated, "")
}

func TestFetchJobInput(t *testing.T) {
	h := newJobHarness(t)
	nodeID, agent, _ := h.node("n1")
	_, other, _ := h.node("n2")
	input := targz(t, []tarEntry{{name: "in.txt", body: []byte("in")}})
	digest := h.pushBlob(input)
	job := submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", InputDigest: digest}).Job
	h.start(job.Id, nodeID, "c-"+job.Id, 1)
	fetch := func(c ccv1.AgentServiceClient) ([]byte, error) {
		st, err := c.FetchBlob(ctxT(t), &ccv1.FetchBlobRequest{Digest: digest})
		if err != nil {
			return nil, err
		}
		var out []byte
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, m.Data...)
		}
	}
	if got, err := fetch(agent); err != nil || !bytes.Equal(got, input) {
		t.Fatalf("fetch input: %d bytes, %v", len(got), err)
	}
	// A node without that job's attempt may not.
	_, err := fetch(other)
	wantCode(t, err, codes.NotFound, "")
}

// Over REST a watch answers its headers at once, before any change, and
// streams one JSON object a line.
func TestWatchJobsREST(t *testing.T) {
	h := newJobHarness(t)
	// Until done, with no job active: it ends at once.
	res := httpGet(t, h.srv, "/v1/jobs:watch?until_done=true", h.srv.Token, nil)
	if res.StatusCode != 200 || len(bytes.TrimSpace(res.body)) != 0 {
		t.Fatalf("watch until done, nothing active: %d %q", res.StatusCode, res.body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL()+"/v1/jobs:watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.srv.Token)
	resp, err := h.srv.HTTPClient().Do(req) // returns with the headers
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("watch: %d %v", resp.StatusCode, resp.Header)
	}
	job := submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", WebhookUrl: "https://example.com/"}).Job
	dec := json.NewDecoder(resp.Body)
	var msg struct {
		Result struct {
			Job struct {
				ID    string `json:"id"`
				State string `json:"state"`
				Spec  struct {
					WebhookSecret string `json:"webhook_secret"`
				} `json:"spec"`
			} `json:"job"`
		} `json:"result"`
	}
	if err := dec.Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Result.Job.ID != job.Id || msg.Result.Job.State != "JOB_STATE_QUEUED" || msg.Result.Job.Spec.WebhookSecret != "" {
		t.Fatalf("watched %+v", msg)
	}

	// Followed logs of a queued job answer their headers at once too.
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer lcancel()
	lreq, err := http.NewRequestWithContext(lctx, http.MethodGet, h.srv.URL()+"/v1/jobs/"+job.Id+"/logs?follow=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	lreq.Header.Set("Authorization", "Bearer "+h.srv.Token)
	lresp, err := h.srv.HTTPClient().Do(lreq)
	if err != nil {
		t.Fatal(err)
	}
	defer lresp.Body.Close()
	if lresp.StatusCode != 200 {
		t.Fatalf("follow logs: %d", lresp.StatusCode)
	}
	// Cancelling the job ends the followed logs.
	if _, err := h.admin.CancelJob(ctxT(t), &ccv1.CancelJobRequest{Id: job.Id}); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(lresp.Body); err != nil || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("follow logs of a cancelled job: %q, %v", b, err)
	}
}

// TestJobOutputLargeEntryStreams: a file of an output that compresses to
// almost nothing (zeros, as a sparse file reads) is streamed from the
// archive as it is decompressed: no copy of it is written in the server's
// data dir, and a range far into it is served by skipping.
func TestJobOutputLargeEntryStreams(t *testing.T) {
	const size = 64 << 20
	// The archive is gzip members end to end (one stream to a reader):
	// the tar headers, then the same member of 1 MiB of zeros 64 times,
	// then the tar trailer (zeros too). Compressing 64 MiB under the race
	// detector would take seconds.
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	tw.WriteHeader(&tar.Header{Name: "small.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	if err := tw.WriteHeader(&tar.Header{Name: "zeros.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	member := func(data []byte) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		return b.Bytes()
	}
	var buf bytes.Buffer
	buf.Write(member(head.Bytes()))
	mib := member(make([]byte, 1<<20))
	for range size >> 20 {
		buf.Write(mib)
	}
	buf.Write(member(make([]byte, 1024)))
	if buf.Len() > 256<<10 {
		t.Fatalf("the archive is %d bytes", buf.Len())
	}
	h256 := sha256.New()
	io.CopyN(h256, zeroReader{}, size)
	wantSum := hex.EncodeToString(h256.Sum(nil))

	h := newJobHarness(t, func(c *testcluster.Config) { c.MaxOutputDownloads = 1 })
	_, bearer := h.token(ccv1.Role_ROLE_ADMIN)
	out := h.pushBlob(buf.Bytes())
	logs := h.pushBlob(logLines([2]string{"stdout", "x\n"}))
	nodeID, _, _ := h.node("n1")
	job := submit(t, h.jobsAs(bearer), &ccv1.JobSpec{Image: "busybox"}).Job
	h.finish(job.Id, nodeID, out, logs)

	tmp := filepath.Join(h.srv.Config.DataDir, "tmp")
	tmpUsed := func() int64 {
		var n int64
		filepath.WalkDir(tmp, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size() + 1
				}
			}
			return nil
		})
		return n
	}
	// A long deadline: the race detector slows decompression down.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	zeros := make([]byte, 1<<20)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL()+"/v1/jobs/"+job.Id+"/output?path=zeros.bin", nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := h.srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != fmt.Sprint(size) || res.Header.Get("ETag") != `"sha256:`+wantSum+`"` {
		t.Fatalf("GET: %d %v", res.StatusCode, res.Header)
	}
	// Read slowly: while the download is open, the tmp dir stays empty.
	chunk := make([]byte, 1<<20)
	var got int64
	for i := 0; i < 3; i++ {
		n, err := io.ReadFull(res.Body, chunk)
		if err != nil {
			t.Fatal(err)
		}
		got += int64(n)
		if used := tmpUsed(); used != 0 {
			t.Fatalf("after %d bytes read, the server wrote %d bytes in %s", got, used, tmp)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// While it is open, the same token may not open another download
	// (max_output_downloads = 1); another token may.
	r := httpGet(t, h.srv, "/v1/jobs/"+job.Id+"/output?path=small.txt", bearer, nil)
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(r.body), "max_output_downloads") {
		t.Fatalf("second download of the token: %d %s", r.StatusCode, r.body)
	}
	_, err = recvOutput(t, h.jobsAs(bearer), &ccv1.JobOutputRequest{Id: job.Id, Path: "small.txt"})
	wantCode(t, err, codes.ResourceExhausted, "downloads open")
	if r := httpGet(t, h.srv, "/v1/jobs/"+job.Id+"/output?path=small.txt", h.srv.Token, nil); r.StatusCode != 200 || string(r.body) != "hi" {
		t.Fatalf("download of another token: %d %s", r.StatusCode, r.body)
	}
	for {
		n, err := res.Body.Read(chunk)
		if !bytes.Equal(chunk[:n], zeros[:n]) {
			t.Fatalf("bytes %d to %d are not all zeros", got, got+int64(n))
		}
		got += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got != size {
		t.Fatalf("read %d bytes, want %d", got, size)
	}
	res.Body.Close()
	// The download ended: the token may download again (once the handler
	// has returned, which may be just after the client read the last byte).
	getAgain := func(hdr map[string]string) httpResponse {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r := httpGet(t, h.srv, "/v1/jobs/"+job.Id+"/output?path=zeros.bin", bearer, hdr)
			if r.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
				return r
			}
		}
	}
	// A range near the end, and over gRPC from an offset.
	r = getAgain(map[string]string{"Range": fmt.Sprintf("bytes=%d-", size-10)})
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(r.body, make([]byte, 10)) {
		t.Fatalf("range: %d, %d bytes", r.StatusCode, len(r.body))
	}
	g, err := recvOutput(t, h.jobsAs(bearer), &ccv1.JobOutputRequest{Id: job.Id, Path: "zeros.bin", Offset: size - 5})
	if err != nil || g.size != size || g.sha != "sha256:"+wantSum || !bytes.Equal(g.data, make([]byte, 5)) {
		t.Fatalf("gRPC from an offset: %d bytes, size %d, %s, %v", len(g.data), g.size, g.sha, err)
	}
	if used := tmpUsed(); used != 0 {
		t.Fatalf("the server wrote %d bytes in %s", used, tmp)
	}
}

// zeroReader reads zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestAttemptReportNamesOnlyItsUploads: a node's report of a job attempt
// may name only the output and logs it uploaded for that attempt through
// UploadBlob; a report naming another job's output is refused and the
// attempt fails with the reason, while its own upload is accepted.
func TestAttemptReportNamesOnlyItsUploads(t *testing.T) {
	h := newJobHarness(t)
	nodeID, agent, _ := h.node("n1")
	upload := func(cid, kind string, data []byte) string {
		t.Helper()
		st, err := agent.UploadBlob(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		st.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Header{Header: &ccv1.UploadBlobHeader{ContainerId: cid, Kind: kind, Size: int64(len(data)), Sha256: sha(data)}}})
		st.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Chunk{Chunk: data}})
		resp, err := st.CloseAndRecv()
		if err != nil {
			t.Fatalf("UploadBlob %s %s: %v", cid, kind, err)
		}
		return resp.Digest
	}
	_, ownerA := h.token(ccv1.Role_ROLE_JOBS)
	_, ownerB := h.token(ccv1.Role_ROLE_JOBS)
	// Job A, someone else's, has a secret output.
	secret := targz(t, []tarEntry{{name: "secret.txt", body: []byte("A's secret")}})
	jobA := submit(t, h.jobsAs(ownerA), &ccv1.JobSpec{Image: "busybox"}).Job
	h.start(jobA.Id, nodeID, "c-"+jobA.Id, 1)
	secretDigest := upload("c-"+jobA.Id, "output", secret)

	exited := func(out, logs string) *ccv1.ContainerStatus {
		now := timestamppb.Now()
		return &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, StartedAt: now, FinishedAt: now,
			JobResult: &ccv1.JobResult{Collected: true, OutputDigest: out, OutputSize: 1, OutputFiles: 1, LogsDigest: logs}}
	}
	// Job B's node uploads its own output and logs, then reports A's output
	// as B's.
	jobB := submit(t, h.jobsAs(ownerB), &ccv1.JobSpec{Image: "busybox"}).Job
	cidB := "c-" + jobB.Id
	h.start(jobB.Id, nodeID, cidB, 1)
	upload(cidB, "output", targz(t, []tarEntry{{name: "b.txt", body: []byte("b")}}))
	logsB := upload(cidB, "logs", logLines([2]string{"stdout", "b\n"}))
	h.report(nodeID, cidB, exited(secretDigest, logsB))
	b := h.get(jobB.Id)
	if b.State != ccv1.JobState_JOB_STATE_FAILED || b.OutputDigest != "" || !strings.Contains(b.Message, "did not upload") ||
		!strings.Contains(b.Message, secretDigest) || len(b.Attempts) != 1 || !strings.Contains(b.Attempts[0].Error, "did not upload") {
		t.Fatalf("job B after a report naming A's output: %s %q output %q attempts %v", b.State, b.Message, b.OutputDigest, b.Attempts)
	}
	_, err := recvOutput(t, h.jobsAs(ownerB), &ccv1.JobOutputRequest{Id: jobB.Id, Path: "secret.txt"})
	wantCode(t, err, codes.FailedPrecondition, "has no output")

	// Logs too: an upload for another attempt does not count.
	jobC := submit(t, h.jobsAs(ownerB), &ccv1.JobSpec{Image: "busybox"}).Job
	cidC := "c-" + jobC.Id
	h.start(jobC.Id, nodeID, cidC, 1)
	outC := upload(cidC, "output", targz(t, []tarEntry{{name: "c.txt", body: []byte("c")}}))
	h.report(nodeID, cidC, exited(outC, logsB))
	if c := h.get(jobC.Id); c.State != ccv1.JobState_JOB_STATE_FAILED || c.LogsDigest != "" || !strings.Contains(c.Message, "logs "+logsB) {
		t.Fatalf("job C after a report naming B's logs: %s %q", c.State, c.Message)
	}

	// Job A's node reports what it uploaded: accepted.
	h.report(nodeID, "c-"+jobA.Id, exited(secretDigest, ""))
	a := h.get(jobA.Id)
	if a.State != ccv1.JobState_JOB_STATE_SUCCEEDED || a.OutputDigest != secretDigest {
		t.Fatalf("job A: %s %q output %q", a.State, a.Message, a.OutputDigest)
	}
	got, err := recvOutput(t, h.jobsAs(ownerA), &ccv1.JobOutputRequest{Id: jobA.Id, Path: "secret.txt"})
	if err != nil || string(got.data) != "A's secret" {
		t.Fatalf("job A's output: %q, %v", got.data, err)
	}
}

// A jobs token may ask for network only on a queue that allows it; an
// admin always may. SetQueue without allow_network keeps the setting.
func TestJobNetworkPolicy(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_JOBS)
	ja := h.jobsAs(a)
	_, err := ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", Network: true}})
	wantCode(t, err, codes.PermissionDenied, `queue "default" does not allow jobs with network`)
	_, err = ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", Network: true, Queue: "web"}})
	wantCode(t, err, codes.PermissionDenied, `queue "web" does not allow`)
	submit(t, ja, &ccv1.JobSpec{Image: "busybox"})
	submit(t, h.admin, &ccv1.JobSpec{Image: "busybox", Network: true})

	allow := true
	q, err := h.admin.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "web", MaxRunning: 3, AllowNetwork: &allow})
	if err != nil || !q.Queue.AllowNetwork || q.Queue.MaxRunning != 3 {
		t.Fatalf("set queue: %v %v", q, err)
	}
	submit(t, ja, &ccv1.JobSpec{Image: "busybox", Network: true, Queue: "web"})
	_, err = ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", Network: true}})
	wantCode(t, err, codes.PermissionDenied, `queue "default"`)

	// Without allow_network the setting stays.
	if q, err = h.admin.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "web", MaxRunning: 5}); err != nil || !q.Queue.AllowNetwork || q.Queue.MaxRunning != 5 {
		t.Fatalf("set queue without allow_network: %v %v", q, err)
	}
	ls, err := h.admin.ListQueues(ctxT(t), &ccv1.ListQueuesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range ls.Queues {
		if q.AllowNetwork != (q.Name == "web") {
			t.Errorf("queue %v", q)
		}
	}
	deny := false
	if _, err := h.admin.SetQueue(ctxT(t), &ccv1.SetQueueRequest{Name: "web", MaxRunning: 5, AllowNetwork: &deny}); err != nil {
		t.Fatal(err)
	}
	_, err = ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", Network: true, Queue: "web"}})
	wantCode(t, err, codes.PermissionDenied, `queue "web" does not allow`)
}
