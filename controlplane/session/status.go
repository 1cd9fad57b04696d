package session

import (
	"context"
	"sort"
	"sync"
	"time"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// statusFlushEvery is how often a server writes the status its sessions
// received: one raft entry for all its nodes instead of one per report,
// which keeps thousands of nodes from queueing thousands of forwarded
// writes when their containers start at once.
const statusFlushEvery = 100 * time.Millisecond

// statusBuffer holds the statuses received and not yet written, the newest
// per container. A failed write leaves them here for the next flush (a
// newer report of the same container replaces them), so none is lost and
// no session ends for it.
type statusBuffer struct {
	mu      sync.Mutex
	pending map[string]map[string]*ccv1.TaskStatus // node id → container id → status
}

func newStatusBuffer() *statusBuffer {
	return &statusBuffer{pending: map[string]map[string]*ccv1.TaskStatus{}}
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

// flushLoop writes the buffered statuses every statusFlushEvery until ctx
// ends, then once more.
func (hub *Hub) flushLoop(ctx context.Context) {
	t := time.NewTicker(statusFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			hub.flushStatus(fctx)
			cancel()
			return
		case <-t.C:
		}
		hub.flushStatus(ctx)
	}
}

func (hub *Hub) flushStatus(ctx context.Context) {
	r := hub.status.take()
	if r == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n := 0
	for _, rep := range r.Reports {
		n += len(rep.Statuses)
	}
	if _, err := hub.raft.Propose(wctx, statev1.CommandType_COMMAND_TYPE_REPORT_STATUSES, r, time.Now()); err != nil {
		hub.status.putBack(r)
		hub.log.Warn("could not store container status; keeping it for the next try", "nodes", len(r.Reports), "statuses", n, "err", err)
	}
}
