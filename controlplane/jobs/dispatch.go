// Package jobs holds the control plane's job loops: the dispatcher's pure
// decision (which queued jobs start on which nodes, which attempts lost
// their node, which finished jobs expired) and the completion webhooks.
package jobs

import (
	"cmp"
	"fmt"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/orchestrator"
	"github.com/containercodes/cc/controlplane/scheduler"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// HeadsPerQueue is how many queued jobs of each queue one pass considers.
// A pass that starts them all is followed at once by another.
const HeadsPerQueue = 256

// TimeoutBackstop is how long past its timeout and kill grace an attempt
// may still run before the dispatcher ends it itself: its agent enforces the
// timeout, this covers an agent that heartbeats but no longer acts.
const TimeoutBackstop = time.Minute

// maxPendingNotes bounds the pending reasons one pass records per queue:
// the first jobs of a long queue say why they wait, the others wait behind
// them.
const maxPendingNotes = 16

// Input is what the dispatcher decides from.
type Input struct {
	Jobs       *fsm.DispatchState
	Nodes      []*ccv1.Node
	Containers []*statev1.ContainerRecord // every container, for resources
	Strategy   ccv1.SchedulingStrategy
	Now        time.Time
	// Expired are finished jobs whose output expired.
	Expired []string
	// ExpiredInputs are input records unused for fsm.InputTTL.
	ExpiredInputs []string
	NewID         func() string
}

// Plan is the dispatcher's decision.
type Plan struct {
	Ops []*statev1.JobOp
}

// Decide returns the ops of one dispatcher pass:
//   - fail the current attempt of an assigned or running job whose node is
//     down or gone (the job is queued again while attempts remain), and end
//     as timed out one that runs long past its timeout;
//   - start queued jobs on nodes with room: higher priority first, in
//     submit order within a priority, round robin between queues of equal
//     priority, never more running in a queue than its max_running;
//   - record why the first queued jobs wait;
//   - expire finished jobs whose output is past its TTL, and input records
//     unused for their TTL.
func Decide(in Input) Plan {
	var p Plan
	nodes := make(map[string]*ccv1.Node, len(in.Nodes))
	for _, n := range in.Nodes {
		nodes[n.Id] = n
	}
	containers := make(map[string]*ccv1.Container, len(in.Containers))
	for _, r := range in.Containers {
		containers[r.GetContainer().GetId()] = r.GetContainer()
	}

	// Attempts whose node is lost.
	for _, rec := range in.Jobs.Active {
		j := rec.Job
		if len(j.Attempts) == 0 {
			continue
		}
		a := j.Attempts[len(j.Attempts)-1]
		why := ""
		n := nodes[a.NodeId]
		switch {
		case n == nil:
			why = fmt.Sprintf("its node %s was removed", a.NodeId)
		case n.State == ccv1.NodeState_NODE_STATE_DOWN:
			why = fmt.Sprintf("its node %s is down", nodeName(n))
		case containers[a.Id] == nil:
			why = "its container record is gone"
		}
		if why != "" {
			p.Ops = append(p.Ops, &statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{
				JobId: j.Id, ContainerId: a.Id, Error: why}}})
			continue
		}
		// Still running long after its timeout: its node did not stop it.
		st := containers[a.Id].GetStatus()
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING && st.GetStartedAt() != nil {
			limit := fsm.JobTimeout(j.Spec) + fsm.KillGrace(j.Spec) + TimeoutBackstop
			if in.Now.Sub(st.GetStartedAt().AsTime()) > limit {
				p.Ops = append(p.Ops, &statev1.JobOp{Op: &statev1.JobOp_FailAttempt{FailAttempt: &statev1.FailJobAttempt{
					JobId: j.Id, ContainerId: a.Id, TimedOut: true,
					Error: fmt.Sprintf("still running %s after its timeout of %s: its node %s did not stop it, so the attempt was ended", in.Now.Sub(st.GetStartedAt().AsTime()).Round(time.Second), fsm.JobTimeout(j.Spec), nodeName(n))}}})
			}
		}
	}

	p.Ops = append(p.Ops, dispatch(in)...)

	for _, id := range in.Expired {
		p.Ops = append(p.Ops, &statev1.JobOp{Op: &statev1.JobOp_Expire{Expire: id}})
	}
	for _, d := range in.ExpiredInputs {
		p.Ops = append(p.Ops, &statev1.JobOp{Op: &statev1.JobOp_ExpireInput{ExpireInput: d}})
	}
	return p
}

