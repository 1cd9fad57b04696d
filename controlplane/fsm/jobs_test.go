package fsm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func (x *svcFixture) submit(id string, spec *ccv1.JobSpec) {
	x.t.Helper()
	x.must(statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB, &statev1.SubmitJob{Job: &statev1.JobRecord{
		Job: &ccv1.Job{Id: id, Spec: spec, OwnerTokenId: "tok"}}})
}

func (x *svcFixture) jobOps(ops ...*statev1.JobOp) {
	x.t.Helper()
	x.must(statev1.CommandType_COMMAND_TYPE_JOB_OPS, &statev1.JobOps{Ops: ops})
}

func (x *svcFixture) start(job, container string, attempt uint32) {
	x.t.Helper()
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_Start{Start: &statev1.StartJobAttempt{JobId: job, NodeId: "n1", Attempt: attempt, ContainerId: container}}})
}

func (x *svcFixture) report(container string, st *ccv1.ContainerStatus) {
	x.t.Helper()
	// The node uploaded what it names (AgentService.UploadBlob records it).
	if jr := st.GetJobResult(); jr.GetCollected() {
		x.uploaded(container, "output", jr.GetOutputDigest())
		x.uploaded(container, "logs", jr.GetLogsDigest())
	}
	x.reportAs(container, st)
}

// reportAs reports a status of the container without recording uploads.
func (x *svcFixture) reportAs(container string, st *ccv1.ContainerStatus) {
	x.t.Helper()
	gen := uint64(1)
	if rec, err := x.f.Container(container); err == nil {
		gen = rec.Container.Generation
	}
	x.must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n1", Statuses: []*ccv1.TaskStatus{{
		ContainerId: container, Generation: gen, Status: st}}})
}

// uploaded records that node n1 uploaded the blob digest (if not "") for
// the attempt container.
func (x *svcFixture) uploaded(container, kind, digest string) {
	x.t.Helper()
	if digest != "" {
		x.must(statev1.CommandType_COMMAND_TYPE_RECORD_ATTEMPT_UPLOAD, &statev1.RecordAttemptUpload{ContainerId: container, NodeId: "n1", Kind: kind, Digest: digest})
	}
}

func (x *svcFixture) job(id string) *ccv1.Job {
	x.t.Helper()
	rec, err := x.f.Job(id)
	if err != nil {
		x.t.Fatalf("job %s: %v", id, err)
	}
	return rec.Job
}

func running() *ccv1.ContainerStatus {
	return &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(t0)}
}

func exited(code int32, jr *ccv1.JobResult) *ccv1.ContainerStatus {
	return &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: code, StartedAt: timestamppb.New(t0), FinishedAt: timestamppb.New(t0.Add(time.Second)), JobResult: jr}
}

func collected(out string) *ccv1.JobResult {
	return &ccv1.JobResult{Collected: true, OutputDigest: out, OutputSize: 10, OutputFiles: 1, LogsDigest: "sha256:logs"}
}

