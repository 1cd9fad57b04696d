// Package jobspec is the one home of a job's spec rules, shared by the API,
// the state machine and the agent: the defaults a zero field takes, the
// limits a submitted spec must keep, and the container spec of an attempt.
// A default is written here once and read everywhere else.
package jobspec

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Defaults of a job spec. A zero field of a submitted spec takes its
// default, and the stored spec holds it, so that a job record says exactly
// what ran; the readers below apply them too, for records and assignments
// that lack a field.
const (
	DefaultQueue                = "default"
	DefaultTimeout              = time.Hour
	DefaultKillGrace            = 10 * time.Second
	DefaultOutputTTL            = 7 * 24 * time.Hour
	DefaultMemoryBytes   int64  = 512 << 20
	DefaultCPUMillis     int64  = 1000
	DefaultMaxAttempts   uint32 = 1
	DefaultTmpLimitBytes int64  = 64 << 20 // sizes /tmp

	// DefaultPids is also the pids limit of a sandbox whose resources set
	// none.
	DefaultPids int64 = 512
	// DefaultOutputLimitBytes sizes /output and caps its archive's content.
	DefaultOutputLimitBytes int64 = 1 << 30
	// DefaultMaxOutputFiles caps the entries collected from /output.
	DefaultMaxOutputFiles uint32 = 10000
	// DefaultInputLimitBytes caps what an input archive unpacks to (file
	// content, plus 512 bytes for each entry), and the size of an upload.
	DefaultInputLimitBytes int64 = 4 << 30
)

// Timeout is a job's timeout: its spec's, or DefaultTimeout.
func Timeout(s *ccv1.JobSpec) time.Duration {
	return orDefault(s.GetTimeout(), DefaultTimeout)
}

// KillGrace is a job's wait between SIGTERM and SIGKILL: its spec's, or
// DefaultKillGrace.
func KillGrace(s *ccv1.JobSpec) time.Duration {
	return orDefault(s.GetKillGrace(), DefaultKillGrace)
}

// OutputTTL is how long a finished job's output and logs are kept: its
// spec's, or DefaultOutputTTL.
func OutputTTL(s *ccv1.JobSpec) time.Duration {
	return orDefault(s.GetOutputTtl(), DefaultOutputTTL)
}

// MaxAttempts is how many attempts a job may make: its spec's, or
// DefaultMaxAttempts.
func MaxAttempts(s *ccv1.JobSpec) int {
	if n := s.GetMaxAttempts(); n > 0 {
		return int(n)
	}
	return int(DefaultMaxAttempts)
}

// SandboxTimeout and SandboxKillGrace read the same from an attempt's
// sandbox, as the agent receives it.
func SandboxTimeout(sb *ccv1.JobSandbox) time.Duration {
	return orDefault(sb.GetTimeout(), DefaultTimeout)
}

// SandboxKillGrace is the kill grace of an attempt's sandbox.
func SandboxKillGrace(sb *ccv1.JobSandbox) time.Duration {
	return orDefault(sb.GetKillGrace(), DefaultKillGrace)
}

func orDefault(d *durationpb.Duration, def time.Duration) time.Duration {
	if d != nil && d.AsDuration() > 0 {
		return d.AsDuration()
	}
	return def
}

// AttemptName is the container name of a job's attempt.
func AttemptName(jobID string, n uint32) string {
	return fmt.Sprintf("job-%s-%d", jobID, n)
}

// AttemptSpec is the container spec of a job's attempt: the job's command in
// a sandbox. The state machine builds it, so every server builds the same.
func AttemptSpec(j *ccv1.Job) *ccv1.ContainerSpec {
	s := j.GetSpec()
	network := ccv1.NetworkMode_NETWORK_MODE_NONE
	if s.GetNetwork() {
		network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	}
	grace := durationpb.New(KillGrace(s).Truncate(time.Millisecond))
	res := &ccv1.ContainerResources{}
	if s.GetResources() != nil {
		res = proto.Clone(s.GetResources()).(*ccv1.ContainerResources)
	}
	// A job reserves what it may use, whatever its spec says (records
	// stored before Normalize set the reservations so): the scheduler
	// counts its limits.
	if res.MemoryBytes > 0 {
		res.MemoryReservationBytes = res.MemoryBytes
	}
	if res.CpuMillis > 0 {
		res.CpuReservationMillis = res.CpuMillis
	}
	return &ccv1.ContainerSpec{
		Image:           s.GetImage(),
		Command:         append([]string(nil), s.GetCommand()...),
		Env:             append([]string(nil), s.GetEnv()...),
		Resources:       res,
		ReadOnly:        true,
		User:            s.GetUser(),
		Workdir:         s.GetWorkdir(),
		Restart:         ccv1.RestartPolicy_RESTART_POLICY_NO,
		Network:         network,
		StopGracePeriod: grace,
		Sandbox: &ccv1.JobSandbox{
			JobId:            j.Id,
			OutputLimitBytes: s.GetOutputLimitBytes(),
			TmpLimitBytes:    s.GetTmpLimitBytes(),
			MaxOutputFiles:   s.GetMaxOutputFiles(),
			InputDigest:      s.GetInputDigest(),
			Timeout:          s.GetTimeout(),
			KillGrace:        grace,
		},
	}
}
