package fsm

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

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

// Queue returns one queue record; a queue without one is ErrNotFound.
func (f *FSM) Queue(name string) (*statev1.QueueRecord, error) {
	return one(f, bucketQueues, "queue", name, &statev1.QueueRecord{})
}

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
	// AllowNetwork lets jobs tokens submit jobs with network to the queue.
	AllowNetwork bool
	Queued       uint64
	Running      uint64 // assigned or running
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
			queue(q.Name).AllowNetwork = q.AllowNetwork
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
// recorded inputs, jobs' inputs, outputs and logs, and the bundles of
// every kept site version.
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
		if err := siteBlobs(tx, used); err != nil {
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

// JobStateCounts counts the jobs in each state, from the state index (no
// record is read), and returns the applied index the read saw.
func (f *FSM) JobStateCounts() (map[ccv1.JobState]uint64, uint64, error) {
	out := map[ccv1.JobState]uint64{}
	var index uint64
	err := f.View(func(tx *bolt.Tx) error {
		index = readIndex(tx)
		c := tx.Bucket(bucketJobState).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) > 0 {
				out[ccv1.JobState(k[0])]++
			}
		}
		return nil
	})
	return out, index, err
}
