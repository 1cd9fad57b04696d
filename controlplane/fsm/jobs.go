package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Jobs live in the jobs bucket (id → JobRecord). Index buckets, kept in the
// same transaction by saveJob and deleteJob, make every read the API and
// the dispatcher need a range scan instead of a read of every job:
//
//	job_seq      seq                        → id   every job, in submit order
//	job_state    state, seq                 → id   every job, by state
//	job_queue    queue, 0, priority, seq    → id   queued jobs, in dispatch order
//	job_qseq     queue, 0, seq              → id   every job, by queue
//	job_keys     owner, 0, idempotency key  → id
//	job_expiry   expires_at (ns), id        → ""   finished jobs
//	job_webhooks id                         → ""   finished jobs whose webhook is due
//	job_updated  updated index, id          → ""   every job, by last change
//	queues       name                       → QueueRecord
//	inputs       digest                     → InputRecord (who uploaded it)
var (
	bucketJobs        = []byte("jobs")
	bucketJobSeq      = []byte("job_seq")
	bucketJobState    = []byte("job_state")
	bucketJobQueue    = []byte("job_queue")
	bucketJobQSeq     = []byte("job_qseq")
	bucketJobKeys     = []byte("job_keys")
	bucketJobExpiry   = []byte("job_expiry")
	bucketJobWebhooks = []byte("job_webhooks")
	bucketJobUpdated  = []byte("job_updated")
	bucketQueues      = []byte("queues")
	bucketInputs      = []byte("inputs")
)

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

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func seqKey(seq uint64) []byte { return u64(seq) }

func stateKey(s ccv1.JobState, seq uint64) []byte {
	return append([]byte{byte(s)}, u64(seq)...)
}

// queueKey orders a queue's jobs: higher priority first, then by seq.
func queueKey(queue string, prio int32, seq uint64) []byte {
	k := make([]byte, 0, len(queue)+1+4+8)
	k = append(k, queue...)
	k = append(k, 0)
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], ^(uint32(prio) ^ 0x80000000))
	k = append(k, p[:]...)
	return append(k, u64(seq)...)
}

func qseqKey(queue string, seq uint64) []byte {
	return append(append([]byte(queue), 0), u64(seq)...)
}

func ownerKey(owner, key string) []byte {
	return []byte(owner + "\x00" + key)
}

func expiryKey(t time.Time, id string) []byte {
	return append(u64(uint64(t.UnixNano())), id...)
}

func updatedKey(index uint64, id string) []byte {
	return append(u64(index), id...)
}

func jobQueue(j *ccv1.Job) string {
	if q := j.GetSpec().GetQueue(); q != "" {
		return q
	}
	return jobspec.DefaultQueue
}

// saveJob writes a job record and moves its index entries from what old
// (nil for a new job) had to what rec has.
func saveJob(tx *txn, old, rec *statev1.JobRecord) error {
	j := rec.Job
	id := []byte(j.Id)
	states := tx.Bucket(bucketJobState)
	queue := tx.Bucket(bucketJobQueue)
	expiry := tx.Bucket(bucketJobExpiry)
	hooks := tx.Bucket(bucketJobWebhooks)
	updated := tx.Bucket(bucketJobUpdated)
	if old == nil {
		if err := tx.Bucket(bucketJobSeq).Put(seqKey(j.Seq), id); err != nil {
			return err
		}
		if err := tx.Bucket(bucketJobQSeq).Put(qseqKey(jobQueue(j), j.Seq), id); err != nil {
			return err
		}
		if k := j.GetSpec().GetIdempotencyKey(); k != "" {
			if err := tx.Bucket(bucketJobKeys).Put(ownerKey(j.OwnerTokenId, k), id); err != nil {
				return err
			}
		}
	} else {
		o := old.Job
		if err := states.Delete(stateKey(o.State, o.Seq)); err != nil {
			return err
		}
		if o.State == ccv1.JobState_JOB_STATE_QUEUED {
			if err := queue.Delete(queueKey(jobQueue(o), o.GetSpec().GetPriority(), o.Seq)); err != nil {
				return err
			}
		}
		if o.ExpiresAt != nil {
			if err := expiry.Delete(expiryKey(o.ExpiresAt.AsTime(), o.Id)); err != nil {
				return err
			}
		}
		if err := hooks.Delete(id); err != nil {
			return err
		}
		if err := updated.Delete(updatedKey(old.UpdatedIndex, o.Id)); err != nil {
			return err
		}
	}
	if err := states.Put(stateKey(j.State, j.Seq), id); err != nil {
		return err
	}
	if j.State == ccv1.JobState_JOB_STATE_QUEUED {
		if err := queue.Put(queueKey(jobQueue(j), j.GetSpec().GetPriority(), j.Seq), id); err != nil {
			return err
		}
	}
	if j.ExpiresAt != nil {
		if err := expiry.Put(expiryKey(j.ExpiresAt.AsTime(), j.Id), nil); err != nil {
			return err
		}
	}
	if j.WebhookState == WebhookPending {
		if err := hooks.Put(id, nil); err != nil {
			return err
		}
	}
	rec.UpdatedIndex = tx.index
	if err := updated.Put(updatedKey(tx.index, j.Id), nil); err != nil {
		return err
	}
	tx.jobsChanged = true
	return put(tx.Bucket(bucketJobs), j.Id, rec)
}

