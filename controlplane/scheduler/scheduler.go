// Package scheduler decides which node each pending task runs on. It is a
// pure, deterministic function of the cluster state it is given: no I/O,
// no goroutines, no clock. The control plane's leader converts its state
// into the types here, calls Place, and writes the placements to raft.
//
// Place filters nodes (ready and active, constraints, free CPU and memory,
// free host ports) and then scores those that fit, by spreading a
// service's tasks (Spread) or by filling the fullest node first (Binpack).
// A task's spread attributes, such as node.labels.zone, come first with
// either strategy: its tasks are spread evenly over the values.
//
// It is built for 5,000 nodes and 100,000 pending tasks without scoring
// every node for every task. Alike pending tasks form a group whose
// constraints are evaluated once (group.go); its candidates are arranged
// in a tree of spread values (tree.go) whose leaves keep them in order:
// with Spread, by one (tasks, node ID) order shared by all groups and a
// per-group set of the candidates by tasks of the service (spread.go);
// with Binpack, in a heap per group, fullest first (binpack.go). Free
// resources and ports only shrink during a call, so a node found not to
// fit is dropped for good, and a group that fits nowhere stays pending
// with one reason (reason.go).
package scheduler

import (
	"cmp"
	"slices"
)

// Strategy is how Place chooses among the nodes a task fits on.
type Strategy int

const (
	// Spread puts a task on the node with the fewest tasks of its service,
	// then the fewest tasks. It is the default; an unknown Strategy is
	// treated as Spread.
	Spread Strategy = iota
	// Binpack puts a task on the node that is fullest once it is placed,
	// keeping other nodes free for large tasks.
	Binpack
)

// Resources are amounts of CPU and memory.
type Resources struct {
	CPUMillis   int64 // thousandths of a core
	MemoryBytes int64
}

// Port is a host port a task binds.
type Port struct {
	Number   int32  // 1-65535; 0 means the runtime picks one, which never conflicts
	Protocol string // "tcp" (when empty) or "udp"
}

// Node is a node as the scheduler sees it.
type Node struct {
	ID, Name string
	// Labels are the labels an operator set (node.labels.<key>): the only
	// ones a constraint or spread on node.labels sees.
	Labels map[string]string
	// Reported are the labels the node's agent reports (node.reported.<key>):
	// whoever holds a join token chooses them, so they are kept apart.
	Reported map[string]string
	Ready    bool      // heartbeating
	Active   bool      // availability active (not paused, not drained)
	Capacity Resources // a zero field is unknown: only tasks reserving none of it fit
}

// Task is a task to place, or one already placed.
type Task struct {
	ID, ServiceID string
	NodeID        string    // the node of a task in Place's placed list
	Reserve       Resources // negative amounts count as zero
	HostPorts     []Port
	Constraints   []Constraint
	Spread        []string // attributes such as node.labels.zone, in order of precedence
	Volumes       []Volume // the volumes it mounts: it runs only on their node
}

// Volume is a volume a task mounts: its data lives on one node, so the task
// may run only there.
type Volume struct {
	Name, NodeID string
}

// Result is what Place decided.
type Result struct {
	Assigned map[string]string // task ID to node ID
	Pending  map[string]string // task ID to why it was not placed, for every other pending task
}

// Place assigns pending tasks to nodes, in the order given. The placed
// tasks, already on nodes, count for resources, host ports and spreading;
// so does each task Place assigns, for the tasks after it. Placed tasks on
// nodes not in nodes are ignored, as is a pending task whose ID was
// already seen in pending.
//
// Filters: the node is ready and active, matches every constraint, has the
// free CPU and memory the task reserves, and none of the task's host ports
// is taken on it. Scores, with Spread: for each spread attribute in turn,
// the value whose candidate nodes (ready, active and matching the
// constraints) hold the fewest tasks of the service, ties to the smaller
// value; then the node with the fewest tasks of the service, then the
// fewest tasks, then the smaller node ID. With Binpack the spread
// attributes come first too, then the node that is fullest after placing
// (the larger of its CPU and memory fractions; an unknown capacity counts
// as empty), then the fewest tasks of the service, then the smaller ID.
func Place(nodes []Node, placed []Task, pending []Task, strategy Strategy) Result {
	s := newState(nodes, strategy == Binpack)
	groups := s.groupPending(pending)
	s.addPlaced(placed)
	res := Result{
		Assigned: make(map[string]string, len(pending)),
		Pending:  make(map[string]string),
	}
	for i, g := range groups {
		id := pending[i].ID
		_, dup := res.Assigned[id]
		if _, p := res.Pending[id]; !dup && !p {
			if n, reason := s.placeOne(g); n >= 0 {
				res.Assigned[id] = s.nodes[n].node.ID
			} else {
				res.Pending[id] = reason
			}
		}
		s.done(g)
	}
	return res
}

