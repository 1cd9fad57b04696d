package leader

import (
	"context"
	"log/slog"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// defaultNodeDownAfter is Config.NodeDownAfter when unset.
const defaultNodeDownAfter = 10 * time.Second

// NodeHealth is the leader loop that marks down the ready nodes that no
// server has heard from for NodeDownAfter, from the sessions of this server
// and of the others. A new leader gives every node NodeDownAfter from its
// start: it knows nothing older.
type NodeHealth struct {
	raft      *raftstore.Store
	fsm       *fsm.FSM
	log       *slog.Logger
	downAfter time.Duration
	local     func() map[string]time.Time
	others    func(ctx context.Context) map[string]time.Time
}

// NewNodeHealth returns the node-health loop.
func NewNodeHealth(c Config) *NodeHealth {
	h := &NodeHealth{raft: c.Raft, fsm: c.FSM, log: c.loopLog("node-health"),
		downAfter: c.NodeDownAfter, local: c.Sessions, others: c.OtherSessions}
	if h.downAfter <= 0 {
		h.downAfter = defaultNodeDownAfter
	}
	if h.local == nil {
		h.local = func() map[string]time.Time { return nil }
	}
	if h.others == nil {
		h.others = func(context.Context) map[string]time.Time { return nil }
	}
	return h
}

// Run checks the nodes every fifth of NodeDownAfter until ctx ends.
func (h *NodeHealth) Run(ctx context.Context) {
	started := time.Now()
	lastSeen := map[string]time.Time{}
	tick := time.NewTicker(h.downAfter / 5)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for id, t := range h.local() {
			if t.After(lastSeen[id]) {
				lastSeen[id] = t
			}
		}
		for id, t := range h.others(ctx) {
			if t.After(lastSeen[id]) {
				lastSeen[id] = t
			}
		}
		nodes, err := h.fsm.Nodes()
		if err != nil {
			continue
		}
		for _, n := range nodes {
			if n.State != ccv1.NodeState_NODE_STATE_READY {
				continue
			}
			last := lastSeen[n.Id]
			if last.Before(started) {
				last = started
			}
			if time.Since(last) < h.downAfter {
				continue
			}
			_, err := h.raft.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: n.Id, State: ccv1.NodeState_NODE_STATE_DOWN}, time.Now())
			if err != nil && ctx.Err() == nil {
				h.log.Warn("could not mark node down", "node_id", n.Id, "err", err)
				continue
			}
			h.log.Info("node down: no heartbeat on any server", "node_id", n.Id, "name", n.Name, "for", time.Since(last).Round(time.Second))
		}
	}
}