// deleteJob removes a job and its index entries.
func deleteJob(tx *txn, rec *statev1.JobRecord) error {
	j := rec.Job
	id := []byte(j.Id)
	dels := []struct {
		b []byte
		k []byte
	}{
		{bucketJobSeq, seqKey(j.Seq)},
		{bucketJobQSeq, qseqKey(jobQueue(j), j.Seq)},
		{bucketJobState, stateKey(j.State, j.Seq)},
		{bucketJobQueue, queueKey(jobQueue(j), j.GetSpec().GetPriority(), j.Seq)},
		{bucketJobWebhooks, id},
		{bucketJobUpdated, updatedKey(rec.UpdatedIndex, j.Id)},
		{bucketJobs, id},
	}
	if k := j.GetSpec().GetIdempotencyKey(); k != "" {
		if v := tx.Bucket(bucketJobKeys).Get(ownerKey(j.OwnerTokenId, k)); string(v) == j.Id {
			dels = append(dels, struct{ b, k []byte }{bucketJobKeys, ownerKey(j.OwnerTokenId, k)})
		}
	}
	if j.ExpiresAt != nil {
		dels = append(dels, struct{ b, k []byte }{bucketJobExpiry, expiryKey(j.ExpiresAt.AsTime(), j.Id)})
	}
	for _, d := range dels {
		if err := tx.Bucket(d.b).Delete(d.k); err != nil {
			return err
		}
	}
	tx.jobsChanged = true
	return nil
}

func loadJob(tx *txn, id string) (*statev1.JobRecord, bool, error) {
	rec := &statev1.JobRecord{}
	err := get(tx.Bucket(bucketJobs), id, rec)
	if err == ErrNotFound {
		return nil, false, nil
	}
	return rec, err == nil, err
}

func applySubmitJob(tx *txn, at time.Time, msg proto.Message) error {
	rec := msg.(*statev1.SubmitJob).GetJob()
	j := rec.GetJob()
	if j == nil || j.Id == "" || j.GetSpec().GetImage() == "" || j.OwnerTokenId == "" {
		return fmt.Errorf("%w: a job needs an id, an image and an owner", ErrInvalid)
	}
	if k := j.Spec.IdempotencyKey; k != "" && tx.Bucket(bucketJobKeys).Get(ownerKey(j.OwnerTokenId, k)) != nil {
		return nil // the proposer reads the earlier job by its key
	}
	if tx.Bucket(bucketJobs).Get([]byte(j.Id)) != nil {
		return fmt.Errorf("job %s %w", j.Id, ErrExists)
	}
	rec = proto.Clone(rec).(*statev1.JobRecord)
	j = rec.Job
	j.State = ccv1.JobState_JOB_STATE_QUEUED
	j.Seq = tx.index
	j.Attempts = nil
	j.CreatedAt, j.UpdatedAt = ts(at), ts(at)
	j.StartedAt, j.FinishedAt, j.ExpiresAt = nil, nil, nil
	j.WebhookState, j.Message, j.CancelRequested = "", "", false
	if j.Spec.Queue == "" {
		j.Spec.Queue = jobspec.DefaultQueue
	}
	if d := j.Spec.InputDigest; d != "" {
		in := &statev1.InputRecord{}
		if err := get(tx.Bucket(bucketInputs), d, in); err == nil {
			in.LastUsedAt = ts(at)
			if err := put(tx.Bucket(bucketInputs), d, in); err != nil {
				return err
			}
		}
	}
	return saveJob(tx, nil, rec)
}