// state is the cluster as Place sees it, updated with every placement.
type state struct {
	nodes    []nodeState // by node ID
	index    map[string]int32
	ports    map[uint64]struct{} // host ports taken, by slot
	services map[string]*service // the services with pending tasks
	cands    map[string][]int32  // by constraints
	layouts  map[string]*layout  // by constraints and spread attributes
	live     []*layout           // Spread: the layouts whose totals are kept
	// layoutUsers counts the groups with tasks left per layout key.
	layoutUsers map[string]int
	binpack     bool

	// Buffers of released groups and services, for the next ones.
	entryBufs [][]entry
	bitsets   []bitset
	countBufs [][]int32

	step   uint32 // placements made so far
	recent int32  // Binpack: the last node placed on; a list by nodeState.next, most recent first
}

// nodeState is a node and what is reserved on it.
type nodeState struct {
	node     *Node
	cpu, mem int64 // reserved
	tasks    int32
	modified uint32 // the step of the last placement on it, 0 if none
	prev     int32  // Binpack: the recent list, -1 at its ends
	next     int32
}

// newState indexes the nodes by ID; of two nodes with the same ID the
// first one given wins.
func newState(nodes []Node, binpack bool) *state {
	order := make([]int, len(nodes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(nodes[a].ID, nodes[b].ID) })
	s := &state{
		index:       make(map[string]int32, len(nodes)),
		ports:       map[uint64]struct{}{},
		services:    map[string]*service{},
		cands:       map[string][]int32{},
		layouts:     map[string]*layout{},
		layoutUsers: map[string]int{},
		binpack:     binpack,
		recent:      -1,
	}
	s.nodes = make([]nodeState, 0, len(nodes))
	for _, i := range order {
		if _, dup := s.index[nodes[i].ID]; dup {
			continue
		}
		s.index[nodes[i].ID] = int32(len(s.nodes))
		s.nodes = append(s.nodes, nodeState{node: &nodes[i], prev: -1, next: -1})
	}
	return s
}

// addPlaced accounts for the tasks already on nodes.
func (s *state) addPlaced(placed []Task) {
	for i := range placed {
		t := &placed[i]
		n, ok := s.index[t.NodeID]
		if !ok {
			continue
		}
		ns := &s.nodes[n]
		ns.cpu = addSat(ns.cpu, max(t.Reserve.CPUMillis, 0))
		ns.mem = addSat(ns.mem, max(t.Reserve.MemoryBytes, 0))
		ns.tasks++
		for _, p := range t.HostPorts {
			// An invalid port cannot conflict with a valid pending one.
			if k, problem := parsePort(p); problem == "" {
				s.ports[slot(n, k)] = struct{}{}
			}
		}
		if svc := s.services[t.ServiceID]; svc != nil {
			svc.placedOn = append(svc.placedOn, n)
		}
	}
}

// placeOne places one task of g and returns its node, or -1 and why not.
func (s *state) placeOne(g *group) (int32, string) {
	if g.invalid != "" {
		return -1, g.invalid
	}
	if g.failed != "" {
		return -1, g.failed
	}
	n := g.pick(s)
	if n < 0 {
		// Nothing fits now, and nothing will for the rest of the call:
		// placements only take resources and ports.
		g.failed = s.whyNot(g)
		return -1, g.failed
	}
	s.assign(g, n)
	return n, ""
}

