package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/containercodes/cc/controlplane/dispatch"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/raftstore"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// expirePerPass bounds the expired jobs one dispatcher pass deletes.
const expirePerPass = 1000

// JobDispatcher is the job dispatcher's leader loop: it reads the queues,
// the active jobs and the nodes, decides (package dispatch) and writes the
// decisions, again whenever the state changes.
type JobDispatcher struct {
	raft    *raftstore.Store
	fsm     *fsm.FSM
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewJobDispatcher returns the job dispatcher loop.
func NewJobDispatcher(c Config) *JobDispatcher {
	return &JobDispatcher{raft: c.Raft, fsm: c.FSM, log: c.loopLog("job-dispatcher"), metrics: c.Metrics}
}

// Run runs passes until ctx ends.
func (d *JobDispatcher) Run(ctx context.Context) {
	const inputScan = time.Minute // input records expire in days: no hurry
	var lastInputs time.Time
	decide(ctx, d.fsm, 5*time.Second, func(ctx context.Context, now time.Time) (outcome, time.Time) {
		defer func() { d.metrics.DispatchPass(time.Since(now)) }()
		withInputs := now.Sub(lastInputs) >= inputScan
		if withInputs {
			lastInputs = now
		}
		ops, err := d.plan(now, withInputs)
		if err != nil {
			d.log.Error("read state", "err", err)
			return idle, time.Time{}
		}
		if len(ops) == 0 {
			return idle, time.Time{}
		}
		if err := writeJobOps(ctx, d.raft, ops); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("could not write the dispatcher's decisions; retrying", "err", err)
			}
			return failed, time.Time{}
		}
		d.log.Debug("job ops applied", "ops", len(ops), "took", time.Since(now))
		return wrote, time.Time{}
	})
}

// plan reads what one pass decides from and decides.
func (d *JobDispatcher) plan(now time.Time, withInputs bool) ([]*statev1.JobOp, error) {
	js, err := d.fsm.ReadDispatch(dispatch.HeadsPerQueue)
	if err != nil {
		return nil, err
	}
	// Nodes and containers matter only with jobs to place or to watch:
	// a cluster of services without jobs does not pay for reading them on
	// every change.
	st := &fsm.State{}
	if len(js.Heads) > 0 || len(js.Active) > 0 {
		if st, err = d.fsm.ReadState(); err != nil {
			return nil, err
		}
	}
	expired, err := d.fsm.ExpiredJobs(now, expirePerPass)
	if err != nil {
		return nil, err
	}
	var inputs []string
	if withInputs {
		if inputs, err = d.fsm.ExpiredInputs(now); err != nil {
			return nil, err
		}
	}
	plan := dispatch.Decide(dispatch.Input{
		Jobs: dispatchJobs(js), Nodes: st.Nodes, Containers: st.Tasks, Strategy: st.Settings.GetSchedulingStrategy(),
		Now: now, Expired: expired, ExpiredInputs: inputs, NewID: newID,
	})
	return plan.Ops, nil
}

// dispatchJobs converts the state machine's read into the decision's input.
func dispatchJobs(st *fsm.DispatchState) *dispatch.Jobs {
	qs := make(map[string]dispatch.Queue, len(st.Queues))
	for name, q := range st.Queues {
		if q == nil {
			continue
		}
		qs[name] = dispatch.Queue{MaxRunning: q.MaxRunning, Running: q.Running}
	}
	return &dispatch.Jobs{Queues: qs, Heads: st.Heads, Active: st.Active}
}
