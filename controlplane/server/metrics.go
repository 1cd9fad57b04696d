package server

import (
	"context"
	"sync"
	"time"

	"github.com/containercodes/cc/controlplane/api"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/scheduler"
	"github.com/containercodes/cc/internal/buildinfo"
	imetrics "github.com/containercodes/cc/internal/metrics"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// blobCountEvery is how often the blob store is listed for cc_blobs.
const blobCountEvery = 30 * time.Second

// Metrics is this server's metrics: its registry serves /metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// collectMetrics adds the collectors that read this server's state, raft
// node, sessions, blob store and disk when /metrics is scraped.
func (s *Server) collectMetrics() {
	m := s.metrics
	m.CollectBuild(buildinfo.Version)
	m.CollectRaft(func() metrics.RaftStats {
		return s.raft.Stats(func(id string) string {
			if rec, err := s.fsm.Server(id); err == nil {
				return rec.Name
			}
			return ""
		})
	})
	counts := &stateCounts{fsm: s.fsm}
	m.CollectState(counts.read, time.Now, s.log.With("component", "metrics"))
	m.CollectSessions(s.sessions.Open)
	m.CollectBlobs(func() (int, int64, error) {
		all, err := s.blobs.List()
		if err != nil {
			return 0, 0, err
		}
		var bytes int64
		for _, d := range all {
			if n, err := s.blobs.Stat(d); err == nil {
				bytes += n
			}
		}
		return len(all), bytes, nil
	}, blobCountEvery, s.log.With("component", "metrics"))
	m.CollectDisk(func() (free, total, floor uint64, err error) {
		read := s.cfg.FreeSpace
		if read == nil {
			read = api.Statfs
		}
		if free, total, err = read(s.cfg.DataDir); err != nil {
			return 0, 0, 0, err
		}
		floor = uint64(max(s.cfg.MinFreeDisk.Bytes, 0))
		if p := uint64(s.cfg.MinFreeDisk.Percent / 100 * float64(total)); p > floor {
			floor = p
		}
		return free, total, floor, nil
	})
}

// stateCounts counts the state for the metrics, again only when it
// changed since the last scrape.
type stateCounts struct {
	fsm *fsm.FSM

	mu    sync.Mutex
	index uint64
	last  *metrics.StateCounts
}

func (c *stateCounts) read() (*metrics.StateCounts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && c.fsm.AppliedIndex() == c.index {
		return c.last, nil
	}
	fc, err := c.fsm.Counts()
	if err != nil {
		return nil, err
	}
	c.last, c.index = stateLabels(fc), fc.Index
	return c.last, nil
}

// stateLabels turns the state's counts into label values.
func stateLabels(fc *fsm.Counts) *metrics.StateCounts {
	st := &metrics.StateCounts{
		Nodes: map[metrics.NodeKey]int{}, Containers: map[string]int{}, PendingTasks: map[string]int{},
		Services: map[string]int{}, Jobs: map[string]int{}, Queues: map[string]metrics.QueueCounts{}, Images: fc.Images,
	}
	for k, v := range fc.Nodes {
		st.Nodes[metrics.NodeKey{
			State:        metrics.EnumLabel(k.State.String(), "NODE_STATE_"),
			Availability: metrics.EnumLabel(k.Availability.String(), "NODE_AVAILABILITY_"),
		}] += v
	}
	for k, v := range fc.Containers {
		st.Containers[metrics.EnumLabel(k.String(), "CONTAINER_STATE_")] += v
	}
	for _, k := range scheduler.ReasonKinds {
		st.PendingTasks[k] = 0
	}
	for why, v := range fc.Pending {
		st.PendingTasks[scheduler.ReasonKind(why)] += v
	}
	for k, v := range fc.Services {
		label := "none"
		if k != ccv1.UpdateState_UPDATE_STATE_UNSPECIFIED {
			label = metrics.EnumLabel(k.String(), "UPDATE_STATE_")
		}
		st.Services[label] += v
	}
	for k, v := range fc.Jobs {
		st.Jobs[metrics.EnumLabel(k.String(), "JOB_STATE_")] += v
	}
	for q, c := range fc.Queues {
		st.Queues[q] = metrics.QueueCounts{Queued: c.Queued, Active: c.Active}
	}
	for _, c := range fc.Certs {
		st.Certs = append(st.Certs, metrics.CertInfo{Name: c.Name, NotAfter: c.NotAfter, Renewal: metrics.EnumLabel(c.Renewal.String(), "RENEWAL_STATE_")})
	}
	return st
}

// startMetricsListener serves /metrics without authentication on
// metrics_addr, when it is set.
func (s *Server) startMetricsListener() error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	l, err := imetrics.Listen(s.cfg.MetricsAddr, imetrics.Handler(s.metrics.Registry(), s.log), s.log.With("component", "metrics"))
	if err != nil {
		return err
	}
	s.metricsLn = l
	s.log.Info("serving metrics over plain HTTP", "addr", l.Addr().String())
	return nil
}

// MetricsAddr is where metrics_addr serves, or "" when it is not set.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// closeMetricsListener stops the metrics_addr listener, if any.
func (s *Server) closeMetricsListener(ctx context.Context) {
	if s.metricsLn != nil {
		s.metricsLn.Close(ctx)
	}
}
