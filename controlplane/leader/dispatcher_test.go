package leader

import (
	"testing"

	"github.com/containercodes/cc/controlplane/dispatch"
	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The state machine's read reaches the decision whole.
func TestDispatchJobsConverts(t *testing.T) {
	head := &statev1.JobRecord{Job: &ccv1.Job{Id: "q1"}}
	active := &statev1.JobRecord{Job: &ccv1.Job{Id: "r1"}}
	st := &fsm.DispatchState{
		Queues: map[string]*fsm.QueueInfo{
			"a": {Name: "a", MaxRunning: 2, Queued: 5, Running: 1},
			"b": {Name: "b", Queued: 1},
		},
		Heads:  map[string][]*statev1.JobRecord{"b": {head}},
		Active: []*statev1.JobRecord{active},
		Index:  42,
	}
	got := dispatchJobs(st)
	want := map[string]dispatch.Queue{"a": {MaxRunning: 2, Running: 1}, "b": {}}
	if len(got.Queues) != len(want) {
		t.Fatalf("queues %v, want %v", got.Queues, want)
	}
	for name, q := range want {
		if got.Queues[name] != q {
			t.Errorf("queue %s: %+v, want %+v", name, got.Queues[name], q)
		}
	}
	if len(got.Heads["b"]) != 1 || got.Heads["b"][0] != head || len(got.Active) != 1 || got.Active[0] != active {
		t.Errorf("heads %v active %v", got.Heads, got.Active)
	}
}
