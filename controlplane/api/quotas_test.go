package api_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func setQuotas(t *testing.T, h *jobHarness, q *ccv1.QuotaSettings) {
	t.Helper()
	resp, err := h.srv.Client().Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Quotas: q}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSettings().GetQuotas() == nil && (q.GetJobsPerToken() > 0 || q.GetOutputBytesPerToken() > 0) {
		t.Fatalf("settings: %v", resp.GetSettings())
	}
}

// The (N+1)th active job of a token is refused with the quota, the use
// and how to raise it in the message; another token is not affected; an
// idempotent resubmission is not a new job; a finished job frees a place.
func TestJobsQuota(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_JOBS)
	_, b := h.token(ccv1.Role_ROLE_JOBS)
	ja, jb := h.jobsAs(a), h.jobsAs(b)
	setQuotas(t, h, &ccv1.QuotaSettings{JobsPerToken: proto.Int64(3)})

	var first *ccv1.Job
	for i := 0; i < 3; i++ {
		j := submit(t, ja, &ccv1.JobSpec{Image: "busybox", IdempotencyKey: fmt.Sprint("k", i)}).Job
		if first == nil {
			first = j
		}
	}
	_, err := ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	wantCode(t, err, codes.ResourceExhausted, "has 3 jobs queued or running, its quota (jobs_per_token) is 3")
	wantCode(t, err, codes.ResourceExhausted, "ccctl cluster settings --quota-jobs")
	// A resubmission with a key it used is the same job, not a new one.
	if resp, err := ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", IdempotencyKey: "k0"}}); err != nil || !resp.Existing {
		t.Fatalf("idempotent resubmission: %v, %v", resp, err)
	}
	submit(t, jb, &ccv1.JobSpec{Image: "busybox"})

	nodeID, _, _ := h.node("n1")
	h.finish(first.Id, nodeID, h.pushBlob([]byte("out")), h.pushBlob([]byte("logs")))
	submit(t, ja, &ccv1.JobSpec{Image: "busybox"})

	// 0 removes the quota.
	setQuotas(t, h, &ccv1.QuotaSettings{JobsPerToken: proto.Int64(0)})
	submit(t, ja, &ccv1.JobSpec{Image: "busybox"})
}

// A token keeping as much job output as its quota may submit no more
// jobs until some expires; another token may.
func TestOutputBytesQuota(t *testing.T) {
	h := newJobHarness(t)
	_, a := h.token(ccv1.Role_ROLE_JOBS)
	_, b := h.token(ccv1.Role_ROLE_JOBS)
	ja, jb := h.jobsAs(a), h.jobsAs(b)
	// The harness's node reports an output of 1 byte per job.
	out := []byte("output")
	setQuotas(t, h, &ccv1.QuotaSettings{OutputBytesPerToken: proto.Int64(2)})
	nodeID, _, _ := h.node("n1")
	outDigest, logs := h.pushBlob(out), h.pushBlob([]byte("logs"))
	for i := 0; i < 2; i++ {
		j := submit(t, ja, &ccv1.JobSpec{Image: "busybox"}).Job
		h.finish(j.Id, nodeID, outDigest, logs)
		if got := h.get(j.Id); got.OutputDigest != outDigest {
			t.Fatalf("driven job: %v", got)
		}
	}
	_, err := ja.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	wantCode(t, err, codes.ResourceExhausted, "keeps 2 bytes of job output, its quota (output_bytes_per_token) is 2 bytes")
	wantCode(t, err, codes.ResourceExhausted, "--quota-output-bytes")
	submit(t, jb, &ccv1.JobSpec{Image: "busybox"})
}
