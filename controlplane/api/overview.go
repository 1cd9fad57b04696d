package api

import (
	"context"
	"sync"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The counts GetStatus adds for an overview (the dashboard's), kept so
// that frequent status calls cost neither a scan of every job nor a call
// to every other server each time.
const (
	// jobCountsMaxAge is how long job counts are reused while jobs change.
	jobCountsMaxAge = 2 * time.Second
	// edgeOthersMaxAge is how old the other servers' edge traffic may be
	// before a status call asks them again (in the background).
	edgeOthersMaxAge = 5 * time.Second
	// edgeFirstWait is how long the first status call waits for the
	// other servers' answer.
	edgeFirstWait = time.Second
)

// overviewCounts caches the job counts and the other servers' sessions.
type overviewCounts struct {
	mu        sync.Mutex
	jobs      map[string]uint64
	jobsIndex uint64
	jobsAt    time.Time

	others     []*ccv1.NodeSession
	othersAt   time.Time
	refreshing chan struct{} // closed when the refresh under way ends
}

// jobCounts returns the jobs by state name, counted again when the state
// changed and the last count is older than jobCountsMaxAge.
func (s *ClusterService) jobCounts() (map[string]uint64, error) {
	c := &s.overview
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jobs != nil && (c.jobsIndex == s.core.FSM.AppliedIndex() || time.Since(c.jobsAt) < jobCountsMaxAge) {
		return c.jobs, nil
	}
	counts, index, err := s.core.FSM.JobStateCounts()
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(counts))
	for st, n := range counts {
		out[st.String()] = n
	}
	c.jobs, c.jobsIndex, c.jobsAt = out, index, time.Now()
	return out, nil
}

// edgeTraffic sums the edge traffic of the nodes with a live session: this
// server's as of now, the other servers' as of their last answer (asked
// again in the background once older than edgeOthersMaxAge). A node with
// sessions on two servers (it just moved) counts once, by its newest
// heartbeat.
func (s *ClusterService) edgeTraffic(ctx context.Context) (*ccv1.EdgeTraffic, uint32) {
	type seen struct {
		at time.Time
		e  *ccv1.EdgeTraffic
	}
	nodes := map[string]seen{}
	if s.core.Sessions != nil {
		last := s.core.Sessions.Sessions()
		for id, e := range s.core.Sessions.EdgeTraffic() {
			nodes[id] = seen{last[id], e}
		}
	}
	for _, o := range s.otherSessions(ctx) {
		if o.GetEdge() == nil {
			continue
		}
		at := time.UnixMilli(o.GetLastSeenUnixMs())
		if cur, ok := nodes[o.GetNodeId()]; !ok || at.After(cur.at) {
			nodes[o.GetNodeId()] = seen{at, o.GetEdge()}
		}
	}
	sum := &ccv1.EdgeTraffic{}
	for _, n := range nodes {
		sum.Requests += n.e.GetRequests()
		sum.Errors += n.e.GetErrors()
	}
	return sum, uint32(len(nodes))
}

// otherSessions returns the other servers' sessions as last asked, and
// asks again in the background when that is older than edgeOthersMaxAge.
// The first call waits up to edgeFirstWait for the answer.
func (s *ClusterService) otherSessions(ctx context.Context) []*ccv1.NodeSession {
	if s.core.OtherSessions == nil {
		return nil
	}
	c := &s.overview
	c.mu.Lock()
	if c.refreshing == nil && time.Since(c.othersAt) > edgeOthersMaxAge {
		done := make(chan struct{})
		c.refreshing = done
		go func() {
			defer close(done)
			rctx, cancel := context.WithTimeout(context.Background(), 2*edgeFirstWait)
			defer cancel()
			list := s.core.OtherSessions(rctx)
			c.mu.Lock()
			c.others, c.othersAt, c.refreshing = list, time.Now(), nil
			c.mu.Unlock()
		}()
	}
	first, wait := c.othersAt.IsZero(), c.refreshing
	c.mu.Unlock()
	if first && wait != nil {
		t := time.NewTimer(edgeFirstWait)
		defer t.Stop()
		select {
		case <-wait:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.others
}
