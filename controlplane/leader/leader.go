// Package leader is the work that must happen once in the cluster, done by
// the raft leader only: node health (marking down the nodes no server hears
// from), the orchestrator (services to tasks, through the scheduler), the
// job dispatcher and the completion webhooks. A Runner starts the loops when
// this server gains leadership and stops, and waits for, them when it loses
// it; each loop decides from everything earlier leaders committed (Ready,
// a raft barrier per term) and writes through this server's raft only, so
// that a deposed leader stops deciding.
//
// The decisions themselves are pure and live elsewhere (packages
// orchestrator and dispatch); this package reads the state, calls them and
// writes their ops.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/webhook"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// Config is what the leader loops need.
type Config struct {
	Raft *raftstore.Store
	FSM  *fsm.FSM
	Log  *slog.Logger
	// NodeDownAfter is how long a node may go without a session on any
	// server before it is marked down. Default 10s.
	NodeDownAfter time.Duration
	// Sessions returns the nodes with a live session on this server and
	// their last heartbeat.
	Sessions func() map[string]time.Time
	// OtherSessions returns the same from the other servers (an
	// unreachable server contributes none).
	OtherSessions func(ctx context.Context) map[string]time.Time
	// Webhooks delivers completion webhooks; nil for the default sender.
	Webhooks *webhook.Sender
	// Tracing starts the dispatch spans of traced jobs; nil: none.
	Tracing trace.TracerProvider
	// Metrics times the loops' passes and placements; nil: none.
	Metrics *metrics.Metrics
}

// Loops returns the leader loops of a control-plane server.
func Loops(c Config) []Loop {
	return []Loop{
		{Name: "node-health", Run: NewNodeHealth(c).Run},
		{Name: "orchestrator", Run: NewOrchestrator(c).Run},
		{Name: "job-dispatcher", Run: NewJobDispatcher(c).Run},
		{Name: "job-webhooks", Run: NewWebhooks(c).Run},
	}
}

// loopLog is the logger of one loop.
func (c Config) loopLog(name string) *slog.Logger {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return log.With("loop", name)
}

// Barrier returns a Runner's Prepare: a raft barrier, retried until it
// succeeds or the term ends, so that the loops of a term decide from
// everything earlier leaders committed.
func Barrier(r *raftstore.Store, log *slog.Logger) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		for {
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.Barrier(bctx)
			cancel()
			if err == nil {
				return true
			}
			if ctx.Err() != nil {
				return false
			}
			log.Warn("barrier failed; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				return false
			}
		}
	}
}

// opsPerCommand bounds one raft entry of ops: a batch of 100,000 new tasks
// goes out as several entries, each applied in one transaction.
const opsPerCommand = 2000

// minPassGap is the least time between two passes of a deciding loop
// under a stream of changes (passBurst passes may run at once after a
// quiet spell: see pacer).
const minPassGap = 50 * time.Millisecond

// passBurst is how many passes a deciding loop may run without waiting
// after a quiet spell.
const passBurst = 4

// writeOps writes ops as commands of type t of at most opsPerCommand ops
// each (wrap makes one command's payload), in order and pipelined, through
// this server's raft only: a server that lost leadership stops deciding.
func writeOps[Op any](ctx context.Context, r *raftstore.Store, t statev1.CommandType, ops []Op, wrap func([]Op) proto.Message) error {
	var payloads []proto.Message
	for len(ops) > 0 {
		n := min(len(ops), opsPerCommand)
		payloads = append(payloads, wrap(ops[:n]))
		ops = ops[n:]
	}
	return r.ProposeLocalAll(ctx, t, payloads, time.Now())
}

// writeTaskOps writes the orchestrator's task ops.
func writeTaskOps(ctx context.Context, r *raftstore.Store, ops []*statev1.TaskOp) error {
	return writeOps(ctx, r, statev1.CommandType_COMMAND_TYPE_TASK_OPS, ops, func(c []*statev1.TaskOp) proto.Message {
		return &statev1.TaskOps{Ops: c}
	})
}

