package worker

import (
	"context"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// serveLogs answers a log request with SendLogs until the logs end, the
// request is cancelled or the session ends.
func (w *Worker) serveLogs(ctx context.Context, req *ccv1.LogRequest) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	w.logCancels[req.RequestId] = cancel
	_, known := w.desired[req.ContainerId]
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.logCancels, req.RequestId)
		w.mu.Unlock()
	}()
	stream, err := w.client.SendLogs(ctx)
	if err != nil {
		w.log.Warn("cannot answer a log request", "err", err)
		return
	}
	header := &ccv1.LogHeader{RequestId: req.RequestId}
	if !known {
		header.Error = "no container " + req.ContainerId + " is assigned to this node"
	}
	if err := stream.Send(&ccv1.SendLogsRequest{Msg: &ccv1.SendLogsRequest_Header{Header: header}}); err != nil || !known {
		_, _ = stream.CloseAndRecv()
		return
	}
	err = w.cfg.Runtime.Logs(ctx, req.ContainerId, req.Tail, req.Follow, func(s string, data []byte) error {
		return stream.Send(&ccv1.SendLogsRequest{Msg: &ccv1.SendLogsRequest_Chunk{Chunk: &ccv1.ContainerLogsResponse{Stream: s, Data: data}}})
	})
	if err != nil && ctx.Err() == nil {
		w.log.Debug("log stream ended", "container_id", req.ContainerId, "err", err)
	}
	_, _ = stream.CloseAndRecv()
}
