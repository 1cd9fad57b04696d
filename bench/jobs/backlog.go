package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/clusterdial"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// minBacklogMemory bounds the memory probe: a backlog job must ask for more
// than the agent offers (-agent-memory, a few GiB), so that it never runs.
const minBacklogMemory = 64 << 30

func (b *bench) backlogSpec(mem int64) *ccv1.JobSpec {
	return &ccv1.JobSpec{
		Image:     b.o.image,
		Command:   b.o.command,
		Queue:     b.o.backlogQueue,
		Resources: &ccv1.ContainerResources{MemoryBytes: mem},
		Labels:    map[string]string{"bench": "backlog"},
	}
}

// backlogPhase submits the backlog with concurrent clients and measures
// submit throughput and latency, the server's CPU while it takes them, its
// memory before and after, and the size of its state.
func (b *bench) backlogPhase(ctx context.Context) error {
	o, r := b.o, b.r
	r.section(fmt.Sprintf("1. submit the backlog: %d jobs into queue %q, %d concurrent clients (one connection each)", o.backlog, o.backlogQueue, o.clients))
	statePath := filepath.Join(o.dataDir, "state.db")
	raftPath := filepath.Join(o.dataDir, "raft", "raft.db")
	before := benchstat.ReadProc(o.pid)
	db0, raft0 := benchstat.FileSize(statePath), benchstat.FileSize(raftPath)
	r.add("control plane before", "RSS %s; state.db %s, raft.db %s", benchstat.MiB(before.RSS), benchstat.MiB(db0), benchstat.MiB(raft0))

	if _, err := b.jobs.SetQueue(ctx, &ccv1.SetQueueRequest{Name: o.backlogQueue}); err != nil {
		return fmt.Errorf("SetQueue %s: %w", o.backlogQueue, err)
	}
	// The reservation no node fits: the largest the server accepts, from
	// -backlog-memory down.
	mem := o.backlogMemory
	var refused []string
	for {
		_, err := b.jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: b.backlogSpec(mem)})
		if err == nil {
			break
		}
		if status.Code(err) != codes.InvalidArgument || mem/2 < minBacklogMemory {
			return fmt.Errorf("submit a backlog job asking for %s of memory: %w", bytesIEC(mem), err)
		}
		refused = append(refused, bytesIEC(mem))
		mem /= 2
	}
	b.numJobs++
	if len(refused) == 0 {
		r.add("backlog job", "%s, memory_bytes %s (accepted as asked: no node fits it)", strings.Join(o.command, " "), bytesIEC(mem))
	} else {
		r.add("backlog job", "%s, memory_bytes %s (the server refused %s)", strings.Join(o.command, " "), bytesIEC(mem), strings.Join(refused, ", "))
	}

	n := o.backlog - 1 // the probe above was the first
	conns := make([]*clusterdial.Conn, o.clients)
	for i := range conns {
		c, err := b.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
		// Connect before the clock starts.
		if _, err := ccv1.NewJobServiceClient(c).ListQueues(ctx, &ccv1.ListQueuesRequest{}); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
	}
	lat := make(benchstat.Dist, n)
	done := make([]time.Duration, n) // when each submit returned, since t0
	var next, failed, retried, finished atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx0 := b.raftIndex(ctx)
	cpu0 := benchstat.ReadProc(o.pid)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		cl := ccv1.NewJobServiceClient(conns[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= int64(n) || sctx.Err() != nil {
					return
				}
				req := &ccv1.SubmitJobRequest{Spec: b.backlogSpec(mem)}
				var err error
				for try := 0; try < 3; try++ {
					cctx, ccancel := context.WithTimeout(sctx, 30*time.Second)
					start := time.Now()
					_, err = cl.SubmitJob(cctx, req)
					d := time.Since(start)
					ccancel()
					if err == nil {
						lat[k], done[k] = d, time.Since(t0)
						finished.Add(1)
						break
					}
					if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted && c != codes.DeadlineExceeded {
						break
					}
					retried.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					// More than 1% failing: the figures mean nothing.
					if failed.Add(1) > int64(n/100)+1 {
						cancel()
					}
				}
			}
		}()
	}
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		last, lastT := int64(0), t0
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				f := finished.Load()
				rate := float64(f-last) / now.Sub(lastT).Seconds()
				eta := "?"
				if rate > 0 {
					eta = (time.Duration(float64(int64(n)-f)/rate) * time.Second).Round(time.Second).String()
				}
				progress("submitted %d/%d (%.0f jobs/s now, %d failed; about %s left)", f+1, o.backlog, rate, failed.Load(), eta)
				last, lastT = f, now
			}
		}
	}()
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(t0)
	cpu1 := benchstat.ReadProc(o.pid)
	if f := failed.Load(); f > 0 {
		r.add("FAILED submits", "%d (first: %v)", f, firstErr)
		if f > int64(n/100)+1 {
			return fmt.Errorf("%d submits failed; first: %w", f, firstErr)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("submitting the backlog: %w", err)
	}
	ok := benchstat.Dist{}
	for k := range lat {
		if lat[k] > 0 {
			ok = append(ok, lat[k])
		}
	}
	b.numJobs += len(ok)
	rate := float64(len(ok)) / elapsed.Seconds()
	r.add("submitted", "%d jobs in %s: %.0f jobs/s (after the first, which probed the reservation)", len(ok), elapsed.Round(time.Millisecond), rate)
	if rt := retried.Load(); rt > 0 {
		r.add("retried submits", "%d (Unavailable, ResourceExhausted or a 30 s timeout)", rt)
	}
	r.add("submit latency", "%s", ok.Line())
	r.add("jobs/s by tenth of the run", "%s", tenths(done, elapsed))
	if idx1 := b.raftIndex(ctx); idx0 > 0 && idx1 > idx0 {
		r.add("raft entries while submitting", "%d (%.2f per job: the dispatcher's notes and batching included)", idx1-idx0, float64(idx1-idx0)/float64(len(ok)))
	}
	if cpu0.OK && cpu1.OK {
		r.add("control plane CPU while submitting", "%.2f cores (of %d)", (cpu1.CPU-cpu0.CPU).Seconds()/elapsed.Seconds(), benchstat.NProc())
	}
	r.sum("submit: %d jobs timed (after 1 probe), %d gRPC clients: %.0f jobs/s; latency %s", len(ok), o.clients, rate, ok.Line())

	// Every backlog job is queued, and stays so.
	var queued uint64
	if err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		resp, err := b.jobs.ListQueues(ctx, &ccv1.ListQueuesRequest{})
		if err != nil {
			return false, err.Error()
		}
		for _, q := range resp.Queues {
			if q.Name == o.backlogQueue {
				queued = q.Queued
			}
		}
		return queued >= uint64(len(ok)+1), fmt.Sprintf("queue %s: %d queued, want %d", o.backlogQueue, queued, len(ok)+1)
	}); err != nil {
		return fmt.Errorf("the backlog is not all queued: %w", err)
	}
	b.queued = queued
	r.add("queue "+o.backlogQueue, "%d jobs queued (ListQueues)", queued)

	after := benchstat.ReadProc(o.pid)
	db1, raft1 := benchstat.FileSize(statePath), benchstat.FileSize(raftPath)
	r.add("control plane after", "RSS %s (%+.1f MiB, %s per job); state.db %s, raft.db %s",
		benchstat.MiB(after.RSS), float64(after.RSS-before.RSS)/(1<<20), perJob(after.RSS-before.RSS, int(queued)), benchstat.MiB(db1), benchstat.MiB(raft1))
	r.add("  of which", "anonymous %s (heap, stacks), file pages %s (the mapped databases; the kernel drops them under pressure)",
		benchstat.MiB(after.RSSAnon), benchstat.MiB(after.RSSFile))
	r.sum("control plane with %d queued jobs: RSS %s (before: %s; anonymous %s, file pages %s); state.db %s (before: %s); raft.db %s",
		queued, benchstat.MiB(after.RSS), benchstat.MiB(before.RSS), benchstat.MiB(after.RSSAnon), benchstat.MiB(after.RSSFile), benchstat.MiB(db1), benchstat.MiB(db0), benchstat.MiB(raft1))
	return nil
}

// raftIndex is the server's last raft index, 0 if it cannot tell.
func (b *bench) raftIndex(ctx context.Context) uint64 {
	st, err := ccv1.NewClusterServiceClient(b.conn).GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		return 0
	}
	return st.LastIndex
}

// tenths is the submit rate in each tenth of the run's duration.
func tenths(done []time.Duration, elapsed time.Duration) string {
	var counts [10]int
	for _, d := range done {
		if d <= 0 {
			continue
		}
		i := min(int(10*d/elapsed), 9)
		counts[i]++
	}
	parts := make([]string, 10)
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%.0f", float64(c)/(elapsed.Seconds()/10))
	}
	return strings.Join(parts, " ")
}

func perJob(delta int64, n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f KiB", float64(delta)/1024/float64(n))
}

// bytesIEC formats a size with the largest binary unit that divides it
// evenly enough.
func bytesIEC(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v), "0"), ".") + " " + units[i]
}
