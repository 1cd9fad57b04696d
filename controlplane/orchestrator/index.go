package orchestrator

import (
	"maps"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/scheduler"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Index is the container records indexed the way Make reads them: the
// tasks of each service, the tasks waiting for a node, the tasks on each
// node, and each record as the scheduler sees it. The leader keeps one
// from the state machine's changes (Put, Delete) instead of indexing every
// record on every pass. It holds the containers it is given, which must
// not change while they are in it. The zero Index is not usable: use
// NewIndex.
type Index struct {
	byID      map[string]entry
	placed    []scheduler.Task // the containers wanted running on a node, as the scheduler sees them
	byService map[string]map[string]*ccv1.Container
	byNode    map[string]map[string]int // node, service: tasks
	unplaced  map[string]*ccv1.Container
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		byID:      map[string]entry{},
		byService: map[string]map[string]*ccv1.Container{},
		byNode:    map[string]map[string]int{},
		unplaced:  map[string]*ccv1.Container{},
	}
}

// Put adds c, or replaces the container with its ID.
func (x *Index) Put(c *ccv1.Container) {
	if e, ok := x.byID[c.Id]; ok && e.c.ServiceId == c.ServiceId && e.c.NodeId == c.NodeId && e.c.Desired == c.Desired {
		// The same place in every index (a status report): swap the record.
		e.c = c
		x.byID[c.Id] = e
		if e.at >= 0 {
			x.placed[e.at] = schedTask(c, nil)
		}
		if c.ServiceId != "" {
			x.byService[c.ServiceId][c.Id] = c
		}
		if _, ok := x.unplaced[c.Id]; ok {
			x.unplaced[c.Id] = c
		}
		return
	}
	x.Delete(c.Id)
	e := entry{c: c, at: -1}
	if c.NodeId != "" && c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING {
		e.at = len(x.placed)
		x.placed = append(x.placed, schedTask(c, nil))
	}
	x.byID[c.Id] = e
	if c.ServiceId != "" {
		add(x.byService, c.ServiceId, c)
	}
	if c.NodeId != "" {
		if c.ServiceId != "" {
			m := x.byNode[c.NodeId]
			if m == nil {
				m = map[string]int{}
				x.byNode[c.NodeId] = m
			}
			m[c.ServiceId]++
		}
	} else if c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING {
		x.unplaced[c.Id] = c
	}
}

// Delete removes the container with ID id, if there is one.
func (x *Index) Delete(id string) {
	e, ok := x.byID[id]
	if !ok {
		return
	}
	old := e.c
	delete(x.byID, id)
	if i := e.at; i >= 0 {
		last := len(x.placed) - 1
		if i != last {
			x.placed[i] = x.placed[last]
			moved := x.byID[x.placed[i].ID]
			moved.at = i
			x.byID[x.placed[i].ID] = moved
		}
		x.placed[last] = scheduler.Task{}
		x.placed = x.placed[:last]
	}
	del(x.byService, old.ServiceId, id)
	if m := x.byNode[old.NodeId]; m != nil && old.ServiceId != "" {
		if m[old.ServiceId]--; m[old.ServiceId] <= 0 {
			delete(m, old.ServiceId)
			if len(m) == 0 {
				delete(x.byNode, old.NodeId)
			}
		}
	}
	delete(x.unplaced, id)
}

// entry is a container and its position in Index.placed, or -1.
type entry struct {
	c  *ccv1.Container
	at int
}

func add(m map[string]map[string]*ccv1.Container, k string, c *ccv1.Container) {
	s := m[k]
	if s == nil {
		s = map[string]*ccv1.Container{}
		m[k] = s
	}
	s[c.Id] = c
}

