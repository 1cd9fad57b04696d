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
	// Decide from everything earlier leaders committed.
	if !Ready(ctx) {
		return
	}
	const resync = 10 * time.Second
	var last time.Time // start of the last pass
	var took time.Duration
	for {
		// Pace the passes: many changes in a row (thousands of nodes
		// joining, status arriving) make one pass, not one each, and the
		// loop takes at most about half of a core.
		if gap := max(minPassGap, took); time.Since(last) < gap {
			if !sleep(ctx, gap-time.Since(last)) {
				return
			}
		}
		watch := o.fsm.Watch()
		wake := time.Now().Add(resync)
		last = time.Now()
		st, err := o.fsm.ReadState()
		if err != nil {
			o.log.Error("read state", "err", err)
		} else {
			started := time.Now()
			plan := orchestrator.Make(orchestrator.Input{
				Services: st.Services, Tasks: st.Tasks, Nodes: st.Nodes,
				Strategy: st.Settings.GetSchedulingStrategy(), Now: started, NewID: newID,
			})
			if !plan.WakeAt.IsZero() && plan.WakeAt.Before(wake) {
				wake = plan.WakeAt
			}
			if len(plan.Ops) > 0 {
				if err := writeTaskOps(ctx, o.raft, plan.Ops); err != nil {
					if ctx.Err() != nil {
						return
					}
					o.log.Warn("could not write the scheduler's decisions; retrying", "err", err)
					if !sleep(ctx, time.Second) {
						return
					}
					continue
				}
				o.log.Debug("plan applied", "ops", len(plan.Ops), "took", time.Since(started))
				took = time.Since(last)
				continue // decide again from the new state
			}
		}
		took = time.Since(last)
		if !waitChange(ctx, watch, time.Until(wake)) {
			return
		}
	}
}
