package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const gib = 1 << 30

func node(id string, memGiB int64) *ccv1.Node {
	return &ccv1.Node{Id: id, Name: id, State: ccv1.NodeState_NODE_STATE_READY, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Resources: &ccv1.Resources{CpuMillis: 64000, MemoryBytes: memGiB * gib}}
}

var seq uint64

func job(id, queue string, prio int32, memGiB int64) *statev1.JobRecord {
	seq++
	return &statev1.JobRecord{Job: &ccv1.Job{Id: id, Seq: seq, State: ccv1.JobState_JOB_STATE_QUEUED, Spec: &ccv1.JobSpec{
		Image: "img", Queue: queue, Priority: prio, Resources: &ccv1.ContainerResources{MemoryBytes: memGiB * gib, CpuMillis: 100}}}}
}

func newIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("c%d", n) }
}

// starts returns "job@node" for each start op, in order.
func starts(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		if s := op.GetStart(); s != nil {
			out = append(out, s.JobId+"@"+s.NodeId)
		}
	}
	return out
}

func pendings(p Plan) map[string]string {
	out := map[string]string{}
	for _, op := range p.Ops {
		if s := op.GetPending(); s != nil {
			out[s.JobId] = s.Reason
		}
	}
	return out
}

func TestDispatchOrderAndCapacity(t *testing.T) {
	st := &Jobs{Queues: map[string]Queue{}, Heads: map[string][]*statev1.JobRecord{
		"default": {job("hi", "default", 10, 1), job("a", "default", 0, 1), job("b", "default", 0, 1), job("c", "default", 0, 1)},
	}}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 2)}, NewID: newIDs(), Now: time.Now()})
	got := starts(p)
	if fmt.Sprint(got) != "[hi@n1 a@n1]" {
		t.Fatalf("starts: %v", got)
	}
	pend := pendings(p)
	if !strings.Contains(pend["b"], "memory") || !strings.Contains(pend["c"], "memory") {
		t.Fatalf("pending reasons: %v", pend)
	}
	for _, op := range p.Ops {
		if s := op.GetStart(); s != nil && (s.Attempt != 1 || s.ContainerId == "") {
			t.Fatalf("start op: %v", s)
		}
	}
}

func TestDispatchQueueLimitAndFairness(t *testing.T) {
	st := &Jobs{
		Queues: map[string]Queue{"a": {MaxRunning: 2, Running: 1}},
		Heads: map[string][]*statev1.JobRecord{
			"a": {job("a1", "a", 0, 1), job("a2", "a", 0, 1), job("a3", "a", 0, 1)},
			"b": {job("b1", "b", 0, 1), job("b2", "b", 0, 1), job("b3", "b", 0, 1)},
		},
	}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 100)}, NewID: newIDs()})
	got := starts(p)
	// b has fewer running, so it goes first; a may start one more.
	if fmt.Sprint(got) != "[b1@n1 a1@n1 b2@n1 b3@n1]" {
		t.Fatalf("starts: %v", got)
	}
	if why := pendings(p)["a2"]; !strings.Contains(why, "queue a is at its limit of 2") {
		t.Fatalf("a2 pending: %q", why)
	}
}

func TestDispatchFailsAttemptsOfLostNodes(t *testing.T) {
	down := node("n2", 4)
	down.State = ccv1.NodeState_NODE_STATE_DOWN
	active := func(id, nodeID, cid string) *statev1.JobRecord {
		r := job(id, "default", 0, 1)
		r.Job.State = ccv1.JobState_JOB_STATE_RUNNING
		r.Job.Attempts = []*ccv1.JobAttempt{{Id: cid, Number: 1, NodeId: nodeID}}
		return r
	}
	now := time.Now()
	st := &Jobs{Queues: map[string]Queue{}, Heads: map[string][]*statev1.JobRecord{},
		Active: []*statev1.JobRecord{active("ok", "n1", "c1"), active("onDown", "n2", "c2"), active("onGone", "n3", "c3"), active("stuck", "n1", "c4")}}
	runningSince := func(d time.Duration) *ccv1.ContainerStatus {
		return &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(now.Add(-d))}
	}
	containers := []*statev1.ContainerRecord{
		{Container: &ccv1.Container{Id: "c1", NodeId: "n1", JobId: "ok", Status: runningSince(time.Hour)}},
		{Container: &ccv1.Container{Id: "c2", NodeId: "n2", JobId: "onDown"}},
		// Past its default timeout of 1h, its 10s kill grace and the backstop.
		{Container: &ccv1.Container{Id: "c4", NodeId: "n1", JobId: "stuck", Status: runningSince(time.Hour + 2*time.Minute)}},
	}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 4), down}, Containers: containers, NewID: newIDs(), Expired: []string{"old"}, Now: now})
	fails := map[string]string{}
	expired := 0
	for _, op := range p.Ops {
		if f := op.GetFailAttempt(); f != nil {
			fails[f.JobId] = f.Error
			if f.TimedOut != (f.JobId == "stuck") {
				t.Errorf("fail op of %s: timed_out %v", f.JobId, f.TimedOut)
			}
		}
		if op.GetExpire() == "old" {
			expired++
		}
	}
	if len(fails) != 3 || !strings.Contains(fails["onDown"], "is down") || !strings.Contains(fails["onGone"], "was removed") ||
		!strings.Contains(fails["stuck"], "did not stop it") || expired != 1 {
		t.Fatalf("fails %v expired %d", fails, expired)
	}
}

// A job reserves its memory limit, not the reservation it asks for: a job
// that may use 3 GiB does not start on a 2 GiB node however little it
// reserves, and two 1 GiB jobs with tiny reservations fill a 2 GiB node.
func TestDispatchJobReservesItsLimit(t *testing.T) {
	big := job("big", "default", 0, 3)
	big.Job.Spec.Resources.MemoryReservationBytes = 1
	st := &Jobs{Queues: map[string]Queue{}, Heads: map[string][]*statev1.JobRecord{"default": {big}}}
	p := Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 2)}, NewID: newIDs(), Now: time.Now()})
	if got := starts(p); len(got) != 0 {
		t.Fatalf("a 3 GiB job started on a 2 GiB node: %v", got)
	}
	if why := pendings(p)["big"]; !strings.Contains(why, "memory") {
		t.Fatalf("pending reason %q", why)
	}

	var heads []*statev1.JobRecord
	for _, id := range []string{"a", "b", "c"} {
		j := job(id, "default", 0, 1)
		j.Job.Spec.Resources.MemoryReservationBytes = 1
		heads = append(heads, j)
	}
	st = &Jobs{Queues: map[string]Queue{}, Heads: map[string][]*statev1.JobRecord{"default": heads}}
	p = Decide(Input{Jobs: st, Nodes: []*ccv1.Node{node("n1", 2)}, NewID: newIDs(), Now: time.Now()})
	if got := fmt.Sprint(starts(p)); got != "[a@n1 b@n1]" {
		t.Fatalf("starts: %v (three 1 GiB jobs on a 2 GiB node?)", got)
	}
}