func nodeName(n *ccv1.Node) string {
	if n.Name != "" {
		return n.Name
	}
	return n.Id
}

// queueCursor walks one queue's head during a pass.
type queueCursor struct {
	name    string
	heads   []*statev1.JobRecord
	next    int
	running uint64 // running plus started in this pass
	limit   uint32
}

func (q *queueCursor) head() *ccv1.Job {
	if q.next >= len(q.heads) {
		return nil
	}
	return q.heads[q.next].Job
}

// order returns the queued jobs to try this pass, in dispatch order, and
// the reasons of the jobs a queue limit holds back.
func order(st *fsm.DispatchState) (cands []*statev1.JobRecord, held map[string]string) {
	held = map[string]string{}
	var qs []*queueCursor
	for name, heads := range st.Heads {
		q := &queueCursor{name: name, heads: heads}
		if info := st.Queues[name]; info != nil {
			q.running, q.limit = info.Running, info.MaxRunning
		}
		qs = append(qs, q)
	}
	for {
		// The queue whose head has the highest priority; among equals the
		// one with the fewest running jobs, then by name.
		var best *queueCursor
		for _, q := range qs {
			h := q.head()
			if h == nil {
				continue
			}
			if q.limit > 0 && q.running >= uint64(q.limit) {
				held[h.Id] = limitReason(q)
				continue
			}
			if best == nil {
				best = q
				continue
			}
			bh := best.head()
			if c := cmp.Compare(h.GetSpec().GetPriority(), bh.GetSpec().GetPriority()); c > 0 ||
				c == 0 && (q.running < best.running || q.running == best.running && q.name < best.name) {
				best = q
			}
		}
		if best == nil {
			return cands, held
		}
		cands = append(cands, best.heads[best.next])
		best.next++
		best.running++
	}
}

func limitReason(q *queueCursor) string {
	return fmt.Sprintf("queue %s is at its limit of %d running jobs", q.name, q.limit)
}

func dispatch(in Input) []*statev1.JobOp {
	var ops []*statev1.JobOp
	cands, held := order(in.Jobs)
	for _, rec := range in.Jobs.Heads {
		for i, r := range rec {
			if i >= maxPendingNotes {
				break
			}
			if why, ok := held[r.Job.Id]; ok && r.Job.Message != why {
				ops = append(ops, pendingOp(r.Job.Id, why))
			}
		}
	}
	if len(cands) == 0 {
		return ops
	}
	pending := make([]*ccv1.Container, 0, len(cands))
	for _, r := range cands {
		pending = append(pending, &ccv1.Container{Id: r.Job.Id, Spec: fsm.AttemptSpec(r.Job)})
	}
	strategy := scheduler.Spread
	if in.Strategy == ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK {
		strategy = scheduler.Binpack
	}
	res := orchestrator.PlaceContainers(in.Nodes, in.Containers, pending, strategy)
	notes := map[string]int{}
	for _, r := range cands {
		j := r.Job
		if node, ok := res.Assigned[j.Id]; ok {
			ops = append(ops, &statev1.JobOp{Op: &statev1.JobOp_Start{Start: &statev1.StartJobAttempt{
				JobId: j.Id, NodeId: node, Attempt: uint32(len(j.Attempts)) + 1, ContainerId: in.NewID()}}})
			continue
		}
		q := j.GetSpec().GetQueue()
		if why := res.Pending[j.Id]; why != "" && j.Message != why && notes[q] < maxPendingNotes {
			notes[q]++
			ops = append(ops, pendingOp(j.Id, why))
		}
	}
	return ops
}

func pendingOp(id, why string) *statev1.JobOp {
	return &statev1.JobOp{Op: &statev1.JobOp_Pending{Pending: &statev1.JobPending{JobId: id, Reason: why}}}
}
