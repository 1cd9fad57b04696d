package fsm_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/containercodes/cc/controlplane/metrics"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// sample is the value of a series of reg (a histogram's count and sum),
// found by name and labels; ok is false when there is none.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (value, sum float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), 0, true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), 0, true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum(), true
			}
		}
	}
	return 0, 0, false
}

// TestJobMetrics: the state machine reports what its log says of jobs
// (queue waits, outcomes, run times from the attempts' own times, output
// sizes) and times each command by type; a job that is retried counts
// once, when it ends.
func TestJobMetrics(t *testing.T) {
	x := newSvcFixture(t)
	reg := prometheus.NewRegistry()
	x.f.SetMetrics(metrics.New(reg))

	x.submit("ok", &ccv1.JobSpec{Image: "img"})
	x.start("ok", "c1", 1)
	x.report("c1", running())
	x.report("c1", exited(0, collected("sha256:out"))) // ran 1s, 10 bytes of output

	x.submit("retried", &ccv1.JobSpec{Image: "img", MaxAttempts: 2, RetryOnFailure: true})
	x.start("retried", "c2", 1)
	x.report("c2", running())
	x.report("c2", exited(3, collected(""))) // queued again: not finished
	if v, _, _ := sample(t, reg, "cc_jobs_finished_total", map[string]string{"outcome": "failed"}); v != 0 {
		t.Fatalf("a job queued again counted as failed: %v", v)
	}
	x.start("retried", "c3", 2)
	x.report("c3", running())
	x.report("c3", exited(3, collected("")))

	x.submit("cancelled", &ccv1.JobSpec{Image: "img"})
	x.must(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: "cancelled"})

	for _, c := range []struct {
		name       string
		labels     map[string]string
		value, sum float64
	}{
		{"cc_jobs_finished_total", map[string]string{"queue": "default", "outcome": "succeeded"}, 1, 0},
		{"cc_jobs_finished_total", map[string]string{"queue": "default", "outcome": "failed"}, 1, 0},
		{"cc_jobs_finished_total", map[string]string{"queue": "default", "outcome": "cancelled"}, 1, 0},
		{"cc_jobs_run_duration_seconds", map[string]string{"queue": "default"}, 2, 2}, // ok and retried's last attempt, 1s each
		{"cc_jobs_queue_wait_seconds", map[string]string{"queue": "default"}, 3, 0},   // three attempts placed
		{"cc_jobs_output_bytes", nil, 1, 10},
		{"cc_fsm_apply_duration_seconds", map[string]string{"command": "submit_job"}, 3, -1},
		{"cc_fsm_apply_duration_seconds", map[string]string{"command": "cancel_job"}, 1, -1},
	} {
		v, sum, ok := sample(t, reg, c.name, c.labels)
		if !ok || v != c.value || (c.sum >= 0 && sum != c.sum) {
			t.Errorf("%s%v = %v (sum %v, found %v), want %v (sum %v)", c.name, c.labels, v, sum, ok, c.value, c.sum)
		}
	}

	counts, err := x.f.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts.Jobs[ccv1.JobState_JOB_STATE_SUCCEEDED] != 1 || counts.Jobs[ccv1.JobState_JOB_STATE_FAILED] != 1 || counts.Jobs[ccv1.JobState_JOB_STATE_CANCELLED] != 1 {
		t.Errorf("jobs by state: %v", counts.Jobs)
	}
	nodes := 0
	for _, n := range counts.Nodes {
		nodes += n
	}
	if nodes != 1 || len(counts.Containers) != 0 {
		t.Errorf("nodes %v, containers %v: want 1 node and no container (the attempts' records are gone)", counts.Nodes, counts.Containers)
	}
}

// TestMetricsToken: a token of role metrics is a token the state accepts.
func TestMetricsToken(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, initCmd(t, "c"))
	mustApply(t, f, 2, createCmdAt(t, tokenRec("m", ccv1.Role_ROLE_METRICS), t0))
	if rec, err := f.Token("m"); err != nil || ccv1.Role(rec.Role) != ccv1.Role_ROLE_METRICS {
		t.Fatalf("metrics token: %v %v", rec, err)
	}
}