// MaxInputOwners bounds the tokens an input record remembers; the oldest
// are forgotten first.
const MaxInputOwners = 64

// InputTTL is how long an input record lives after its last upload or use.
const InputTTL = 7 * 24 * time.Hour

func applyPutInput(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.PutInput).GetInput()
	if m.GetDigest() == "" || len(m.GetOwners()) != 1 || m.Owners[0] == "" {
		return fmt.Errorf("%w: an input needs a digest and one owner", ErrInvalid)
	}
	b := tx.Bucket(bucketInputs)
	in := &statev1.InputRecord{}
	if err := get(b, m.Digest, in); err == ErrNotFound {
		in = &statev1.InputRecord{Digest: m.Digest, Size: m.Size, UploadedAt: ts(at)}
	} else if err != nil {
		return err
	}
	owner := m.Owners[0]
	kept := in.Owners[:0]
	for _, o := range in.Owners {
		if o != owner {
			kept = append(kept, o)
		}
	}
	in.Owners = append(kept, owner)
	if n := len(in.Owners); n > MaxInputOwners {
		in.Owners = in.Owners[n-MaxInputOwners:]
	}
	in.LastUsedAt = ts(at)
	return put(b, m.Digest, in)
}

func opExpireInput(tx *txn, at time.Time, digest string) error {
	in := &statev1.InputRecord{}
	if err := get(tx.Bucket(bucketInputs), digest, in); err != nil {
		return nil
	}
	if in.LastUsedAt != nil && in.LastUsedAt.AsTime().Add(InputTTL).After(at) {
		return nil
	}
	return tx.Bucket(bucketInputs).Delete([]byte(digest))
}

// Input returns the record of an uploaded job input.
func (f *FSM) Input(digest string) (*statev1.InputRecord, error) {
	return one(f, bucketInputs, "input", digest, &statev1.InputRecord{})
}

// ExpiredInputs returns the inputs not uploaded or used for InputTTL.
func (f *FSM) ExpiredInputs(now time.Time) ([]string, error) {
	var out []string
	err := f.View(func(tx *bolt.Tx) error {
		return each(tx, bucketInputs, func() *statev1.InputRecord { return &statev1.InputRecord{} }, func(in *statev1.InputRecord) {
			if in.LastUsedAt == nil || !in.LastUsedAt.AsTime().Add(InputTTL).After(now) {
				out = append(out, in.Digest)
			}
		})
	})
	return out, err
}

func applyCancelJob(tx *txn, at time.Time, msg proto.Message) error {
	id := msg.(*statev1.CancelJob).GetId()
	rec, ok, err := loadJob(tx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	j := rec.Job
	switch {
	case JobFinished(j.State) || j.CancelRequested:
		return nil
	case j.State == ccv1.JobState_JOB_STATE_QUEUED:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_CANCELLED, "cancelled while queued")
		return saveJob(tx, old, rec)
	}
	// Assigned or running: stop its attempt's container.
	a := currentAttempt(j)
	crec, found, err := loadTask(tx, a.GetId())
	if err != nil {
		return err
	}
	if !found || crec.Container.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_ASSIGNED ||
		crec.Container.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_PENDING {
		// Not started: nothing to stop or collect.
		if a != nil {
			a.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
			a.Error = "cancelled before it started"
			a.FinishedAt = ts(at)
		}
		if found {
			if err := deleteContainer(tx, crec); err != nil {
				return err
			}
		}
		finishJob(rec, at, ccv1.JobState_JOB_STATE_CANCELLED, "cancelled before it started")
		return saveJob(tx, old, rec)
	}
	j.CancelRequested = true
	j.Message = "cancel requested: stopping"
	j.UpdatedAt = ts(at)
	c := crec.Container
	if c.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED {
		c.Desired = ccv1.DesiredState_DESIRED_STATE_STOPPED
		c.Generation++
		c.Message = "job cancelled"
		crec.StopTimeoutMs = jobspec.KillGrace(j.Spec).Milliseconds()
		c.UpdatedAt = ts(at)
		tx.touched.node(c.NodeId)
		if err := put(tx.Bucket(bucketContainers), c.Id, crec); err != nil {
			return err
		}
	}
	return saveJob(tx, old, rec)
}

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

