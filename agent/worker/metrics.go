package worker

import (
	"context"
	"maps"

	"github.com/containercodes/cc/agent/health"
	"github.com/containercodes/cc/agent/health/healthstate"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/agent/runtime"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// kindOf is an assignment's kind in the metrics: a job attempt or a
// container.
func kindOf(a *ccv1.Assignment) string {
	if a.GetSpec().GetSandbox() != nil {
		return metrics.KindJob
	}
	return metrics.KindContainer
}

// count keeps the containers by kind and state the pass ended with: what
// containerd runs, and the starts in preparation.
func (w *Worker) count(desired map[string]*ccv1.Assignment, observed map[string]runtime.Observed) {
	c := map[metrics.ContainerKey]int{}
	for id, o := range observed {
		kind := metrics.KindContainer
		if o.JobID != "" {
			kind = metrics.KindJob
		}
		state := metrics.StateLabel(o.State)
		if a := desired[id]; a != nil && kind == metrics.KindContainer {
			kind = kindOf(a)
		}
		c[metrics.ContainerKey{Kind: kind, State: state}]++
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.preparing {
		if _, seen := observed[id]; !seen {
			c[metrics.ContainerKey{Kind: kindOf(desired[id]), State: "preparing"}]++
		}
	}
	w.counts = c
}

// containerCounts is the source of cc_containers.
func (w *Worker) containerCounts() map[metrics.ContainerKey]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.counts)
}

// countedChecker counts the health checks it runs.
type countedChecker struct {
	health.Checker
	m *metrics.Metrics
}

func (c countedChecker) Check(ctx context.Context, id string, hc healthstate.Check) (bool, string) {
	ok, out := c.Checker.Check(ctx, id, hc)
	kind := "http"
	if len(hc.Exec) > 0 {
		kind = "exec"
	}
	c.m.HealthChecked(kind, ok)
	return ok, out
}

// containerUsage samples the containers assigned here for the metrics'
// resource series; one that is not running is left out.
func (w *Worker) containerUsage(ctx context.Context) []metrics.Usage {
	if w.cfg.Runtime == nil {
		return nil
	}
	w.mu.Lock()
	ids := make([]string, 0, len(w.desired))
	for id := range w.desired {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	var out []metrics.Usage
	for _, id := range ids {
		st, err := w.cfg.Runtime.Stats(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, metrics.Usage{
			ID: id, Name: st.Name, Job: st.JobID != "",
			CPUSeconds:  float64(st.CPUNanos) / 1e9,
			MemoryBytes: float64(st.MemoryUsage), MemoryLimit: float64(st.MemoryLimit), Pids: float64(st.Pids),
			NetRxBytes: float64(st.NetRx), NetTxBytes: float64(st.NetTx),
			BlockReadBytes: float64(st.BlockRead), BlockWriteBytes: float64(st.BlockWrite),
		})
	}
	return out
}
