package fsm

import (
	"time"

	"github.com/containercodes/cc/controlplane/metrics"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// SetMetrics makes the state machine time each command it applies, and
// report the changes of jobs (queue waits, outcomes, run times, output
// sizes). nil stops it.
func (f *FSM) SetMetrics(m *metrics.Metrics) { f.metrics.Store(m) }

// LastApplied is when this server last applied a batch of entries (zero
// before the first since it started).
func (f *FSM) LastApplied() time.Time {
	if ns := f.appliedAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// jobEvent is what a change of a job from old (nil: new) to rec means to
// the metrics: an attempt placed after a wait in its queue, or the job
// finished. Its figures come from the record's timestamps, so every
// server counts the same.
func jobEvent(old, rec *statev1.JobRecord) (metrics.JobEvent, bool) {
	j := rec.GetJob()
	e := metrics.JobEvent{Queue: jobQueue(j)}
	was := old.GetJob().GetState()
	if was == ccv1.JobState_JOB_STATE_QUEUED && j.GetState() == ccv1.JobState_JOB_STATE_ASSIGNED && len(j.GetAttempts()) > 0 {
		n := len(j.Attempts)
		since := j.GetCreatedAt()
		if n > 1 && j.Attempts[n-2].GetFinishedAt() != nil {
			since = j.Attempts[n-2].GetFinishedAt()
		}
		if at := j.Attempts[n-1].GetAssignedAt(); at != nil && since != nil {
			e.Placed, e.QueueWait = true, at.AsTime().Sub(since.AsTime())
		}
	}
	if JobFinished(j.GetState()) && !JobFinished(was) {
		e.Finished = true
		e.Outcome = metrics.EnumLabel(j.GetState().String(), "JOB_STATE_")
		if n := len(j.GetAttempts()); n > 0 {
			a := j.Attempts[n-1]
			if a.GetStartedAt() != nil && a.GetFinishedAt() != nil {
				e.Ran, e.Run = true, a.GetFinishedAt().AsTime().Sub(a.GetStartedAt().AsTime())
			}
		}
		e.HasOutput, e.OutputBytes = j.GetOutputDigest() != "", j.GetOutputSize()
	}
	return e, e.Placed || e.Finished
}
