package session

import (
	"context"
	"sort"
	"sync"
	"time"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// statusRetryAfter is the wait before statuses whose write failed are
// written again (sooner when newer ones arrive).
const statusRetryAfter = 100 * time.Millisecond

// statusBuffer holds the statuses received and not yet written, the newest
// per container. They are written by group commit (runStatusWriter): a
// status that arrives while no write is in flight is written at once; the
// ones that arrive during a write go together in the next, as soon as it
// returns. So a single report costs no wait, and thousands of nodes
// reporting at once make one raft entry per write round trip instead of
// one each. A failed write leaves them here for the next (a newer report
// of the same container replaces them), so none is lost and no session
// ends for it.
type statusBuffer struct {
	mu      sync.Mutex
	pending map[string]map[string]*ccv1.TaskStatus // node id → container id → status
	// ready (buffered 1) holds a token while statuses wait for a write.
	ready chan struct{}
}

func newStatusBuffer() *statusBuffer {
	return &statusBuffer{pending: map[string]map[string]*ccv1.TaskStatus{}, ready: make(chan struct{}, 1)}
}

// signal wakes the writer.
func (b *statusBuffer) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// add keeps the newer of two statuses of a container: a higher generation,
// or the same generation observed later.
func (b *statusBuffer) add(nodeID string, sts []*ccv1.TaskStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.pending[nodeID]
	if m == nil {
		m = map[string]*ccv1.TaskStatus{}
		b.pending[nodeID] = m
	}
	for _, st := range sts {
		if old := m[st.ContainerId]; old != nil && newerStatus(old, st) {
			continue
		}
		m[st.ContainerId] = st
	}
	b.signal()
}

func newerStatus(a, b *ccv1.TaskStatus) bool {
	if a.Generation != b.Generation {
		return a.Generation > b.Generation
	}
	return a.GetObservedAt().AsTime().After(b.GetObservedAt().AsTime())
}

// take empties the buffer into one command.
func (b *statusBuffer) take() *statev1.ReportStatuses {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	out := &statev1.ReportStatuses{}
	for node, m := range b.pending {
		r := &statev1.ReportStatus{NodeId: node}
		for _, st := range m {
			r.Statuses = append(r.Statuses, st)
		}
		sort.Slice(r.Statuses, func(i, j int) bool { return r.Statuses[i].ContainerId < r.Statuses[j].ContainerId })
		out.Reports = append(out.Reports, r)
	}
	sort.Slice(out.Reports, func(i, j int) bool { return out.Reports[i].NodeId < out.Reports[j].NodeId })
	b.pending = map[string]map[string]*ccv1.TaskStatus{}
	return out
}

// putBack returns statuses a failed write did not store, unless newer
// ones arrived meanwhile.
func (b *statusBuffer) putBack(r *statev1.ReportStatuses) {
	for _, rep := range r.Reports {
		b.mu.Lock()
		m := b.pending[rep.NodeId]
		if m == nil {
			m = map[string]*ccv1.TaskStatus{}
			b.pending[rep.NodeId] = m
		}
		for _, st := range rep.Statuses {
			if cur := m[st.ContainerId]; cur == nil || newerStatus(st, cur) {
				m[st.ContainerId] = st
			}
		}
		b.mu.Unlock()
	}
}

// flushLoop writes the buffered statuses through raft by group commit
// until ctx ends, then once more.
func (hub *Hub) flushLoop(ctx context.Context) {
	runStatusWriter(ctx, hub.status, statusRetryAfter, hub.writeStatus)
}

// writeStatus writes one batch of statuses as one raft command.
func (hub *Hub) writeStatus(ctx context.Context, r *statev1.ReportStatuses) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := hub.raft.Propose(wctx, statev1.CommandType_COMMAND_TYPE_REPORT_STATUSES, r, time.Now())
	if err != nil {
		n := 0
		for _, rep := range r.Reports {
			n += len(rep.Statuses)
		}
		hub.log.Warn("could not store container status; keeping it for the next try", "nodes", len(r.Reports), "statuses", n, "err", err)
	}
	return err
}

// runStatusWriter writes what b holds with write, one batch at a time:
// when statuses arrive and no write is in flight, at once; those that
// arrive during a write, together, as soon as it returns. A failed batch
// goes back into b and is written again after retry, or with the next
// statuses to arrive after that. When ctx ends, it writes what is left
// once more (for at most 2 seconds) and returns.
func runStatusWriter(ctx context.Context, b *statusBuffer, retry time.Duration, write func(context.Context, *statev1.ReportStatuses) error) {
	flush := func(ctx context.Context) bool {
		r := b.take()
		if r == nil {
			return true
		}
		if err := write(ctx, r); err != nil {
			b.putBack(r)
			return false
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
		case <-b.ready:
		}
		if ctx.Err() != nil {
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			flush(fctx)
			cancel()
			return
		}
		if flush(ctx) {
			continue
		}
		// Do not spin on a failing write: wait, then try again.
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		b.signal()
	}
}
