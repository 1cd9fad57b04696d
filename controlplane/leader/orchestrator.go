package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/orchestrator"
	"github.com/containercodes/cc/controlplane/raftstore"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// Orchestrator is the leader loop of services: it reads the state, makes a
// plan (package orchestrator, which calls the scheduler) and writes its
// ops, again whenever the state changes or the plan asks to be woken.
type Orchestrator struct {
	raft    *raftstore.Store
	fsm     *fsm.FSM
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewOrchestrator returns the orchestrator loop.
func NewOrchestrator(c Config) *Orchestrator {
	return &Orchestrator{raft: c.Raft, fsm: c.FSM, log: c.loopLog("orchestrator"), metrics: c.Metrics}
}

// Run runs passes until ctx ends.
func (o *Orchestrator) Run(ctx context.Context) {
	decide(ctx, o.fsm, 10*time.Second, o.pass)
}

// pass reads the state, makes a plan and writes its ops.
func (o *Orchestrator) pass(ctx context.Context, now time.Time) (outcome, time.Time) {
	defer func() { o.metrics.OrchestratorPass(time.Since(now)) }()
	st, err := o.fsm.ReadState()
	if err != nil {
		o.log.Error("read state", "err", err)
		return idle, time.Time{}
	}
	plan := orchestrator.Make(orchestrator.Input{
		Services: st.Services, Tasks: st.Tasks, Nodes: st.Nodes,
		Strategy: st.Settings.GetSchedulingStrategy(), Now: now, NewID: newID,
	})
	if len(plan.Ops) == 0 {
		return idle, plan.WakeAt
	}
	if err := writeTaskOps(ctx, o.raft, plan.Ops); err != nil {
		if ctx.Err() == nil {
			o.log.Warn("could not write the scheduler's decisions; retrying", "err", err)
		}
		return failed, time.Time{}
	}
	o.log.Debug("plan applied", "ops", len(plan.Ops), "took", time.Since(now))
	if o.metrics != nil {
		observePlacements(o.metrics, st.Tasks, plan.Ops, now)
	}
	return wrote, time.Time{}
}

// observePlacements records how long each task the ops placed waited for
// a node: 0 for one created on its node, the time since its creation for
// a pending one assigned.
func observePlacements(m *metrics.Metrics, tasks []*statev1.ContainerRecord, ops []*statev1.TaskOp, now time.Time) {
	var created map[string]time.Time
	for _, op := range ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			if o.Create.GetNodeId() != "" {
				m.TaskPlaced(0)
			}
		case *statev1.TaskOp_Assign:
			if created == nil {
				created = make(map[string]time.Time, len(tasks))
				for _, t := range tasks {
					if c := t.GetContainer(); c.GetNodeId() == "" && c.GetCreatedAt() != nil {
						created[c.GetId()] = c.GetCreatedAt().AsTime()
					}
				}
			}
			if at, ok := created[o.Assign.GetTaskId()]; ok {
				m.TaskPlaced(now.Sub(at))
			}
		}
	}
}