func applyJobOps(tx *txn, at time.Time, msg proto.Message) error {
	for _, op := range msg.(*statev1.JobOps).GetOps() {
		var err error
		switch o := op.Op.(type) {
		case *statev1.JobOp_Start:
			err = opStartJobAttempt(tx, at, o.Start)
		case *statev1.JobOp_FailAttempt:
			err = opFailJobAttempt(tx, at, o.FailAttempt)
		case *statev1.JobOp_Webhook:
			err = opWebhookResult(tx, at, o.Webhook)
		case *statev1.JobOp_Expire:
			err = opExpireJob(tx, at, o.Expire)
		case *statev1.JobOp_Pending:
			err = opJobPending(tx, at, o.Pending)
		case *statev1.JobOp_ExpireInput:
			err = opExpireInput(tx, at, o.ExpireInput)
		default:
			return fmt.Errorf("%w: unknown job op", ErrInvalid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func opStartJobAttempt(tx *txn, at time.Time, o *statev1.StartJobAttempt) error {
	rec, ok, err := loadJob(tx, o.JobId)
	if err != nil || !ok {
		return err
	}
	j := rec.Job
	if j.State != ccv1.JobState_JOB_STATE_QUEUED || int(o.Attempt) != len(j.Attempts)+1 || o.ContainerId == "" {
		return nil
	}
	if tx.Bucket(bucketNodes).Get([]byte(o.NodeId)) == nil || tx.Bucket(bucketContainers).Get([]byte(o.ContainerId)) != nil {
		return nil
	}
	name := jobspec.AttemptName(j.Id, o.Attempt)
	if tx.Bucket(bucketContainerNames).Get([]byte(name)) != nil {
		return nil
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	c := &ccv1.Container{
		Id:          o.ContainerId,
		Name:        name,
		Spec:        jobspec.AttemptSpec(j),
		NodeId:      o.NodeId,
		Desired:     ccv1.DesiredState_DESIRED_STATE_RUNNING,
		Status:      &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED},
		CreatedAt:   ts(at),
		UpdatedAt:   ts(at),
		Generation:  1,
		ImageDigest: rec.ImageDigest,
		AssignedAt:  ts(at),
		JobId:       j.Id,
	}
	if err := insertContainer(tx, &statev1.ContainerRecord{Container: c, StopTimeoutMs: jobspec.KillGrace(j.Spec).Milliseconds()}); err != nil {
		return err
	}
	j.Attempts = append(j.Attempts, &ccv1.JobAttempt{
		Id:         c.Id,
		Number:     o.Attempt,
		NodeId:     o.NodeId,
		State:      ccv1.ContainerState_CONTAINER_STATE_ASSIGNED,
		AssignedAt: ts(at),
	})
	j.State = ccv1.JobState_JOB_STATE_ASSIGNED
	j.Message = ""
	j.UpdatedAt = ts(at)
	return saveJob(tx, old, rec)
}

func opFailJobAttempt(tx *txn, at time.Time, o *statev1.FailJobAttempt) error {
	rec, ok, err := loadJob(tx, o.JobId)
	if err != nil || !ok {
		return err
	}
	j := rec.Job
	a := currentAttempt(j)
	if !JobActive(j.State) || a == nil || a.Id != o.ContainerId {
		return nil
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	a.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
	a.Error = o.Error
	a.FinishedAt = ts(at)
	if crec, found, err := loadTask(tx, a.Id); err != nil {
		return err
	} else if found {
		if err := deleteContainer(tx, crec); err != nil {
			return err
		}
	}
	switch {
	case j.CancelRequested:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_CANCELLED, "cancelled ("+o.Error+")")
	case o.TimedOut:
		a.TimedOut = true
		finishJob(rec, at, ccv1.JobState_JOB_STATE_TIMED_OUT, o.Error)
	default:
		retryOrFail(rec, at, o.Error)
	}
	return saveJob(tx, old, rec)
}

func opWebhookResult(tx *txn, at time.Time, o *statev1.WebhookResult) error {
	rec, ok, err := loadJob(tx, o.JobId)
	if err != nil || !ok || rec.Job.WebhookState != WebhookPending || o.State == "" || o.State == WebhookPending {
		return err
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	rec.Job.WebhookState = o.State
	rec.Job.UpdatedAt = ts(at)
	return saveJob(tx, old, rec)
}

func opExpireJob(tx *txn, at time.Time, id string) error {
	rec, ok, err := loadJob(tx, id)
	if err != nil || !ok {
		return err
	}
	j := rec.Job
	if !JobFinished(j.State) || j.ExpiresAt == nil || j.ExpiresAt.AsTime().After(at) {
		return nil
	}
	return deleteJob(tx, rec)
}

func opJobPending(tx *txn, at time.Time, o *statev1.JobPending) error {
	rec, ok, err := loadJob(tx, o.JobId)
	if err != nil || !ok {
		return err
	}
	j := rec.Job
	if j.State != ccv1.JobState_JOB_STATE_QUEUED || j.Message == o.Reason {
		return nil
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	j.Message = o.Reason
	return saveJob(tx, old, rec)
}

// attemptReported folds a job attempt's new container status into its job:
// running, then, once the agent reports the attempt ended and its output
// stored (or it could not start), the job's end or its next attempt. A
// report about an attempt that is not the job's current one (superseded
// after a failover) changes nothing. A finished attempt's container record
// is deleted, so its node removes the container and its sandbox.
func attemptReported(tx *txn, at time.Time, crec *statev1.ContainerRecord) error {
	c := crec.Container
	rec, ok, err := loadJob(tx, c.JobId)
	if err != nil || !ok {
		return err
	}
	j := rec.Job
	a := currentAttempt(j)
	if JobFinished(j.State) || !JobActive(j.State) || a == nil || a.Id != c.Id {
		return nil
	}
	old := proto.Clone(rec).(*statev1.JobRecord)
	st := c.GetStatus()
	jr := st.GetJobResult()
	a.State = st.GetState()
	a.StartedAt = st.GetStartedAt()
	a.ExitCode = st.GetExitCode()
	a.OomKilled = st.GetOomKilled()
	switch st.GetState() {
	case ccv1.ContainerState_CONTAINER_STATE_RUNNING:
		if j.State == ccv1.JobState_JOB_STATE_RUNNING {
			return nil
		}
		j.State = ccv1.JobState_JOB_STATE_RUNNING
		if j.StartedAt == nil {
			j.StartedAt = st.GetStartedAt()
			if j.StartedAt == nil {
				j.StartedAt = ts(at)
			}
		}
		j.Message = ""
		j.UpdatedAt = ts(at)
		return saveJob(tx, old, rec)
	case ccv1.ContainerState_CONTAINER_STATE_EXITED:
		if !jr.GetCollected() {
			if j.State == ccv1.JobState_JOB_STATE_RUNNING && j.Message == "collecting output" {
				return nil
			}
			j.State = ccv1.JobState_JOB_STATE_RUNNING
			if j.StartedAt == nil {
				j.StartedAt = st.GetStartedAt()
			}
			j.Message = "collecting output"
			j.UpdatedAt = ts(at)
			return saveJob(tx, old, rec)
		}
	case ccv1.ContainerState_CONTAINER_STATE_FAILED:
	default:
		return nil
	}

	// The attempt ended.
	a.FinishedAt = st.GetFinishedAt()
	if a.FinishedAt == nil {
		a.FinishedAt = ts(at)
	}
	a.TimedOut = jr.GetTimedOut()
	a.Error = jr.GetError()
	if a.Error == "" && st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
		a.Error = "could not start: " + st.GetError()
	}
	if jr.GetCollected() {
		j.OutputDigest, j.OutputSize, j.OutputFiles = jr.OutputDigest, jr.OutputSize, jr.OutputFiles
		j.LogsDigest = jr.LogsDigest
	}
	if j.StartedAt == nil {
		j.StartedAt = st.GetStartedAt()
	}
	j.ExitCode = st.GetExitCode()
	switch {
	case j.CancelRequested:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_CANCELLED, "cancelled")
	case a.TimedOut:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_TIMED_OUT, fmt.Sprintf("ran longer than its timeout of %s and was stopped", jobspec.Timeout(j.Spec)))
	case jr.GetError() != "":
		finishJob(rec, at, ccv1.JobState_JOB_STATE_FAILED, jr.GetError())
	case st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED:
		j.ExitCode = 0
		retryOrFail(rec, at, a.Error)
	case st.GetExitCode() == 0:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_SUCCEEDED, "")
	default:
		why := fmt.Sprintf("exited with code %d", st.GetExitCode())
		if st.GetOomKilled() {
			why += " (killed: out of memory)"
		}
		if j.Spec.RetryOnFailure {
			retryOrFail(rec, at, why)
		} else {
			finishJob(rec, at, ccv1.JobState_JOB_STATE_FAILED, why)
		}
	}
	if err := deleteContainer(tx, crec); err != nil {
		return err
	}
	return saveJob(tx, old, rec)
}

func applySetQueue(tx *txn, _ time.Time, msg proto.Message) error {
	q := msg.(*statev1.SetQueue).GetQueue()
	if err := jobspec.ValidQueueName(q.GetName()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return put(tx.Bucket(bucketQueues), q.Name, q)
}

// ---- reads ----

// Job returns one job record.
func (f *FSM) Job(id string) (*statev1.JobRecord, error) {
	return one(f, bucketJobs, "job", id, &statev1.JobRecord{})
}

// JobIDByKey returns the job an owner submitted with an idempotency key.
func (f *FSM) JobIDByKey(owner, key string) (string, error) {
	var id string
	err := f.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobKeys).Get(ownerKey(owner, key))
		if v == nil {
			return ErrNotFound
		}
		id = string(v)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("job with idempotency key %q: %w", key, err)
	}
	return id, nil
}

// JobIDsWithPrefix returns up to max job ids that start with prefix.
func (f *FSM) JobIDsWithPrefix(prefix string, max int) ([]string, error) {
	var out []string
	err := f.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)) && len(out) < max; k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}

