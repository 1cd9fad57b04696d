package session

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containercodes/cc/controlplane/edgeconfig"
	"github.com/containercodes/cc/controlplane/fsm"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// edgeCache is the cluster's edge configuration, resolved once per state
// change and shared by every session of the hub; a session cuts out its
// node's part (edgeconfig.Cluster.For) and sends the difference. Sessions
// wake only when the resolution changed, not on every state change.
type edgeCache struct {
	f *fsm.FSM

	computeMu sync.Mutex // one resolution at a time

	mu      sync.Mutex
	valid   bool
	index   uint64 // the fsm's applied index when cl was resolved
	cl      *edgeconfig.Cluster
	changed chan struct{} // closed when cl is replaced by a different one
}

func newEdgeCache(f *fsm.FSM) *edgeCache {
	return &edgeCache{f: f, cl: edgeconfig.Resolve(edgeconfig.State{}), changed: make(chan struct{})}
}

// current is the resolution as of the state now, and a channel closed when
// it next changes.
func (e *edgeCache) current() (*edgeconfig.Cluster, <-chan struct{}, error) {
	err := e.refresh()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cl, e.changed, err
}

// resolved is the last resolution and the state index it was made at.
func (e *edgeCache) resolved() (*edgeconfig.Cluster, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.valid {
		return e.cl, 0
	}
	return e.cl, e.index
}

// EdgeSynced waits until this server's sessions of edge nodes have been
// sent the edge configuration as of state index idx (or later), or ctx
// ends. The ACME manager waits on it before it asks the CA to validate a
// challenge it just wrote, so that every edge node can answer. Sessions
// on other servers are not waited for.
func (hub *Hub) EdgeSynced(ctx context.Context, idx uint64) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if err := hub.edge.refresh(); err != nil {
			return err
		}
		cl, at := hub.edge.resolved()
		if at >= idx && hub.edgeSessionsHave(cl) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// edgeSessionsHave reports whether every edge session was sent cl.
func (hub *Hub) edgeSessionsHave(cl *edgeconfig.Cluster) bool {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for _, s := range hub.sessions {
		if s.edge && s.edgeSent.Load() != cl {
			return false
		}
	}
	return true
}

// refresh resolves the configuration again if the state moved on since the
// last resolution; the waiting sessions wake only if it differs.
func (e *edgeCache) refresh() error {
	e.computeMu.Lock()
	defer e.computeMu.Unlock()
	idx := e.f.AppliedIndex()
	e.mu.Lock()
	fresh := e.valid && e.index == idx
	e.mu.Unlock()
	if fresh {
		return nil
	}
	st, err := EdgeState(e.f)
	if err != nil {
		return err
	}
	cl := edgeconfig.Resolve(st)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.valid, e.index = true, idx
	if !cl.Equal(e.cl) {
		e.cl = cl
		close(e.changed)
		e.changed = make(chan struct{})
	}
	return nil
}

// EdgeState reads what the edge configuration depends on: the routes
// and sites, and for routes to services the services, their tasks and the
// nodes. Without routes to services it reads no more than the routes and
// sites. (The API's GetRoute resolves a route's endpoints from it with
// edgeconfig.Endpoints.)
func EdgeState(f *fsm.FSM) (edgeconfig.State, error) {
	var st edgeconfig.State
	var err error
	if st.Routes, err = f.Routes(); err != nil {
		return st, fmt.Errorf("read routes: %w", err)
	}
	if st.Sites, err = f.Sites(); err != nil {
		return st, fmt.Errorf("read sites: %w", err)
	}
	certs, err := f.Certs()
	if err != nil {
		return st, fmt.Errorf("read certificates: %w", err)
	}
	for _, c := range certs {
		if c.GetCert().GetChainPem() == "" || len(c.KeyPem) == 0 {
			continue
		}
		st.Certs = append(st.Certs, &ccv1.EdgeCert{Name: c.Cert.Name, Hosts: c.Cert.Hosts, ChainPem: []byte(c.Cert.ChainPem), KeyPem: c.KeyPem, Version: c.Cert.Version})
	}
	if st.Challenges, err = f.Challenges(); err != nil {
		return st, fmt.Errorf("read ACME challenges: %w", err)
	}
	settings, err := f.Settings()
	if err != nil {
		return st, fmt.Errorf("read settings: %w", err)
	}
	if e := settings.GetEdge(); e != nil {
		st.TLS = &ccv1.EdgeTLSSettings{Http3: e.Http3, DefaultCert: e.DefaultCert}
	}
	wanted := map[string]bool{}
	for _, r := range st.Routes {
		if s := r.GetSpec().GetService(); s != "" {
			wanted[s] = true
		}
	}
	if len(wanted) == 0 {
		return st, nil
	}
	svcs, err := f.Services()
	if err != nil {
		return st, fmt.Errorf("read services: %w", err)
	}
	for _, svc := range svcs {
		if !wanted[svc.Name] && !wanted[svc.Id] {
			continue
		}
		st.Services = append(st.Services, svc)
		recs, err := f.ServiceTasks(svc.Id)
		if err != nil {
			return st, fmt.Errorf("read tasks of service %s: %w", svc.Name, err)
		}
		for _, r := range recs {
			st.Tasks = append(st.Tasks, r.Container)
		}
	}
	if len(st.Tasks) > 0 {
		if st.Nodes, err = f.Nodes(); err != nil {
			return st, fmt.Errorf("read nodes: %w", err)
		}
	}
	return st, nil
}

// edgeGap is the least time between two resolutions: a burst of state
// changes (status batches, job ops) makes one, not one each.
const edgeGap = 50 * time.Millisecond

// edgeLoop resolves the edge configuration after each state change while
// this server has sessions, so that they wake only when their edge changed.
func (hub *Hub) edgeLoop(ctx context.Context) {
	var last time.Time
	for {
		if wait := edgeGap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		w := hub.fsm.Watch()
		hub.mu.Lock()
		live := len(hub.sessions) > 0
		hub.mu.Unlock()
		if live {
			if err := hub.edge.refresh(); err != nil {
				hub.log.Warn("could not resolve the edge configuration; keeping the last", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w:
		}
	}
}

// edgeSender sends one session's edge configuration: the full set (seq 1)
// first, then changes numbered on.
type edgeSender struct {
	seq  uint64
	sent *ccv1.EdgeConfig
}

// next is the message that brings the agent to cfg, nil when it has it.
func (s *edgeSender) next(cfg *ccv1.EdgeConfig) *ccv1.SessionResponse {
	if s.sent == nil {
		s.seq, s.sent = 1, cfg
		return &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Edge{Edge: &ccv1.EdgeUpdate{Seq: 1, Msg: &ccv1.EdgeUpdate_Full{Full: cfg}}}}
	}
	ch := edgeconfig.Diff(s.sent, cfg)
	if ch == nil {
		return nil
	}
	s.seq++
	s.sent = cfg
	return &ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Edge{Edge: &ccv1.EdgeUpdate{Seq: s.seq, Msg: &ccv1.EdgeUpdate_Changes{Changes: ch}}}}
}