func TestJobLifecycle(t *testing.T) {
	x := newSvcFixture(t)
	x.submit("j1", &ccv1.JobSpec{Image: "img", WebhookUrl: "http://127.0.0.1:1/hook"})
	j := x.job("j1")
	if j.State != ccv1.JobState_JOB_STATE_QUEUED || j.Seq == 0 || j.Spec.Queue != jobspec.DefaultQueue {
		t.Fatalf("submitted: %v", j)
	}
	x.start("j1", "c1", 1)
	j = x.job("j1")
	if j.State != ccv1.JobState_JOB_STATE_ASSIGNED || len(j.Attempts) != 1 || j.Attempts[0].NodeId != "n1" {
		t.Fatalf("after start: %v", j)
	}
	c, err := x.f.Container("c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.JobId != "j1" || c.Container.Spec.GetSandbox().GetJobId() != "j1" || !c.Container.Spec.ReadOnly ||
		c.Container.Spec.Network != ccv1.NetworkMode_NETWORK_MODE_NONE || c.Container.Spec.Restart != ccv1.RestartPolicy_RESTART_POLICY_NO {
		t.Fatalf("attempt container: %v", c.Container)
	}
	// Starting the same attempt again is a no-op.
	x.start("j1", "c1b", 1)
	if _, err := x.f.Container("c1b"); err == nil {
		t.Fatal("a second start of attempt 1 made a container")
	}

	x.report("c1", running())
	if j = x.job("j1"); j.State != ccv1.JobState_JOB_STATE_RUNNING || j.StartedAt == nil {
		t.Fatalf("after running: %v", j)
	}
	x.report("c1", exited(0, nil))
	if j = x.job("j1"); j.State != ccv1.JobState_JOB_STATE_RUNNING || j.Message != "collecting output" {
		t.Fatalf("exited, not collected: %v", j)
	}
	x.report("c1", exited(0, collected("sha256:out")))
	j = x.job("j1")
	if j.State != ccv1.JobState_JOB_STATE_SUCCEEDED || j.OutputDigest != "sha256:out" || j.LogsDigest != "sha256:logs" || j.ExpiresAt == nil || j.WebhookState != fsm.WebhookPending {
		t.Fatalf("succeeded: %v", j)
	}
	if _, err := x.f.Container("c1"); err == nil {
		t.Fatal("the finished attempt's container record is still there")
	}
	hooks, _ := x.f.PendingWebhooks()
	if len(hooks) != 1 {
		t.Fatalf("pending webhooks: %d", len(hooks))
	}
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_Webhook{Webhook: &statev1.WebhookResult{JobId: "j1", State: fsm.WebhookDelivered}}})
	if hooks, _ = x.f.PendingWebhooks(); len(hooks) != 0 || x.job("j1").WebhookState != fsm.WebhookDelivered {
		t.Fatalf("webhook not recorded: %d", len(hooks))
	}
	used, _ := x.f.BlobsInUse()
	if !used["sha256:out"] || !used["sha256:logs"] {
		t.Fatalf("blobs in use: %v", used)
	}

	// Expiry deletes the job and its indexes.
	ids, _ := x.f.ExpiredJobs(t0.Add(jobspec.DefaultOutputTTL+time.Hour), 10)
	if len(ids) != 1 || ids[0] != "j1" {
		t.Fatalf("expired: %v", ids)
	}
	x.idx++
	mustApply(t, x.f, x.idx, encode(t, statev1.CommandType_COMMAND_TYPE_JOB_OPS, &statev1.JobOps{Ops: []*statev1.JobOp{{Op: &statev1.JobOp_Expire{Expire: "j1"}}}}, t0.Add(jobspec.DefaultOutputTTL+time.Hour)))
	if _, err := x.f.Job("j1"); err == nil {
		t.Fatal("expired job still there")
	}
	if jobs, _, _ := x.f.ListJobs(fsm.JobFilter{}, 10, 0); len(jobs) != 0 {
		t.Fatalf("listed after expiry: %d", len(jobs))
	}
}

func TestJobOutcomes(t *testing.T) {
	cases := []struct {
		name  string
		spec  *ccv1.JobSpec
		st    *ccv1.ContainerStatus
		want  ccv1.JobState
		inMsg string
	}{
		{"non-zero exit", &ccv1.JobSpec{Image: "img"}, exited(3, collected("sha256:o")), ccv1.JobState_JOB_STATE_FAILED, "exited with code 3"},
		{"non-zero exit retried", &ccv1.JobSpec{Image: "img", MaxAttempts: 2, RetryOnFailure: true}, exited(3, collected("")), ccv1.JobState_JOB_STATE_QUEUED, "queued again"},
		{"timed out", &ccv1.JobSpec{Image: "img", Timeout: durationpb.New(2 * time.Second)}, exited(137, &ccv1.JobResult{Collected: true, TimedOut: true}), ccv1.JobState_JOB_STATE_TIMED_OUT, "timeout of 2s"},
		{"output over its limit", &ccv1.JobSpec{Image: "img", MaxAttempts: 3}, exited(0, &ccv1.JobResult{Collected: true, Error: "output is larger than its limit of 10 bytes"}), ccv1.JobState_JOB_STATE_FAILED, "larger than its limit"},
		{"could not start, retried", &ccv1.JobSpec{Image: "img", MaxAttempts: 2}, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: "no such image"}, ccv1.JobState_JOB_STATE_QUEUED, "no such image"},
		{"could not start", &ccv1.JobSpec{Image: "img"}, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: "no such image"}, ccv1.JobState_JOB_STATE_FAILED, "could not start: no such image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := newSvcFixture(t)
			x.submit("j", tc.spec)
			x.start("j", "c", 1)
			x.report("c", running())
			x.report("c", tc.st)
			j := x.job("j")
			if j.State != tc.want || !strings.Contains(j.Message, tc.inMsg) {
				t.Fatalf("state %v message %q, want %v with %q", j.State, j.Message, tc.want, tc.inMsg)
			}
		})
	}
}