// JobFilter selects jobs in ListJobs.
type JobFilter struct {
	State  ccv1.JobState // 0: any
	Queue  string
	Labels map[string]string
}

func (flt JobFilter) match(j *ccv1.Job) bool {
	if flt.State != 0 && j.State != flt.State {
		return false
	}
	if flt.Queue != "" && jobQueue(j) != flt.Queue {
		return false
	}
	for k, v := range flt.Labels {
		if lv, ok := j.GetSpec().GetLabels()[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// ListJobs returns up to limit jobs matching flt, newest first, starting
// below seq before (0: from the newest). next is the seq to continue from,
// 0 when there are no more.
func (f *FSM) ListJobs(flt JobFilter, limit int, before uint64) (jobs []*ccv1.Job, next uint64, err error) {
	err = f.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJobs)
		var c *bolt.Cursor
		var prefix []byte
		var start []byte
		switch {
		case flt.Queue != "":
			// A queue's jobs: fewer than a state's when there are many
			// queues; the state is checked job by job.
			c = tx.Bucket(bucketJobQSeq).Cursor()
			prefix = append([]byte(flt.Queue), 0)
			if before != 0 {
				start = qseqKey(flt.Queue, before)
			} else {
				start = append([]byte(flt.Queue), 1)
			}
		case flt.State != 0:
			c = tx.Bucket(bucketJobState).Cursor()
			prefix = []byte{byte(flt.State)}
			if before != 0 {
				start = stateKey(flt.State, before)
			} else {
				start = []byte{byte(flt.State) + 1}
			}
		default:
			c = tx.Bucket(bucketJobSeq).Cursor()
			if before != 0 {
				start = seqKey(before)
			}
		}
		// Position on the last key below start.
		var k, v []byte
		if start == nil {
			k, v = c.Last()
		} else {
			k, v = c.Seek(start)
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			rec := &statev1.JobRecord{}
			if err := get(jb, string(v), rec); err != nil {
				return err
			}
			if !flt.match(rec.Job) {
				continue
			}
			if len(jobs) == limit {
				next = jobs[len(jobs)-1].Seq
				return nil
			}
			jobs = append(jobs, rec.Job)
		}
		return nil
	})
	return jobs, next, err
}

