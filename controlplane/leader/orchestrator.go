package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/orchestrator"
	"github.com/containercodes/cc/controlplane/raftstore"
)

// Orchestrator is the leader loop of services: it reads the state, makes a
// plan (package orchestrator, which calls the scheduler) and writes its
// ops, again whenever the state changes or the plan asks to be woken.
type Orchestrator struct {
	raft *raftstore.Store
	fsm  *fsm.FSM
	log  *slog.Logger
}

// NewOrchestrator returns the orchestrator loop.
func NewOrchestrator(c Config) *Orchestrator {
	return &Orchestrator{raft: c.Raft, fsm: c.FSM, log: c.loopLog("orchestrator")}
}

// Run runs passes until ctx ends.
func (o *Orchestrator) Run(ctx context.Context) {
	decide(ctx, o.fsm, 10*time.Second, o.pass)
}

// pass reads the state, makes a plan and writes its ops.
func (o *Orchestrator) pass(ctx context.Context, now time.Time) (outcome, time.Time) {
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
	return wrote, time.Time{}
}
