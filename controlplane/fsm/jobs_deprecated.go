package fsm

import (
	"time"

	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// JobTimeout is a job's timeout, its default when its spec sets none.
//
// Deprecated: use jobspec.Timeout (kept for controlplane/jobs until it moves).
func JobTimeout(s *ccv1.JobSpec) time.Duration { return jobspec.Timeout(s) }

// KillGrace is a job's wait between SIGTERM and SIGKILL, in whole
// milliseconds.
//
// Deprecated: use jobspec.KillGrace (kept for controlplane/jobs until it moves).
func KillGrace(s *ccv1.JobSpec) time.Duration {
	return jobspec.KillGrace(s).Truncate(time.Millisecond)
}

// AttemptSpec is the container spec of a job's attempt.
//
// Deprecated: use jobspec.AttemptSpec (kept for controlplane/jobs until it moves).
func AttemptSpec(j *ccv1.Job) *ccv1.ContainerSpec { return jobspec.AttemptSpec(j) }