// JobChanges returns the jobs changed after raft index since (deleted ones
// are not listed), and the applied index the read saw.
func (f *FSM) JobChanges(since uint64) (jobs []*ccv1.Job, index uint64, err error) {
	err = f.View(func(tx *bolt.Tx) error {
		index = readIndex(tx)
		jb := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketJobUpdated).Cursor()
		for k, _ := c.Seek(u64(since + 1)); k != nil; k, _ = c.Next() {
			rec := &statev1.JobRecord{}
			if err := get(jb, string(k[8:]), rec); err != nil {
				return err
			}
			jobs = append(jobs, rec.Job)
		}
		return nil
	})
	return jobs, index, err
}

// JobsWatch returns a channel closed after the next applied batch that
// changed a job.
func (f *FSM) JobsWatch() <-chan struct{} {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	return f.jobWatch
}

// QueueInfo is a queue with its counts.
type QueueInfo struct {
	Name       string
	MaxRunning uint32
	Queued     uint64
	Running    uint64 // assigned or running
}

// DispatchState is what the job dispatcher decides from, read in one
// transaction.
type DispatchState struct {
	Queues map[string]*QueueInfo
	// Heads holds, per queue with queued jobs, its first jobs in dispatch
	// order (at most the limit given).
	Heads map[string][]*statev1.JobRecord
	// Active holds every assigned or running job.
	Active []*statev1.JobRecord
	Index  uint64
}

