package worker

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/containercodes/cc/agent/runtime"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// serveExec answers an exec request: it opens ServeExec, takes the start,
// runs the process with its IO on the stream and sends its exit. It ends
// with the process, or when the stream or the session ends (the process
// is killed then).
func (w *Worker) serveExec(ctx context.Context, req *ccv1.ExecOpen) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.ServeExec(ctx)
	if err != nil {
		w.log.Warn("cannot answer an exec request", "err", err)
		return
	}
	var sendMu sync.Mutex
	send := func(m *ccv1.ExecResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(&ccv1.ServeExecRequest{Response: m})
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&ccv1.ServeExecRequest{RequestId: req.RequestId}); err != nil {
		return
	}
	first, err := stream.Recv()
	if err != nil {
		return
	}
	start := first.GetRequest().GetStart()
	fail := func(msg string) {
		_ = send(&ccv1.ExecResponse{Msg: &ccv1.ExecResponse_Exit{Exit: &ccv1.ExecExit{Code: -1, Error: msg}}})
		// Wait for the server to take the exit before the stream ends.
		_, _ = stream.Recv()
	}
	if start == nil {
		fail("the exec did not start with a start message")
		return
	}
	w.mu.Lock()
	_, known := w.desired[req.ContainerId]
	w.mu.Unlock()
	if !known || start.GetContainer() != req.ContainerId {
		fail("no container " + req.ContainerId + " is assigned to this node")
		return
	}
	spec := runtime.ExecSpec{
		Args: start.GetArgs(), Env: start.GetEnv(), User: start.GetUser(), Workdir: start.GetWorkdir(), TTY: start.GetTty(),
		Stdout: execWriter(func(b []byte) error {
			return send(&ccv1.ExecResponse{Msg: &ccv1.ExecResponse_Stdout{Stdout: b}})
		}),
		Stderr: execWriter(func(b []byte) error {
			return send(&ccv1.ExecResponse{Msg: &ccv1.ExecResponse_Stderr{Stderr: b}})
		}),
	}
	if sz := start.GetSize(); sz != nil {
		spec.Size = &runtime.TermSize{Width: sz.Width, Height: sz.Height}
	}
	resize := make(chan runtime.TermSize, 1) // the newest size wins
	spec.Resize = resize
	var stdinW *io.PipeWriter
	if start.GetStdin() {
		var stdinR *io.PipeReader
		stdinR, stdinW = io.Pipe()
		defer stdinR.Close() // ends the copy into the process
		spec.Stdin = stdinR
	}
	// The caller's messages: stdin, resizes, the end of stdin. The stream
	// ending (the caller went away) ends the exec.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if stdinW != nil {
				stdinW.Close()
			}
		}()
		for {
			m, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					cancel()
				}
				return
			}
			r := m.GetRequest()
			switch x := r.GetMsg().(type) {
			case *ccv1.ExecRequest_Stdin:
				if stdinW != nil {
					if _, err := stdinW.Write(x.Stdin); err != nil {
						stdinW = nil
					}
				}
			case *ccv1.ExecRequest_CloseStdin:
				if stdinW != nil {
					stdinW.Close()
					stdinW = nil
				}
			case *ccv1.ExecRequest_Resize:
				sz := runtime.TermSize{Width: x.Resize.GetWidth(), Height: x.Resize.GetHeight()}
				select {
				case <-resize:
				default:
				}
				resize <- sz
			}
		}
	}()
	var code int
	if start.GetAttach() {
		w.log.Info("attach", "container_id", req.ContainerId, "tty", start.GetTty())
		err = w.cfg.Runtime.Attach(ctx, req.ContainerId, start.GetLogsTail(), spec)
	} else {
		w.log.Info("exec", "container_id", req.ContainerId, "args", start.GetArgs(), "tty", start.GetTty())
		code, err = w.cfg.Runtime.ExecStream(ctx, req.ContainerId, spec)
	}
	exit := &ccv1.ExecExit{Code: int32(code)}
	if err != nil {
		exit.Code, exit.Error = -1, err.Error()
		w.log.Info("exec failed", "container_id", req.ContainerId, "err", err)
	}
	_ = send(&ccv1.ExecResponse{Msg: &ccv1.ExecResponse_Exit{Exit: exit}})
	_ = stream.CloseSend()
	// The server ends the stream once it has the exit; the reader then
	// returns.
	wg.Wait()
}

// execWriter sends each write as one message (a copy: the caller reuses
// its buffer).
type execWriter func([]byte) error

func (f execWriter) Write(p []byte) (int, error) {
	if err := f(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