func TestJobFailoverIgnoresSupersededAttempt(t *testing.T) {
	x := newSvcFixture(t)
	x.submit("j", &ccv1.JobSpec{Image: "img", MaxAttempts: 2})
	x.start("j", "a1", 1)
	x.report("a1", running())
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{JobId: "j", ContainerId: "a1", Error: "its node n1 is down"}}})
	j := x.job("j")
	if j.State != ccv1.JobState_JOB_STATE_QUEUED || j.Attempts[0].State != ccv1.ContainerState_CONTAINER_STATE_FAILED {
		t.Fatalf("after failover: %v", j)
	}
	x.start("j", "a2", 2)
	x.report("a2", running())
	// The old attempt reports late: ignored (its record is gone).
	x.report("a1", exited(0, collected("sha256:old")))
	if j = x.job("j"); j.State != ccv1.JobState_JOB_STATE_RUNNING || j.OutputDigest != "" {
		t.Fatalf("superseded report changed the job: %v", j)
	}
	// A fail op for the old attempt is ignored too.
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{JobId: "j", ContainerId: "a1", Error: "late"}}})
	if j = x.job("j"); j.State != ccv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("late fail op changed the job: %v", j)
	}
	// A timed-out fail op ends the job as timed out, attempts or not.
	x.submit("t", &ccv1.JobSpec{Image: "img", MaxAttempts: 3})
	x.start("t", "t1", 1)
	x.report("t1", running())
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{JobId: "t", ContainerId: "t1", Error: "its node did not stop it", TimedOut: true}}})
	if tj := x.job("t"); tj.State != ccv1.JobState_JOB_STATE_TIMED_OUT || !tj.Attempts[0].TimedOut {
		t.Fatalf("timed-out fail op: %v", tj)
	}
	// The second and last attempt's node is lost too: failed.
	x.jobOps(&statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{JobId: "j", ContainerId: "a2", Error: "its node n1 is down"}}})
	if j = x.job("j"); j.State != ccv1.JobState_JOB_STATE_FAILED || !strings.Contains(j.Message, "after 2 attempts") {
		t.Fatalf("after last failover: %v", j)
	}
}

func TestJobCancel(t *testing.T) {
	x := newSvcFixture(t)
	x.submit("q", &ccv1.JobSpec{Image: "img"})
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "q"})
	if j := x.job("q"); j.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("queued cancel: %v", j)
	}

	x.submit("r", &ccv1.JobSpec{Image: "img", KillGrace: durationpb.New(3 * time.Second)})
	x.start("r", "rc", 1)
	x.report("rc", running())
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "r"})
	c, err := x.f.Container("rc")
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED || c.StopTimeoutMs != 3000 {
		t.Fatalf("attempt not stopped: desired %v timeout %d", c.Container.Desired, c.StopTimeoutMs)
	}
	if j := x.job("r"); j.State != ccv1.JobState_JOB_STATE_RUNNING || !j.CancelRequested {
		t.Fatalf("running cancel: %v", j)
	}
	x.report("rc", exited(143, collected("")))
	if j := x.job("r"); j.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("after stop: %v", j)
	}

	// Cancelling an attempt that did not start ends the job at once.
	x.submit("a", &ccv1.JobSpec{Image: "img"})
	x.start("a", "ac", 1)
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "a"})
	if j := x.job("a"); j.State != ccv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("assigned cancel: %v", j)
	}
	if _, err := x.f.Container("ac"); err == nil {
		t.Fatal("container of the cancelled attempt is still there")
	}
}

