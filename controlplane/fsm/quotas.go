package fsm

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ErrQuotaExceeded refuses a job its owner's quota does not allow.
var ErrQuotaExceeded = errors.New("quota exceeded")

// QuotaUse is what one token holds against its quotas.
type QuotaUse struct {
	// ActiveJobs counts its queued, assigned and running jobs.
	ActiveJobs int64
	// OutputBytes sums the output of its finished jobs that has not
	// expired.
	OutputBytes int64
}

// activeJobStates are the states that count against jobs_per_token.
var activeJobStates = []ccv1.JobState{ccv1.JobState_JOB_STATE_QUEUED, ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING}

// quotaUse counts what owner holds: its active jobs when jobs is set, its
// kept output when output is set. It reads the active jobs (the job_state
// index) and the finished ones (job_expiry): a cost paid only when a
// quota is set.
func quotaUse(tx *bolt.Tx, owner string, jobs, output bool) (QuotaUse, error) {
	var use QuotaUse
	b := tx.Bucket(bucketJobs)
	load := func(id []byte) (*statev1.JobRecord, error) {
		rec := &statev1.JobRecord{}
		v := b.Get(id)
		if v == nil {
			return nil, nil
		}
		if err := proto.Unmarshal(v, rec); err != nil {
			return nil, err
		}
		return rec, nil
	}
	if jobs {
		c := tx.Bucket(bucketJobState).Cursor()
		for _, s := range activeJobStates {
			prefix := []byte{byte(s)}
			for k, id := c.Seek(prefix); k != nil && k[0] == prefix[0]; k, id = c.Next() {
				rec, err := load(id)
				if err != nil {
					return use, err
				}
				if rec != nil && rec.GetJob().GetOwnerTokenId() == owner {
					use.ActiveJobs++
				}
			}
		}
	}
	if output {
		c := tx.Bucket(bucketJobExpiry).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			rec, err := load(k[8:])
			if err != nil {
				return use, err
			}
			if j := rec.GetJob(); j != nil && j.OwnerTokenId == owner && j.OutputDigest != "" {
				use.OutputBytes += j.OutputSize
			}
		}
	}
	return use, nil
}

// storedSettings reads the cluster settings (empty when never set).
func storedSettings(tx *bolt.Tx) (*ccv1.Settings, error) {
	st := &ccv1.Settings{}
	if err := get(tx.Bucket(bucketCluster), string(keySettings), st); err != nil && err != ErrNotFound {
		return nil, err
	}
	return st, nil
}

// checkJobQuotas refuses one more job of owner when a quota of q does not
// allow it.
func checkJobQuotas(tx *bolt.Tx, q *ccv1.QuotaSettings, owner string) error {
	maxJobs, maxOutput := q.GetJobsPerToken(), q.GetOutputBytesPerToken()
	if maxJobs <= 0 && maxOutput <= 0 {
		return nil
	}
	use, err := quotaUse(tx, owner, maxJobs > 0, maxOutput > 0)
	if err != nil {
		return err
	}
	return QuotaError(q, owner, use)
}

// QuotaError is the refusal of one more job of owner, holding use, under
// the quotas q, or nil when they allow it. It names the quota, the use
// and how to raise it.
func QuotaError(q *ccv1.QuotaSettings, owner string, use QuotaUse) error {
	if n := q.GetJobsPerToken(); n > 0 && use.ActiveJobs >= n {
		return fmt.Errorf("%w: token %s has %d jobs queued or running, its quota (jobs_per_token) is %d; wait for some to finish or cancel some, or ask an admin to raise it (ccctl cluster settings --quota-jobs N; 0: no quota)",
			ErrQuotaExceeded, owner, use.ActiveJobs, n)
	}
	if n := q.GetOutputBytesPerToken(); n > 0 && use.OutputBytes >= n {
		return fmt.Errorf("%w: token %s keeps %d bytes of job output, its quota (output_bytes_per_token) is %d bytes; wait for outputs to expire, or ask an admin to raise it (ccctl cluster settings --quota-output-bytes SIZE; 0: no quota)",
			ErrQuotaExceeded, owner, use.OutputBytes, n)
	}
	return nil
}

// QuotaUse returns what owner holds against its quotas.
func (f *FSM) QuotaUse(owner string) (QuotaUse, error) {
	var use QuotaUse
	err := f.View(func(tx *bolt.Tx) error {
		var err error
		use, err = quotaUse(tx, owner, true, true)
		return err
	})
	return use, err
}

// validQuotas refuses negative quotas.
func validQuotas(q *ccv1.QuotaSettings) error {
	if q == nil {
		return nil
	}
	var probs []string
	if q.GetJobsPerToken() < 0 {
		probs = append(probs, "quotas.jobs_per_token: 0 (no quota) or more")
	}
	if q.GetOutputBytesPerToken() < 0 {
		probs = append(probs, "quotas.output_bytes_per_token: 0 (no quota) or more")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

// mergeQuotas is the stored quotas changed by an update's: a quota the
// update sets replaces the stored one, 0 removes it, an unset one keeps
// it.
func mergeQuotas(old, upd *ccv1.QuotaSettings) *ccv1.QuotaSettings {
	out := &ccv1.QuotaSettings{}
	if old != nil {
		out = proto.Clone(old).(*ccv1.QuotaSettings)
	}
	set := func(dst **int64, v *int64) {
		switch {
		case v == nil:
		case *v == 0:
			*dst = nil
		default:
			*dst = proto.Int64(*v)
		}
	}
	set(&out.JobsPerToken, upd.JobsPerToken)
	set(&out.OutputBytesPerToken, upd.OutputBytesPerToken)
	if out.JobsPerToken == nil && out.OutputBytesPerToken == nil {
		return nil
	}
	return out
}
