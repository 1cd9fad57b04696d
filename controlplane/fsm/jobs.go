package fsm

import ccv1 "github.com/containercodes/cc/proto/cc/v1"

// Jobs in the state machine, by file:
//
//	jobs.go         job states and webhook states
//	jobs_index.go   the buckets and their keys; saveJob and deleteJob keep
//	                the indexes in step with a record
//	jobs_apply.go   the commands and job ops that change jobs, queues and inputs
//	jobs_policy.go  a job's end: finished, or queued again for another attempt
//	jobs_reads.go   reads for the API, the dispatcher and the collectors
//
// A job's defaults and its attempt's container spec are internal/jobspec's.

// Webhook states of a job.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
)

// JobFinished says whether a job state is final.
func JobFinished(s ccv1.JobState) bool {
	switch s {
	case ccv1.JobState_JOB_STATE_SUCCEEDED, ccv1.JobState_JOB_STATE_FAILED,
		ccv1.JobState_JOB_STATE_TIMED_OUT, ccv1.JobState_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

// JobActive says whether a job holds a node (assigned or running).
func JobActive(s ccv1.JobState) bool {
	return s == ccv1.JobState_JOB_STATE_ASSIGNED || s == ccv1.JobState_JOB_STATE_RUNNING
}
