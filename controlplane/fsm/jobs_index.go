package fsm

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

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

// appendFill is how full bbolt fills a page before it splits it, in the
// buckets whose keys grow with the raft index (bbolt's default is half):
// new keys go at the end, so full pages stay full and the index takes about
// half the pages.
const appendFill = 0.9

// appendBucket returns a bucket whose new keys mostly come last, filling
// its pages to appendFill.
func appendBucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = appendFill
	return b
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
	states := appendBucket(tx.Tx, bucketJobState)
	queue := appendBucket(tx.Tx, bucketJobQueue)
	expiry := tx.Bucket(bucketJobExpiry)
	hooks := tx.Bucket(bucketJobWebhooks)
	updated := appendBucket(tx.Tx, bucketJobUpdated)
	if old == nil {
		if err := appendBucket(tx.Tx, bucketJobSeq).Put(seqKey(j.Seq), id); err != nil {
			return err
		}
		if err := appendBucket(tx.Tx, bucketJobQSeq).Put(qseqKey(jobQueue(j), j.Seq), id); err != nil {
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
	if tx.observe {
		if e, ok := jobEvent(old, rec); ok {
			tx.jobEvents = append(tx.jobEvents, e)
		}
	}
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