func TestJobQueueOrderAndIdempotency(t *testing.T) {
	x := newSvcFixture(t)
	x.submit("low1", &ccv1.JobSpec{Image: "img", Queue: "q"})
	x.submit("high", &ccv1.JobSpec{Image: "img", Queue: "q", Priority: 5})
	x.submit("low2", &ccv1.JobSpec{Image: "img", Queue: "q"})
	x.submit("neg", &ccv1.JobSpec{Image: "img", Queue: "q", Priority: -1})
	x.submit("other", &ccv1.JobSpec{Image: "img", Queue: "r"})
	x.submit("k1", &ccv1.JobSpec{Image: "img", IdempotencyKey: "key"})
	x.submit("k2", &ccv1.JobSpec{Image: "img", IdempotencyKey: "key"})
	if _, err := x.f.Job("k2"); err == nil {
		t.Fatal("a second job with the same idempotency key was recorded")
	}
	if id, err := x.f.JobIDByKey("tok", "key"); err != nil || id != "k1" {
		t.Fatalf("by key: %q %v", id, err)
	}
	x.must(statev1.CommandType_COMMAND_TYPE_SET_QUEUE, &statev1.SetQueue{Queue: &statev1.QueueRecord{Name: "q", MaxRunning: 2}})
	if err := x.apply(statev1.CommandType_COMMAND_TYPE_SET_QUEUE, &statev1.SetQueue{Queue: &statev1.QueueRecord{Name: "Bad Name"}}); err == nil {
		t.Fatal("bad queue name accepted")
	}
	st, err := x.f.ReadDispatch(3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range st.Heads["q"] {
		got = append(got, r.Job.Id)
	}
	if fmt.Sprint(got) != "[high low1 low2]" {
		t.Fatalf("head of q: %v", got)
	}
	if len(st.Heads["r"]) != 1 || len(st.Heads[jobspec.DefaultQueue]) != 1 || st.Queues["q"].MaxRunning != 2 {
		t.Fatalf("dispatch state: %+v", st.Queues)
	}
	x.start("high", "hc", 1)
	st, _ = x.f.ReadDispatch(-1)
	if st.Queues["q"].Queued != 3 || st.Queues["q"].Running != 1 || len(st.Active) != 1 {
		t.Fatalf("counts: %+v active %d", st.Queues["q"], len(st.Active))
	}
}

func TestListJobsPaged(t *testing.T) {
	x := newSvcFixture(t)
	for i := 0; i < 25; i++ {
		x.submit(fmt.Sprintf("j%02d", i), &ccv1.JobSpec{Image: "img", Labels: map[string]string{"odd": fmt.Sprint(i%2 == 1)}})
	}
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "j03"})
	var all []string
	var before uint64
	for page := 0; ; page++ {
		jobs, next, err := x.f.ListJobs(fsm.JobFilter{State: ccv1.JobState_JOB_STATE_QUEUED}, 10, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			all = append(all, j.Id)
		}
		if next == 0 {
			break
		}
		before = next
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 24 || all[0] != "j24" || all[23] != "j00" {
		t.Fatalf("queued pages: %d %v", len(all), all)
	}
	odd, _, _ := x.f.ListJobs(fsm.JobFilter{Labels: map[string]string{"odd": "true"}}, 100, 0)
	if len(odd) != 12 {
		t.Fatalf("label filter: %d", len(odd))
	}
	canc, _, _ := x.f.ListJobs(fsm.JobFilter{State: ccv1.JobState_JOB_STATE_CANCELLED}, 100, 0)
	if len(canc) != 1 || canc[0].Id != "j03" {
		t.Fatalf("cancelled: %v", canc)
	}
	changed, idx, _ := x.f.JobChanges(x.idx - 1)
	if len(changed) != 1 || changed[0].Id != "j03" || idx != x.idx {
		t.Fatalf("changes: %d at %d", len(changed), idx)
	}
	ids, _ := x.f.JobIDsWithPrefix("j1", 100)
	if len(ids) != 10 {
		t.Fatalf("prefix: %v", ids)
	}
}

func TestListJobsByQueue(t *testing.T) {
	x := newSvcFixture(t)
	for i := 0; i < 30; i++ {
		q := "a"
		if i%3 == 0 {
			q = "b"
		}
		x.submit(fmt.Sprintf("j%02d", i), &ccv1.JobSpec{Image: "img", Queue: q})
	}
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "j03"})
	var got []string
	var before uint64
	for {
		jobs, next, err := x.f.ListJobs(fsm.JobFilter{Queue: "b", State: ccv1.JobState_JOB_STATE_QUEUED}, 4, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			got = append(got, j.Id)
		}
		if next == 0 {
			break
		}
		before = next
	}
	if fmt.Sprint(got) != "[j27 j24 j21 j18 j15 j12 j09 j06 j00]" {
		t.Fatalf("queue b, queued: %v", got)
	}
}

