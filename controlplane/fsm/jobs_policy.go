package fsm

import (
	"fmt"
	"time"

	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// finishJob gives a job its final state.
func finishJob(rec *statev1.JobRecord, at time.Time, state ccv1.JobState, message string) {
	j := rec.Job
	j.State = state
	j.Message = message
	j.FinishedAt, j.UpdatedAt = ts(at), ts(at)
	j.ExpiresAt = ts(at.Add(jobspec.OutputTTL(j.GetSpec())))
	if j.GetSpec().GetWebhookUrl() != "" {
		j.WebhookState = WebhookPending
	}
}

func currentAttempt(j *ccv1.Job) *ccv1.JobAttempt {
	if len(j.Attempts) == 0 {
		return nil
	}
	return j.Attempts[len(j.Attempts)-1]
}

// retryOrFail queues a job whose attempt failed again while attempts
// remain, and fails it otherwise.
func retryOrFail(rec *statev1.JobRecord, at time.Time, why string) {
	j := rec.Job
	n, most := len(j.Attempts), jobspec.MaxAttempts(j.GetSpec())
	if n < most {
		j.State = ccv1.JobState_JOB_STATE_QUEUED
		j.Message = fmt.Sprintf("attempt %d failed: %s; queued again (%d of %d attempts left)", n, why, most-n, most)
		j.UpdatedAt = ts(at)
		return
	}
	msg := why
	if most > 1 {
		msg = fmt.Sprintf("%s (after %d attempts)", why, n)
	}
	finishJob(rec, at, ccv1.JobState_JOB_STATE_FAILED, msg)
}