// writeJobOps writes the job dispatcher's and the webhook loop's job ops.
func writeJobOps(ctx context.Context, r *raftstore.Store, ops []*statev1.JobOp) error {
	return writeOps(ctx, r, statev1.CommandType_COMMAND_TYPE_JOB_OPS, ops, func(c []*statev1.JobOp) proto.Message {
		return &statev1.JobOps{Ops: c}
	})
}

// outcome is what a deciding pass did.
type outcome int

const (
	// idle: nothing to write; pass again on the next change or at the
	// wake time.
	idle outcome = iota
	// wrote: pass again at once, deciding from the new state.
	wrote
	// failed: writing the decisions failed; pass again after a second.
	failed
)

// decide runs pass after pass until ctx ends, the shape every deciding
// loop shares. Passes are paced (pacer): a change after a quiet spell is
// decided at once, while many changes in a row (thousands of nodes
// joining, status arriving) make one pass per minPassGap, or per the time
// the last pass took when that is longer, not one each, so the loop takes
// at most about half of a core. After an idle pass the loop waits for a
// change of the state, the pass's wake time (zero: none) or resync,
// whichever comes first.
func decide(ctx context.Context, f *fsm.FSM, resync time.Duration, pass func(ctx context.Context, now time.Time) (outcome, time.Time)) {
	decidePaced(ctx, f, resync, minPassGap, pass)
}

// decidePaced is decide with passes at least minGap apart under a stream
// of changes instead of minPassGap.
func decidePaced(ctx context.Context, f *fsm.FSM, resync, minGap time.Duration, pass func(ctx context.Context, now time.Time) (outcome, time.Time)) {
	// Decide from everything earlier leaders committed.
	if !Ready(ctx) {
		return
	}
	pace := newPacer(minGap)
	for {
		if d := pace.delay(time.Now()); d > 0 {
			if !sleep(ctx, d) {
				return
			}
		}
		watch := f.Watch()
		last := time.Now()
		pace.start(last)
		out, wakeAt := pass(ctx, last)
		pace.end(time.Now())
		switch {
		case ctx.Err() != nil:
			return
		case out == wrote:
			continue
		case out == failed:
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		wake := last.Add(resync)
		if !wakeAt.IsZero() && wakeAt.Before(wake) {
			wake = wakeAt
		}
		if !waitChange(ctx, watch, time.Until(wake)) {
			return
		}
	}
}

// pacer spaces the passes of a deciding loop with credit: each pass
// spends one, and credit comes back at one per gap, counted from the start
// of the last pass (the gap is the loop's least gap, minPassGap by
// default, or the time the last pass took when longer), up to passBurst.
// So a loop that was quiet acts on a change at once (a single job or
// container is placed without a fixed wait), and a stream of changes is
// decided in passes that start at least a gap apart, as without credit,
// each covering all the changes since the one before.
type pacer struct {
	minGap time.Duration
	credit float64       // at last
	last   time.Time     // when the last pass started; zero before the first
	took   time.Duration // how long it took
}

func newPacer(minGap time.Duration) *pacer { return &pacer{minGap: minGap, credit: passBurst} }

func (p *pacer) gap() time.Duration { return max(p.minGap, p.took) }

// available is the credit at now.
func (p *pacer) available(now time.Time) float64 {
	if p.last.IsZero() {
		return p.credit
	}
	return min(passBurst, p.credit+float64(now.Sub(p.last))/float64(p.gap()))
}

// delay is how long to wait at now before the next pass may start.
func (p *pacer) delay(now time.Time) time.Duration {
	c := p.available(now)
	if c >= 1 {
		return 0
	}
	return time.Duration((1 - c) * float64(p.gap()))
}

// start records that a pass starts at now.
func (p *pacer) start(now time.Time) {
	p.credit = max(0, p.available(now)-1)
	p.last = now
}

// end records that the pass started last ended at now.
func (p *pacer) end(now time.Time) {
	p.took = now.Sub(p.last)
}

// waitChange waits until watch is closed or d has passed; false when ctx
// ended first.
func waitChange(ctx context.Context, watch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-watch:
	case <-t.C:
	}
	return true
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// newID returns a random id for a new task or job attempt.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
