package fsm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// BenchmarkListQueuedJobs measures the first page of queued jobs (what
// `ccctl job ls --state queued` asks) with 100,000 jobs in the state, a
// tenth of them finished: a range scan of the state index, whatever the
// number of jobs.
func BenchmarkListQueuedJobs(b *testing.B) {
	const (
		jobs  = 100_000
		batch = 2_000
	)
	path := filepath.Join(b.TempDir(), "state.db")
	f, err := fsm.Open(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	at := time.Unix(1_700_000_000, 0)
	var idx uint64
	logs := make([]*raft.Log, 0, batch)
	flush := func() {
		for i, res := range f.ApplyBatch(logs) {
			if err := res.(fsm.Result).Err; err != nil {
				b.Fatalf("entry %d: %v", logs[i].Index, err)
			}
		}
		logs = logs[:0]
	}
	for i := range jobs {
		data, err := fsm.Encode(statev1.CommandType_COMMAND_TYPE_SUBMIT_JOB, &statev1.SubmitJob{Job: &statev1.JobRecord{Job: &ccv1.Job{
			Id: jobID(i), OwnerTokenId: "tok",
			Spec: &ccv1.JobSpec{Image: "docker.io/library/busybox:latest", Command: []string{"sh", "-c", "echo hi"}, Queue: []string{"default", "batch"}[i%2],
				Labels: map[string]string{"run": fmt.Sprint(i / 1000)}, Resources: &ccv1.ContainerResources{MemoryBytes: 512 << 20, CpuMillis: 1000, Pids: 512}},
		}}}, at)
		if err != nil {
			b.Fatal(err)
		}
		idx++
		logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
		if i%10 == 0 {
			// A tenth is cancelled: the queued index is not every job.
			data, err := fsm.Encode(statev1.CommandType_COMMAND_TYPE_CANCEL_JOB, &statev1.CancelJob{Id: jobID(i)}, at)
			if err != nil {
				b.Fatal(err)
			}
			idx++
			logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
		}
		if len(logs) >= batch {
			flush()
		}
	}
	flush()
	// What a job costs on disk (bbolt pages of the record and its
	// indexes), reported after the loop (ResetTimer drops metrics).
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	defer b.ReportMetric(float64(fi.Size())/jobs, "state-bytes/job")
	flt := fsm.JobFilter{State: ccv1.JobState_JOB_STATE_QUEUED}
	first, next, err := f.ListJobs(flt, 50, 0)
	if err != nil || len(first) != 50 || next == 0 {
		b.Fatalf("ListJobs: %d jobs, next %d, %v", len(first), next, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, _, err := f.ListJobs(flt, 50, 0)
		if err != nil || len(page) != 50 {
			b.Fatalf("ListJobs: %d jobs, %v", len(page), err)
		}
	}
	b.StopTimer()
	// The next pages cost the same: they start by seeking.
	if page, _, err := f.ListJobs(flt, 50, next); err != nil || len(page) != 50 || page[0].Seq >= next {
		b.Fatalf("second page: %d jobs, %v", len(page), err)
	}
}

// jobID is the id of the i-th job: random-looking, as the API's are.
func jobID(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:16])
}