// assign records a task of g on node n.
func (s *state) assign(g *group, n int32) {
	ns := &s.nodes[n]
	ns.cpu = addSat(ns.cpu, g.reserve.CPUMillis)
	ns.mem = addSat(ns.mem, g.reserve.MemoryBytes)
	ns.tasks++
	if !s.binpack {
		s.moveTotal(n, ns.tasks-1)
	}
	for _, p := range g.ports {
		s.ports[slot(n, p)] = struct{}{}
	}
	s.step++
	ns.modified = s.step
	if s.binpack {
		s.toFront(n)
	}
	old := g.svc.counts[n] // g is built, so counts are
	g.svc.add(n)
	for _, h := range g.svc.groups {
		h.countTask(s, n, old)
	}
}

// toFront moves n to the front of the recent list.
func (s *state) toFront(n int32) {
	if s.recent == n {
		return
	}
	ns := &s.nodes[n]
	if ns.prev >= 0 {
		s.nodes[ns.prev].next = ns.next
	}
	if ns.next >= 0 {
		s.nodes[ns.next].prev = ns.prev
	}
	ns.prev, ns.next = -1, s.recent
	if s.recent >= 0 {
		s.nodes[s.recent].prev = n
	}
	s.recent = n
}

// done counts one pending task of g as handled, and frees what g and its
// service keep once they have no task left.
func (s *state) done(g *group) {
	g.remaining--
	if g.remaining > 0 {
		return
	}
	g.release(s)
	key := g.layoutKey()
	s.layoutUsers[key]--
	if l := s.layouts[key]; l != nil && s.layoutUsers[key] == 0 && l.totals != nil {
		s.dropTotals(l)
	}
	g.svc.remaining--
	if g.svc.remaining == 0 && g.svc.counts != nil {
		s.countBufs = append(s.countBufs, g.svc.counts)
		g.svc.counts = nil
	}
}

// service holds what Place tracks for a service with pending tasks.
type service struct {
	placedOn  []int32  // the node of each of its tasks, until counts exists
	counts    []int32  // its tasks per node, once a group needs them
	groups    []*group // its built groups whose trees follow its tasks (with Binpack, only those with spread attributes)
	remaining int      // its groups with pending tasks left
}

// add counts a task of the service on node n.
func (v *service) add(n int32) {
	if v.counts != nil {
		v.counts[n]++
	} else {
		v.placedOn = append(v.placedOn, n)
	}
}

// tasksPerNode returns the service's tasks per node, computing it on first
// use.
func (v *service) tasksPerNode(s *state) []int32 {
	if v.counts == nil {
		v.counts = s.takeCounts()
		for _, n := range v.placedOn {
			v.counts[n]++
		}
		v.placedOn = nil
	}
	return v.counts
}

// addSat adds b ≥ 0 to a without overflowing.
func addSat(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}

// takeEntries returns an empty buffer for n entries, reusing a released
// one if it is large enough.
func (s *state) takeEntries(n int) []entry {
	if k := len(s.entryBufs); k > 0 && cap(s.entryBufs[k-1]) >= n {
		buf := s.entryBufs[k-1]
		s.entryBufs = s.entryBufs[:k-1]
		return buf[:0]
	}
	return make([]entry, 0, n)
}

// putEntries keeps a large buffer for takeEntries.
func (s *state) putEntries(buf []entry) {
	if cap(buf) >= 256 {
		s.entryBufs = append(s.entryBufs, buf)
	}
}

// takeBitset returns an empty set of nodes, reusing a released one.
func (s *state) takeBitset() bitset {
	if k := len(s.bitsets); k > 0 {
		b := s.bitsets[k-1]
		s.bitsets = s.bitsets[:k-1]
		clear(b)
		return b
	}
	return newBitset(len(s.nodes))
}

// takeCounts returns zeroed counts per node, reusing released ones.
func (s *state) takeCounts() []int32 {
	if k := len(s.countBufs); k > 0 {
		c := s.countBufs[k-1]
		s.countBufs = s.countBufs[:k-1]
		clear(c)
		return c
	}
	return make([]int32, len(s.nodes))
}
