package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

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
	// The quotas are checked here too, so that servers racing to take
	// jobs of one token cannot together go over them.
	settings, err := storedSettings(tx.Tx)
	if err != nil {
		return err
	}
	if err := checkJobQuotas(tx.Tx, settings.GetQuotas(), j.OwnerTokenId); err != nil {
		return err
	}
	rec = proto.Clone(rec).(*statev1.JobRecord)
	rec.TraceContext = tx.trace
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
		tx.touched.task(c)
		if err := put(tx.Bucket(bucketContainers), c.Id, crec); err != nil {
			return err
		}
	}
	return saveJob(tx, old, rec)
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
	// The attempt continues the trace of its dispatch, or of the
	// job's submit.
	tc := o.TraceContext
	if len(tc) == 0 {
		tc = rec.TraceContext
	}
	if err := insertContainer(tx, &statev1.ContainerRecord{Container: c, StopTimeoutMs: jobspec.KillGrace(j.Spec).Milliseconds(), TraceContext: tc}); err != nil {
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
	// A node may name only blobs it uploaded for this attempt: another
	// job's output would otherwise be served as this job's.
	forged := ""
	if jr.GetCollected() {
		forged = unuploadedDigest(crec, jr)
	}
	if jr.GetCollected() && forged == "" {
		j.OutputDigest, j.OutputSize, j.OutputFiles = jr.OutputDigest, jr.OutputSize, jr.OutputFiles
		j.LogsDigest = jr.LogsDigest
	}
	if forged != "" {
		a.Error = forged
	}
	if j.StartedAt == nil {
		j.StartedAt = st.GetStartedAt()
	}
	j.ExitCode = st.GetExitCode()
	switch {
	case j.CancelRequested:
		finishJob(rec, at, ccv1.JobState_JOB_STATE_CANCELLED, "cancelled")
	case forged != "":
		retryOrFail(rec, at, forged)
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

// unuploadedDigest checks the digests of a collected attempt's result
// against the blobs its node uploaded for it (RecordAttemptUpload): "" when
// every one was, else why the report is refused.
func unuploadedDigest(crec *statev1.ContainerRecord, jr *ccv1.JobResult) string {
	c := crec.GetContainer()
	check := func(kind, digest string, uploaded []string) string {
		if digest == "" || slices.Contains(uploaded, digest) {
			return ""
		}
		return fmt.Sprintf("node %s reported %s %s for attempt %s, which it did not upload for it: the report is refused", c.GetNodeId(), kind, digest, c.GetId())
	}
	if why := check("output", jr.GetOutputDigest(), crec.GetUploadedOutputs()); why != "" {
		return why
	}
	return check("logs", jr.GetLogsDigest(), crec.GetUploadedLogs())
}

// maxAttemptUploads is how many uploads of each kind an attempt's record
// keeps (an agent retrying an upload sends the same digest again).
const maxAttemptUploads = 8

// applyRecordAttemptUpload records that a job attempt's node uploaded a
// blob for it. An upload for a container that is gone, is not a job
// attempt or is on another node is not recorded.
func applyRecordAttemptUpload(tx *txn, _ time.Time, msg proto.Message) error {
	m := msg.(*statev1.RecordAttemptUpload)
	if m.GetDigest() == "" {
		return fmt.Errorf("%w: an upload needs a digest", ErrInvalid)
	}
	cs := tx.Bucket(bucketContainers)
	var rec statev1.ContainerRecord
	if err := get(cs, m.GetContainerId(), &rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	c := rec.GetContainer()
	if c.GetJobId() == "" || c.GetNodeId() != m.GetNodeId() {
		return nil
	}
	var list *[]string
	switch m.GetKind() {
	case "output":
		list = &rec.UploadedOutputs
	case "logs":
		list = &rec.UploadedLogs
	default:
		return fmt.Errorf("%w: upload kind %q: use output or logs", ErrInvalid, m.GetKind())
	}
	if slices.Contains(*list, m.GetDigest()) {
		return nil
	}
	*list = append(*list, m.GetDigest())
	if n := len(*list); n > maxAttemptUploads {
		*list = append([]string(nil), (*list)[n-maxAttemptUploads:]...)
	}
	return put(cs, c.GetId(), &rec)
}

func applySetQueue(tx *txn, _ time.Time, msg proto.Message) error {
	q := msg.(*statev1.SetQueue).GetQueue()
	if err := jobspec.ValidQueueName(q.GetName()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return put(tx.Bucket(bucketQueues), q.Name, q)
}
