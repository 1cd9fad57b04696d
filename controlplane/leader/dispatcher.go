package leader

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/controlplane/dispatch"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/tracing"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// expirePerPass bounds the expired jobs one dispatcher pass deletes.
const expirePerPass = 1000

// dispatchPassGap is the least gap between the dispatcher's passes under
// a stream of changes. Every change of the state wakes it, each status a
// job attempt reports too: a short gap keeps a job's dispatch from waiting
// behind the passes its predecessor's reports caused. The gap is never
// shorter than the last pass took, so the loop still takes at most about
// half of a core.
const dispatchPassGap = 10 * time.Millisecond

// JobDispatcher is the job dispatcher's leader loop: it reads the queues,
// the active jobs and the nodes, decides (package dispatch) and writes the
// decisions, again whenever the state changes.
type JobDispatcher struct {
	raft    *raftstore.Store
	fsm     *fsm.FSM
	log     *slog.Logger
	tracer  trace.Tracer
	metrics *metrics.Metrics
}

// NewJobDispatcher returns the job dispatcher loop.
func NewJobDispatcher(c Config) *JobDispatcher {
	return &JobDispatcher{raft: c.Raft, fsm: c.FSM, log: c.loopLog("job-dispatcher"),
		tracer: tracing.Tracer(c.Tracing, "github.com/containercodes/cc/controlplane/leader"), metrics: c.Metrics}
}

// Run runs passes until ctx ends.
func (d *JobDispatcher) Run(ctx context.Context) {
	const inputScan = time.Minute // input records expire in days: no hurry
	var lastInputs time.Time
	decidePaced(ctx, d.fsm, 5*time.Second, dispatchPassGap, func(ctx context.Context, now time.Time) (outcome, time.Time) {
		defer func() { d.metrics.DispatchPass(time.Since(now)) }()
		withInputs := now.Sub(lastInputs) >= inputScan
		if withInputs {
			lastInputs = now
		}
		ops, traces, err := d.plan(now, withInputs)
		if err != nil {
			d.log.Error("read state", "err", err)
			return idle, time.Time{}
		}
		if len(ops) == 0 {
			return idle, time.Time{}
		}
		spans := d.traceStarts(ops, traces)
		err = writeJobOps(ctx, d.raft, ops)
		for _, sp := range spans {
			if err != nil {
				sp.SetStatus(codes.Error, err.Error())
			}
			sp.End()
		}
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("could not write the dispatcher's decisions; retrying", "err", err)
			}
			return failed, time.Time{}
		}
		d.log.Debug("job ops applied", "ops", len(ops), "took", time.Since(now))
		return wrote, time.Time{}
	})
}

// traceStarts starts a span (job.dispatch) for each attempt ops start of
// a job whose submit was traced, as the child of the submit's span; the
// start op carries the span's context to the attempt's container record,
// so that the agent's run and upload continue the trace. The caller ends
// the spans once the ops are written.
func (d *JobDispatcher) traceStarts(ops []*statev1.JobOp, traces map[string]map[string]string) []trace.Span {
	var spans []trace.Span
	for _, op := range ops {
		st := op.GetStart()
		if st == nil || len(traces[st.JobId]) == 0 {
			continue
		}
		ctx, span := d.tracer.Start(tracing.Extract(context.Background(), traces[st.JobId]), "job.dispatch",
			trace.WithAttributes(attribute.String("cc.job.id", st.JobId), attribute.Int64("cc.job.attempt", int64(st.Attempt)),
				attribute.String("cc.node.id", st.NodeId), attribute.String("cc.container.id", st.ContainerId)))
		st.TraceContext = tracing.Inject(ctx)
		spans = append(spans, span)
	}
	return spans
}

// plan reads what one pass decides from and decides; traces holds the
// trace contexts of the queued jobs' submits, by job id.
func (d *JobDispatcher) plan(now time.Time, withInputs bool) (ops []*statev1.JobOp, traces map[string]map[string]string, err error) {
	js, err := d.fsm.ReadDispatch(dispatch.HeadsPerQueue)
	if err != nil {
		return nil, nil, err
	}
	for _, heads := range js.Heads {
		for _, j := range heads {
			if len(j.TraceContext) > 0 {
				if traces == nil {
					traces = map[string]map[string]string{}
				}
				traces[j.GetJob().GetId()] = j.TraceContext
			}
		}
	}
	// Nodes and containers matter only with jobs to place or to watch:
	// a cluster of services without jobs does not pay for reading them on
	// every change.
	st := &fsm.State{}
	if len(js.Heads) > 0 || len(js.Active) > 0 {
		if st, err = d.fsm.ReadState(); err != nil {
			return nil, nil, err
		}
	}
	expired, err := d.fsm.ExpiredJobs(now, expirePerPass)
	if err != nil {
		return nil, nil, err
	}
	var inputs []string
	if withInputs {
		if inputs, err = d.fsm.ExpiredInputs(now); err != nil {
			return nil, nil, err
		}
	}
	plan := dispatch.Decide(dispatch.Input{
		Jobs: dispatchJobs(js), Nodes: st.Nodes, Containers: st.Tasks, Strategy: st.Settings.GetSchedulingStrategy(),
		Now: now, Expired: expired, ExpiredInputs: inputs, NewID: newID,
	})
	return plan.Ops, traces, nil
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
