package fsm

import (
	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/controlplane/metrics"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// txn is the write transaction of one applied batch, with a note of which
// nodes' assignments the batch changed, so that only their sessions wake.
type txn struct {
	*bolt.Tx
	touched touch
	// index is the raft index of the entry being applied.
	index uint64
	// jobsChanged: the batch changed a job (wakes job watchers).
	jobsChanged bool
	// audited are the audit records the batch wrote.
	audited []*ccv1.AuditEvent
	// tracer starts apply spans; nil: none.
	tracer trace.Tracer
	// trace is the trace context of the command being applied: the
	// records it creates keep it.
	trace map[string]string
	// observe: the batch notes jobEvents, for the metrics.
	observe   bool
	jobEvents []metrics.JobEvent
}

// touch is the set of nodes whose assignments a batch changed; allNodes
// wakes every session (the server list changed, or the state was restored).
type touch map[string]bool

const allNodesKey = "\x00all"

func (t touch) node(id string) {
	if id != "" {
		t[id] = true
	}
}

func (t touch) all() { t[allNodesKey] = true }

// WatchNode returns a channel that is closed when the assignments of a node
// (or the list of servers) next change.
func (f *FSM) WatchNode(nodeID string) <-chan struct{} {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	ch := f.nodeWatch[nodeID]
	if ch == nil {
		ch = make(chan struct{})
		f.nodeWatch[nodeID] = ch
	}
	return ch
}

func (f *FSM) notifyNodes(t touch) {
	if len(t) == 0 {
		return
	}
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	if t[allNodesKey] {
		for id, ch := range f.nodeWatch {
			close(ch)
			delete(f.nodeWatch, id)
		}
		return
	}
	for id := range t {
		if ch := f.nodeWatch[id]; ch != nil {
			close(ch)
			delete(f.nodeWatch, id)
		}
	}
}
