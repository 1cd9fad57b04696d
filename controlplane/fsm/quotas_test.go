package fsm_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func (x *svcFixture) setQuotas(q *ccv1.QuotaSettings) error {
	x.t.Helper()
	return x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{Quotas: q}})
}

func (x *svcFixture) submitAs(owner, id string) error {
	x.t.Helper()
	return x.apply(statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB, &statev1.SubmitJob{Job: &statev1.JobRecord{
		Job: &ccv1.Job{Id: id, Spec: &ccv1.JobSpec{Image: "img"}, OwnerTokenId: owner}}})
}

func TestQuotaSettingsMerge(t *testing.T) {
	x := newSvcFixture(t)
	quotas := func() *ccv1.QuotaSettings {
		st, err := x.f.Settings()
		if err != nil {
			t.Fatal(err)
		}
		return st.GetQuotas()
	}
	if err := x.setQuotas(&ccv1.QuotaSettings{JobsPerToken: proto.Int64(5)}); err != nil {
		t.Fatal(err)
	}
	if err := x.setQuotas(&ccv1.QuotaSettings{OutputBytesPerToken: proto.Int64(1 << 30)}); err != nil {
		t.Fatal(err)
	}
	if err := x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxPids: proto.Int64(100)}}}); err != nil {
		t.Fatal(err)
	}
	if q := quotas(); q.GetJobsPerToken() != 5 || q.GetOutputBytesPerToken() != 1<<30 {
		t.Fatalf("merged: %v", q)
	}
	if err := x.setQuotas(&ccv1.QuotaSettings{JobsPerToken: proto.Int64(0)}); err != nil {
		t.Fatal(err)
	}
	if q := quotas(); q.JobsPerToken != nil || q.GetOutputBytesPerToken() != 1<<30 {
		t.Fatalf("after removing the jobs quota: %v", q)
	}
	if err := x.setQuotas(&ccv1.QuotaSettings{JobsPerToken: proto.Int64(-1)}); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("negative quota: %v", err)
	}
}

// The state machine refuses the job over the quota, whoever proposed it,
// so that two servers taking jobs at once cannot both go over.
func TestJobsQuotaInApply(t *testing.T) {
	x := newSvcFixture(t)
	if err := x.setQuotas(&ccv1.QuotaSettings{JobsPerToken: proto.Int64(2)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "a2"} {
		if err := x.submitAs("a", id); err != nil {
			t.Fatal(err)
		}
	}
	err := x.submitAs("a", "a3")
	if !errors.Is(err, fsm.ErrQuotaExceeded) || !strings.Contains(err.Error(), "jobs_per_token") || !strings.Contains(err.Error(), "has 2 jobs") {
		t.Fatalf("third job: %v", err)
	}
	if _, err := x.f.Job("a3"); err == nil {
		t.Fatal("the refused job was stored")
	}
	if err := x.submitAs("b", "b1"); err != nil {
		t.Fatalf("another token: %v", err)
	}
	// A running job still counts; a finished one does not.
	x.start("a1", "c1", 1)
	x.report("c1", running())
	if err := x.submitAs("a", "a3"); !errors.Is(err, fsm.ErrQuotaExceeded) {
		t.Fatalf("with one running: %v", err)
	}
	x.report("c1", exited(0, collected("sha256:out")))
	if err := x.submitAs("a", "a3"); err != nil {
		t.Fatalf("after one finished: %v", err)
	}
	if use, _ := x.f.QuotaUse("a"); use.ActiveJobs != 2 {
		t.Fatalf("use: %+v", use)
	}
}

func TestOutputQuotaInApply(t *testing.T) {
	x := newSvcFixture(t)
	if err := x.setQuotas(&ccv1.QuotaSettings{OutputBytesPerToken: proto.Int64(15)}); err != nil {
		t.Fatal(err)
	}
	run := func(id, container string) {
		t.Helper()
		if err := x.submitAs("a", id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		x.start(id, container, 1)
		x.report(container, exited(0, collected("sha256:"+id))) // 10 bytes of output
	}
	run("j1", "c1")
	if use, _ := x.f.QuotaUse("a"); use.OutputBytes != 10 {
		t.Fatalf("use: %+v", use)
	}
	run("j2", "c2")
	err := x.submitAs("a", "j3")
	if !errors.Is(err, fsm.ErrQuotaExceeded) || !strings.Contains(err.Error(), "output_bytes_per_token") || !strings.Contains(err.Error(), "keeps 20 bytes") {
		t.Fatalf("over the output quota: %v", err)
	}
	if err := x.submitAs("b", "b1"); err != nil {
		t.Fatalf("another token: %v", err)
	}
}