func TestJobInputOwners(t *testing.T) {
	x := newSvcFixture(t)
	put := func(owner string) {
		x.must(statev1.CommandType_COMMAND_TYPE_PUT_INPUT, &statev1.PutInput{Input: &statev1.InputRecord{Digest: "sha256:in", Size: 3, Owners: []string{owner}}})
	}
	put("a")
	put("b")
	put("a")
	in, err := x.f.Input("sha256:in")
	if err != nil || fmt.Sprint(in.Owners) != "[b a]" {
		t.Fatalf("owners: %v %v", in, err)
	}
	if used, _ := x.f.BlobsInUse(); !used["sha256:in"] {
		t.Fatal("a recorded input is not in use")
	}
	if ids, _ := x.f.ExpiredInputs(t0.Add(fsm.InputTTL - time.Hour)); len(ids) != 0 {
		t.Fatalf("expired too early: %v", ids)
	}
	later := t0.Add(fsm.InputTTL + time.Hour)
	ids, _ := x.f.ExpiredInputs(later)
	if len(ids) != 1 {
		t.Fatalf("expired: %v", ids)
	}
	x.idx++
	mustApply(t, x.f, x.idx, encode(t, statev1.CommandType_COMMAND_TYPE_JOB_OPS, &statev1.JobOps{Ops: []*statev1.JobOp{{Op: &statev1.JobOp_ExpireInput{ExpireInput: "sha256:in"}}}}, later))
	if _, err := x.f.Input("sha256:in"); err == nil {
		t.Fatal("expired input record still there")
	}
	if err := x.apply(statev1.CommandType_COMMAND_TYPE_PUT_INPUT, &statev1.PutInput{Input: &statev1.InputRecord{Digest: "sha256:x"}}); err == nil {
		t.Fatal("an input without an owner was recorded")
	}
}

// TestAttemptReportUnuploaded: a collected report naming an output or logs
// the node did not record uploading for this attempt fails the attempt
// (retried when attempts are left) and does not become the job's output;
// uploads from another node or for another attempt do not count.
func TestAttemptReportUnuploaded(t *testing.T) {
	x := newSvcFixture(t)
	x.submit("j1", &ccv1.JobSpec{Image: "img", MaxAttempts: 2})
	x.start("j1", "c1", 1)
	x.uploaded("c1", "output", "sha256:mine")
	x.must(statev1.CommandType_COMMAND_TYPE_RECORD_ATTEMPT_UPLOAD, &statev1.RecordAttemptUpload{ContainerId: "c1", NodeId: "n2", Kind: "output", Digest: "sha256:other"})
	x.reportAs("c1", exited(0, &ccv1.JobResult{Collected: true, OutputDigest: "sha256:other"}))
	j := x.job("j1")
	if j.State != ccv1.JobState_JOB_STATE_QUEUED || j.OutputDigest != "" || !strings.Contains(j.Message, "did not upload") {
		t.Fatalf("after a forged report: %s %q %q", j.State, j.Message, j.OutputDigest)
	}
	x.start("j1", "c2", 2)
	x.reportAs("c2", exited(0, &ccv1.JobResult{Collected: true, OutputDigest: "sha256:mine"}))
	if j = x.job("j1"); j.State != ccv1.JobState_JOB_STATE_FAILED || j.OutputDigest != "" || !strings.Contains(j.Message, "sha256:mine") {
		t.Fatalf("after a report naming attempt 1's upload: %s %q", j.State, j.Message)
	}
	x.submit("j2", &ccv1.JobSpec{Image: "img"})
	x.start("j2", "c3", 1)
	x.uploaded("c3", "output", "sha256:three")
	x.uploaded("c3", "logs", "sha256:threelogs")
	x.reportAs("c3", exited(0, &ccv1.JobResult{Collected: true, OutputDigest: "sha256:three", LogsDigest: "sha256:threelogs"}))
	if j = x.job("j2"); j.State != ccv1.JobState_JOB_STATE_SUCCEEDED || j.OutputDigest != "sha256:three" || j.LogsDigest != "sha256:threelogs" {
		t.Fatalf("own uploads: %s %q", j.State, j.Message)
	}
}
