package session

import (
	"context"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fakeLogStream is an agent's SendLogs stream: it hands out msgs, then
// waits for release (when set) before ending with io.EOF.
type fakeLogStream struct {
	grpc.ServerStream
	msgs    []*ccv1.SendLogsRequest
	release chan struct{}
}

func (f *fakeLogStream) Recv() (*ccv1.SendLogsRequest, error) {
	if len(f.msgs) > 0 {
		m := f.msgs[0]
		f.msgs = f.msgs[1:]
		return m, nil
	}
	if f.release != nil {
		<-f.release
	}
	return nil, io.EOF
}

func (f *fakeLogStream) SendAndClose(*ccv1.SendLogsResponse) error { return nil }

func (f *fakeLogStream) Context() context.Context { return context.Background() }

func logMsgs(id, data string) []*ccv1.SendLogsRequest {
	return []*ccv1.SendLogsRequest{
		{Msg: &ccv1.SendLogsRequest_Header{Header: &ccv1.LogHeader{RequestId: id}}},
		{Msg: &ccv1.SendLogsRequest_Chunk{Chunk: &ccv1.ContainerLogsResponse{Data: []byte(data)}}},
	}
}

// sendLogs runs hub.SendLogs and turns a panic into an error, so that the
// test reports it instead of the test binary dying.
func sendLogs(hub *Hub, nodeID string, s *fakeLogStream) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return hub.SendLogs(nodeID, s)
}

// TestSendLogsTwiceForOneRequest: a second SendLogs stream with the id of
// a request another stream already answers is refused; before, each stream
// closed the request's channel when it ended, and the second close
// panicked ("close of closed channel") and took the server down (issue 14,
// #5).
func TestSendLogsTwiceForOneRequest(t *testing.T) {
	hub := &Hub{sessions: map[string]*session{}, pending: map[string]*logRequest{}, done: make(chan struct{})}
	s := &session{nodeID: "n1", out: make(chan *ccv1.SessionResponse, 16)}
	hub.sessions["n1"] = s

	got := make(chan string, 16)
	logsDone := make(chan error, 1)
	go func() {
		logsDone <- hub.Logs(context.Background(), "n1", "c1", true, 0, func(m *ccv1.ContainerLogsResponse) error {
			got <- string(m.Data)
			return nil
		})
	}()
	ask := (<-s.out).GetLogs()
	if ask == nil {
		t.Fatal("the hub did not ask the node for logs")
	}

	first := &fakeLogStream{msgs: logMsgs(ask.RequestId, "first"), release: make(chan struct{})}
	firstDone := make(chan error, 1)
	go func() { firstDone <- sendLogs(hub, "n1", first) }()
	if d := <-got; d != "first" {
		t.Fatalf("the reader got %q, want the first stream's chunk", d)
	}

	// A second stream for the same request, from the same node.
	err := sendLogs(hub, "n1", &fakeLogStream{msgs: logMsgs(ask.RequestId, "second")})
	if status.Code(err) != codes.NotFound {
		t.Errorf("a second stream for request %s: %v; want NotFound", ask.RequestId, err)
	}
	close(first.release)
	if err := <-firstDone; err != nil {
		t.Errorf("the first stream ended with %v", err)
	}
	if err := <-logsDone; err != nil {
		t.Errorf("Logs: %v", err)
	}
	close(got)
	for d := range got {
		t.Errorf("the reader got %q from the second stream", d)
	}
}

// TestSendLogsOtherNode: a node cannot answer a log request sent to
// another node.
func TestSendLogsOtherNode(t *testing.T) {
	hub := &Hub{sessions: map[string]*session{}, pending: map[string]*logRequest{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub.pending["r1"] = &logRequest{nodeID: "n1", ch: make(chan *ccv1.SendLogsRequest, 16), done: ctx.Done()}
	err := sendLogs(hub, "n2", &fakeLogStream{msgs: logMsgs("r1", "x")})
	if status.Code(err) != codes.NotFound {
		t.Errorf("node n2 answering n1's request: %v; want NotFound", err)
	}
	if hub.pending["r1"] == nil {
		t.Error("another node's attempt took the request away")
	}
}
