package worker

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/agent/runtime"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// statsTimeout bounds the answer to one stats request.
const statsTimeout = 10 * time.Second

// serveStats samples the containers a stats request names and answers with
// SendStats: a row for each, with error set for one that is not assigned
// here or not running.
func (w *Worker) serveStats(ctx context.Context, req *ccv1.StatsRequest) {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	resp := &ccv1.SendStatsRequest{RequestId: req.RequestId}
	for _, id := range req.ContainerIds {
		w.mu.Lock()
		_, known := w.desired[id]
		w.mu.Unlock()
		row := &ccv1.ContainerStats{Id: id}
		resp.Stats = append(resp.Stats, row)
		if !known {
			row.Error = "not assigned to this node"
			continue
		}
		st, err := w.cfg.Runtime.Stats(ctx, id)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				row.Error = "not running"
			} else {
				row.Error = err.Error()
			}
			continue
		}
		fillStats(row, st)
	}
	if _, err := w.client.SendStats(ctx, resp); err != nil && ctx.Err() == nil {
		w.log.Debug("cannot answer a stats request", "err", err)
	}
}

func fillStats(row *ccv1.ContainerStats, st runtime.Stats) {
	row.Name = st.Name
	row.JobId = st.JobID
	row.ReadAt = timestamppb.New(st.ReadAt)
	row.CpuNanos = int64(st.CPUNanos)
	row.MemoryUsageBytes = int64(st.MemoryUsage)
	row.MemoryLimitBytes = int64(st.MemoryLimit)
	row.Pids = int64(st.Pids)
	row.PidsLimit = int64(st.PidsLimit)
	row.NetRxBytes = int64(st.NetRx)
	row.NetTxBytes = int64(st.NetTx)
	row.BlockReadBytes = int64(st.BlockRead)
	row.BlockWriteBytes = int64(st.BlockWrite)
}
