package session

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// execOpenTimeout bounds the wait for the agent to answer an exec request
// with its Exec stream.
const execOpenTimeout = 30 * time.Second

// execWait is an exec a caller waits for the agent to open.
type execWait struct {
	nodeID string
	ch     chan *ExecPipe // buffered 1: the agent's stream, handed over once
}

// ExecPipe is an exec's stream to the agent that runs it: Send passes the
// caller's messages on, Recv returns the process's output and exit. Send
// and Recv may be called from two goroutines (one each). Close ends it.
type ExecPipe struct {
	stream ccv1.AgentService_ServeExecServer
	once   sync.Once
	done   chan struct{} // closed by Close: the agent's stream handler returns
}

// Send passes one of the caller's messages to the agent.
func (p *ExecPipe) Send(m *ccv1.ExecRequest) error {
	return p.stream.Send(&ccv1.ServeExecResponse{Request: m})
}

// Recv returns the next output of the process.
func (p *ExecPipe) Recv() (*ccv1.ExecResponse, error) {
	m, err := p.stream.Recv()
	if err != nil {
		return nil, err
	}
	if m.GetResponse() == nil {
		return nil, status.Error(codes.Internal, "the agent sent an exec message without a response")
	}
	return m.GetResponse(), nil
}

// Close ends the exec's stream to the agent.
func (p *ExecPipe) Close() { p.once.Do(func() { close(p.done) }) }

// OpenExec asks the node (whose session must be here) to open an exec
// stream for containerID and returns it once the agent has; the caller
// sends the start first, and closes the pipe when done.
func (hub *Hub) OpenExec(ctx context.Context, nodeID, containerID string) (*ExecPipe, error) {
	hub.mu.Lock()
	s := hub.sessions[nodeID]
	id := randomID()
	w := &execWait{nodeID: nodeID, ch: make(chan *ExecPipe, 1)}
	if s != nil {
		hub.execs[id] = w
	}
	hub.mu.Unlock()
	if s == nil {
		return nil, status.Errorf(codes.Unavailable, "node %s is not connected to this server, so nothing can be run in its containers now", nodeID)
	}
	defer func() {
		hub.mu.Lock()
		delete(hub.execs, id)
		hub.mu.Unlock()
		// A stream the agent opened after the caller gave up is ended
		// (Exec hands it over under the lock, so it is in w.ch by now).
		select {
		case p := <-w.ch:
			p.Close()
		default:
		}
	}()
	ask := &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Exec{Exec: &ccv1.ExecOpen{RequestId: id, ContainerId: containerID}}}
	timer := time.NewTimer(execOpenTimeout)
	defer timer.Stop()
	select {
	case s.out <- ask:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, status.Errorf(codes.Unavailable, "node %s did not take the exec request in %s", nodeID, execOpenTimeout)
	}
	select {
	case p := <-w.ch:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-hub.done:
		return nil, status.Error(codes.Unavailable, "the server is shutting down")
	case <-timer.C:
		return nil, status.Errorf(codes.Unavailable, "node %s did not open the exec stream in %s", nodeID, execOpenTimeout)
	}
}

// ServeExec takes an agent's stream answering an exec request and hands it to
// the caller waiting in OpenExec; it returns when the caller closes it,
// the agent goes away or the server shuts down.
func (hub *Hub) ServeExec(nodeID string, stream ccv1.AgentService_ServeExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p := &ExecPipe{stream: stream, done: make(chan struct{})}
	hub.mu.Lock()
	w := hub.execs[first.GetRequestId()]
	found := w != nil && w.nodeID == nodeID
	if found {
		delete(hub.execs, first.GetRequestId())
		w.ch <- p // buffered 1, and only this stream took the request
	}
	hub.mu.Unlock()
	if !found {
		return status.Errorf(codes.NotFound, "no exec request %s is waiting", first.GetRequestId())
	}
	select {
	case <-p.done:
		return nil
	case <-stream.Context().Done():
		return stream.Context().Err()
	case <-hub.done:
		return status.Error(codes.Unavailable, "the server is shutting down")
	}
}
