package session

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// logRequest is a log stream a client waits for, answered by an agent's
// SendLogs call.
type logRequest struct {
	nodeID string
	ch     chan *ccv1.SendLogsRequest // closed when the agent's stream that took the request ends
	done   <-chan struct{}            // the client went away
}

// Logs asks the node that runs a container for its logs and hands each
// piece to fn until the agent ends the stream, fn fails or ctx ends.
func (hub *Hub) Logs(ctx context.Context, nodeID, containerID string, follow bool, tail int64, fn func(*ccv1.ContainerLogsResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hub.mu.Lock()
	s := hub.sessions[nodeID]
	id := randomID()
	req := &logRequest{nodeID: nodeID, ch: make(chan *ccv1.SendLogsRequest, 16), done: ctx.Done()}
	if s != nil {
		hub.pending[id] = req
	}
	hub.mu.Unlock()
	if s == nil {
		return status.Errorf(codes.Unavailable, "node %s is not connected to this server, so its logs cannot be read now", nodeID)
	}
	defer func() {
		hub.mu.Lock()
		delete(hub.pending, id)
		hub.mu.Unlock()
		// Tell the agent to stop a stream it may still be sending.
		select {
		case s.out <- &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_LogCancel{LogCancel: &ccv1.LogCancel{RequestId: id}}}:
		default:
		}
	}()
	ask := &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Logs{Logs: &ccv1.LogRequest{RequestId: id, ContainerId: containerID, Follow: follow, Tail: tail}}}
	select {
	case s.out <- ask:
	case <-ctx.Done():
		return ctx.Err()
	}
	first := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hub.done:
			return status.Error(codes.Unavailable, "the server is shutting down")
		case m, ok := <-req.ch:
			if !ok {
				return nil
			}
			if h := m.GetHeader(); h != nil {
				if first && h.Error != "" {
					return status.Errorf(codes.FailedPrecondition, "node %s: %s", nodeID, h.Error)
				}
				first = false
				continue
			}
			first = false
			if c := m.GetChunk(); c != nil {
				if err := fn(c); err != nil {
					return err
				}
			}
		}
	}
}

// SendLogs takes an agent's answer to a log request and relays it.
func (hub *Hub) SendLogs(nodeID string, stream ccv1.AgentService_SendLogsServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "SendLogs starts with a header")
	}
	// The first stream to answer a request takes it out of pending, so
	// that a second stream with the same id finds nothing: only the stream
	// that took it closes its channel, once.
	hub.mu.Lock()
	req := hub.pending[h.RequestId]
	if req != nil && req.nodeID == nodeID {
		delete(hub.pending, h.RequestId)
	}
	hub.mu.Unlock()
	if req == nil || req.nodeID != nodeID {
		return status.Errorf(codes.NotFound, "no log request %s is waiting", h.RequestId)
	}
	defer close(req.ch)
	if !relay(req, first) {
		return status.Error(codes.Canceled, "the reader went away")
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&ccv1.SendLogsResponse{})
		}
		if err != nil {
			return err
		}
		if !relay(req, m) {
			return status.Error(codes.Canceled, "the reader went away")
		}
	}
}

func relay(req *logRequest, m *ccv1.SendLogsRequest) bool {
	select {
	case req.ch <- m:
		return true
	case <-req.done:
		return false
	}
}
