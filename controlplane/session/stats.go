package session

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// statsWaiters are the stats requests sent to agents and not yet answered.
type statsWaiters struct {
	mu      sync.Mutex
	waiting map[string]statsWaiter
}

type statsWaiter struct {
	nodeID string
	ch     chan []*ccv1.ContainerStats // buffered: one answer
}

// Stats asks a node whose session is here to sample containers and waits
// for its answer (SendStats), or for ctx to end.
func (hub *Hub) Stats(ctx context.Context, nodeID string, containerIDs []string) ([]*ccv1.ContainerStats, error) {
	hub.mu.Lock()
	s := hub.sessions[nodeID]
	hub.mu.Unlock()
	if s == nil {
		return nil, status.Errorf(codes.Unavailable, "node %s is not connected to this server, so its stats cannot be read now", nodeID)
	}
	id := randomID()
	w := statsWaiter{nodeID: nodeID, ch: make(chan []*ccv1.ContainerStats, 1)}
	hub.stats.mu.Lock()
	if hub.stats.waiting == nil {
		hub.stats.waiting = map[string]statsWaiter{}
	}
	hub.stats.waiting[id] = w
	hub.stats.mu.Unlock()
	defer func() {
		hub.stats.mu.Lock()
		delete(hub.stats.waiting, id)
		hub.stats.mu.Unlock()
	}()
	ask := &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Stats{Stats: &ccv1.StatsRequest{RequestId: id, ContainerIds: containerIDs}}}
	select {
	case s.out <- ask:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-hub.done:
		return nil, status.Error(codes.Unavailable, "the server is shutting down")
	}
	select {
	case rows := <-w.ch:
		return rows, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-hub.done:
		return nil, status.Error(codes.Unavailable, "the server is shutting down")
	}
}

// SendStats hands a node's answer to the Stats call waiting for it.
func (hub *Hub) SendStats(nodeID string, req *ccv1.SendStatsRequest) error {
	hub.stats.mu.Lock()
	w, ok := hub.stats.waiting[req.GetRequestId()]
	if ok && w.nodeID == nodeID {
		delete(hub.stats.waiting, req.GetRequestId())
	}
	hub.stats.mu.Unlock()
	if !ok || w.nodeID != nodeID {
		return status.Errorf(codes.NotFound, "no stats request %s is waiting", req.GetRequestId())
	}
	w.ch <- req.GetStats()
	return nil
}