// ReadDispatch reads queues, the first perQueue queued jobs of each queue
// and every active job. With perQueue < 0 it reads no heads but counts
// every queued job (for ListQueues).
func (f *FSM) ReadDispatch(perQueue int) (*DispatchState, error) {
	st := &DispatchState{Queues: map[string]*QueueInfo{}, Heads: map[string][]*statev1.JobRecord{}}
	queue := func(name string) *QueueInfo {
		q := st.Queues[name]
		if q == nil {
			q = &QueueInfo{Name: name}
			st.Queues[name] = q
		}
		return q
	}
	err := f.View(func(tx *bolt.Tx) error {
		st.Index = readIndex(tx)
		if err := each(tx, bucketQueues, func() *statev1.QueueRecord { return &statev1.QueueRecord{} }, func(q *statev1.QueueRecord) {
			queue(q.Name).MaxRunning = q.MaxRunning
		}); err != nil {
			return err
		}
		jb := tx.Bucket(bucketJobs)
		for _, s := range []ccv1.JobState{ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING} {
			c := tx.Bucket(bucketJobState).Cursor()
			p := []byte{byte(s)}
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				rec := &statev1.JobRecord{}
				if err := get(jb, string(v), rec); err != nil {
					return err
				}
				st.Active = append(st.Active, rec)
				queue(jobQueue(rec.Job)).Running++
			}
		}
		c := tx.Bucket(bucketJobQueue).Cursor()
		for k, v := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				k, v = c.Next()
				continue
			}
			name := string(k[:i])
			q := queue(name)
			if perQueue < 0 {
				q.Queued++
				k, v = c.Next()
				continue
			}
			if len(st.Heads[name]) < perQueue {
				rec := &statev1.JobRecord{}
				if err := get(jb, string(v), rec); err != nil {
					return err
				}
				st.Heads[name] = append(st.Heads[name], rec)
				k, v = c.Next()
				continue
			}
			// Skip the rest of this queue.
			k, v = c.Seek(append([]byte(name), 1))
		}
		return nil
	})
	return st, err
}

// ExpiredJobs returns up to max finished jobs whose output expired by now.
func (f *FSM) ExpiredJobs(now time.Time, max int) ([]string, error) {
	var out []string
	err := f.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobExpiry).Cursor()
		lim := u64(uint64(now.UnixNano()))
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], lim) <= 0 && len(out) < max; k, _ = c.Next() {
			out = append(out, string(k[8:]))
		}
		return nil
	})
	return out, err
}

// PendingWebhooks returns the jobs whose completion webhook is due.
func (f *FSM) PendingWebhooks() ([]*statev1.JobRecord, error) {
	var out []*statev1.JobRecord
	err := f.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(bucketJobs)
		return tx.Bucket(bucketJobWebhooks).ForEach(func(k, _ []byte) error {
			rec := &statev1.JobRecord{}
			if err := get(jb, string(k), rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// BlobsInUse returns every blob digest the state refers to: image archives,
// recorded inputs, and jobs' inputs, outputs and logs.
func (f *FSM) BlobsInUse() (map[string]bool, error) {
	used := map[string]bool{}
	err := f.View(func(tx *bolt.Tx) error {
		if err := each(tx, bucketImages, func() *ccv1.Image { return &ccv1.Image{} }, func(img *ccv1.Image) {
			used[img.Digest] = true
		}); err != nil {
			return err
		}
		if err := each(tx, bucketInputs, func() *statev1.InputRecord { return &statev1.InputRecord{} }, func(in *statev1.InputRecord) {
			used[in.Digest] = true
		}); err != nil {
			return err
		}
		return each(tx, bucketJobs, func() *statev1.JobRecord { return &statev1.JobRecord{} }, func(r *statev1.JobRecord) {
			for _, d := range []string{r.Job.GetSpec().GetInputDigest(), r.Job.OutputDigest, r.Job.LogsDigest} {
				if d != "" {
					used[d] = true
				}
			}
		})
	})
	return used, err
}