func del(m map[string]map[string]*ccv1.Container, k, id string) {
	if s := m[k]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// Get returns the container with ID id, or nil.
func (x *Index) Get(id string) *ccv1.Container { return x.byID[id].c }

// Len is the number of containers.
func (x *Index) Len() int { return len(x.byID) }

// ServiceTasks returns the tasks of a service in ID order.
func (x *Index) ServiceTasks(service string) []*ccv1.Container {
	return sorted(x.byService[service])
}

// Services returns the IDs of the services that have tasks, in order.
func (x *Index) Services() []string {
	ids := make([]string, 0, len(x.byService))
	for id := range x.byService {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// NodeServices returns the IDs of the services with tasks on a node.
func (x *Index) NodeServices(node string) []string {
	ids := make([]string, 0, len(x.byNode[node]))
	for id := range x.byNode[node] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Unplaced returns the containers wanted running that have no node, in
// ID order.
func (x *Index) Unplaced() []*ccv1.Container { return sorted(x.unplaced) }

func sorted(m map[string]*ccv1.Container) []*ccv1.Container {
	out := make([]*ccv1.Container, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// Each calls f with every container, in no order.
func (x *Index) Each(f func(c *ccv1.Container)) {
	for _, e := range x.byID {
		f(e.c)
	}
}

// placedTasks returns the tasks wanted running on their nodes, as the
// scheduler sees them, for a plan that stops or removes the tasks in
// leaving: those are left out, as are the tasks of services on a node in
// w that cannot keep them (down, drained, removed). The result is the
// index's own list when nothing is left out; Place only reads it.
func (w *world) placedTasks(x *Index, leaving map[string]bool) []scheduler.Task {
	filter := len(leaving) > 0
	if !filter {
		for id := range x.byNode {
			if n := w.nodes[id]; n == nil || n.State != ccv1.NodeState_NODE_STATE_READY || n.Availability == ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
				filter = true
				break
			}
		}
	}
	if !filter {
		return x.placed
	}
	out := make([]scheduler.Task, 0, len(x.placed)+len(w.creates))
	for i := range x.placed {
		t := &x.placed[i]
		if leaving[t.ID] {
			continue
		}
		if c := x.byID[t.ID].c; c.ServiceId != "" {
			if msg, _, _ := w.nodeProblem(c); msg != "" {
				continue
			}
		}
		out = append(out, *t)
	}
	return out
}

// Tracker keeps what an incremental plan needs between passes: the Index
// of the tasks, and which services must be planned again because their
// tasks, their record or the nodes of their tasks changed since the last
// plan was written, or their wake time came. Until a plan has been
// written (and after a write failed), every service is planned.
type Tracker struct {
	Index    *Index
	all      bool
	dirty    map[string]bool
	services map[string]*ccv1.Service // as last planned
	nodes    map[string]*ccv1.Node    // as last planned
	wakes    map[string]time.Time
}

// NewTracker returns a tracker with an empty index, which plans every
// service the first time.
func NewTracker() *Tracker {
	return &Tracker{Index: NewIndex(), all: true, dirty: map[string]bool{}, wakes: map[string]time.Time{}}
}

// PutTask adds or replaces a container record in the index; the services
// of its old and new record are planned again.
func (t *Tracker) PutTask(c *ccv1.Container) {
	t.touch(c.Id)
	t.Index.Put(c)
	t.touch(c.Id)
}

// DeleteTask removes a container record from the index; its service is
// planned again.
func (t *Tracker) DeleteTask(id string) {
	t.touch(id)
	t.Index.Delete(id)
}

func (t *Tracker) touch(id string) {
	if c := t.Index.Get(id); c != nil && c.ServiceId != "" {
		t.dirty[c.ServiceId] = true
	}
}

// Reset forgets every task and plans every service on the next pass.
func (t *Tracker) Reset() {
	t.Index = NewIndex()
	t.all = true
	t.dirty = map[string]bool{}
}

// Dirty returns the services to plan (Input.Dirty) given the services and
// nodes as they are now: those marked by PutTask and DeleteTask, those
// whose record changed or that are gone, those with tasks on a node whose
// record changed in a way a plan reads (and every global service then),
// and those whose wake time is not after now. It returns nil when every
// service must be planned.
func (t *Tracker) Dirty(services []*ccv1.Service, nodes []*ccv1.Node, now time.Time) map[string]bool {
	d := t.dirty
	seen := make(map[string]bool, len(services))
	for _, s := range services {
		seen[s.Id] = true
		if old := t.services[s.Id]; old == nil || (old != s && !proto.Equal(old, s)) {
			d[s.Id] = true
		}
	}
	for id := range t.services {
		if !seen[id] {
			d[id] = true
		}
	}
	nodesChanged := false
	nseen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		nseen[n.Id] = true
		if old := t.nodes[n.Id]; old != n && (old == nil || !sameNode(old, n)) {
			nodesChanged = true
			for _, id := range t.Index.NodeServices(n.Id) {
				d[id] = true
			}
		}
	}
	for id := range t.nodes {
		if !nseen[id] {
			nodesChanged = true
			for _, s := range t.Index.NodeServices(id) {
				d[s] = true
			}
		}
	}
	if nodesChanged {
		for _, s := range services {
			if s.GetSpec().GetMode() == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
				d[s.Id] = true
			}
		}
	}
	for id, at := range t.wakes {
		if !now.Before(at) {
			d[id] = true
		}
	}
	if t.all {
		return nil
	}
	return d
}

// sameNode: a plan reads a and b alike.
func sameNode(a, b *ccv1.Node) bool {
	return a.Id == b.Id && a.Name == b.Name && a.State == b.State && a.Availability == b.Availability &&
		proto.Equal(a.GetResources(), b.GetResources()) && maps.Equal(a.UserLabels, b.UserLabels) && maps.Equal(a.Labels, b.Labels)
}

// Planned records that the plan p, made from Dirty's services (nil:
// all), with these services and nodes, was written: those services
// are clean until something changes again.
func (t *Tracker) Planned(dirty map[string]bool, services []*ccv1.Service, nodes []*ccv1.Node, p Plan) {
	if dirty == nil {
		clear(t.wakes)
	} else {
		for id := range dirty {
			delete(t.wakes, id)
		}
	}
	for id, at := range p.Wakes {
		t.wakes[id] = at
	}
	t.all = false
	t.dirty = map[string]bool{}
	t.services = make(map[string]*ccv1.Service, len(services))
	for _, s := range services {
		t.services[s.Id] = s
	}
	t.nodes = make(map[string]*ccv1.Node, len(nodes))
	for _, n := range nodes {
		t.nodes[n.Id] = n
	}
}

// Failed records that a plan could not be written: the next plans every
// service.
func (t *Tracker) Failed() { t.all = true }

// WakeAt is the earliest wake time of the services planned, or zero.
func (t *Tracker) WakeAt() time.Time {
	var w time.Time
	for _, at := range t.wakes {
		if w.IsZero() || at.Before(w) {
			w = at
		}
	}
	return w
}
