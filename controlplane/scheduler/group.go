package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// group is the pending tasks that place alike: same service, constraints,
// spread attributes, reservation and host ports. Its candidates are
// filtered once, into the tree of spread values of its layout, built at
// its first pick and dropped after its last task.
type group struct {
	svc       *service
	reserve   Resources
	ports     []portKey // sorted, no duplicates
	rules     []rule    // sorted by text, no duplicates
	rulesKey  string
	spread    []attribute
	spreadKey string
	invalid   string   // why no task of the group can be placed, if it is malformed
	volumes   []Volume // the volumes its tasks mount, each pinning them to its node
	remaining int      // its pending tasks not yet handled
	failed    string   // why nothing fits, once nothing does

	// The tree: per bucket of the layout, the tasks of the service in it,
	// whether nothing in it fits any more, and (inner buckets) the heap
	// of its children; per leaf, its candidates by strategy.
	lay    *layout
	counts []int32
	empty  []bool
	kids   [][]kid
	leaves []*leaf // nil until the group first looks at the leaf
	gone   bitset  // Binpack: candidates that no longer fit
	synced uint32  // Binpack: the step the heaps were last brought up to
}

// groupPending returns the group of each pending task. A task alike the
// previous one of its service, the common case, shares its group without
// building a key.
func (s *state) groupPending(pending []Task) []*group {
	groups := make([]*group, len(pending))
	byKey := map[string]*group{}
	type last struct {
		t *Task
		g *group
	}
	lastOf := map[string]last{} // by service
	var prev last
	for i := range pending {
		t := &pending[i]
		l := prev
		if l.t == nil || !alike(l.t, t) {
			var ok bool
			if l, ok = lastOf[t.ServiceID]; !ok || !alike(l.t, t) {
				l = last{t, s.groupOf(t, byKey)}
				lastOf[t.ServiceID] = l
			}
		}
		l.g.remaining++
		groups[i] = l.g
		prev = l
	}
	return groups
}

// alike reports whether a and b are in the same group because their
// fields are equal as given.
func alike(a, b *Task) bool {
	return a.ServiceID == b.ServiceID && a.Reserve == b.Reserve &&
		slices.Equal(a.HostPorts, b.HostPorts) &&
		slices.Equal(a.Constraints, b.Constraints) &&
		slices.Equal(a.Spread, b.Spread) && slices.Equal(a.Volumes, b.Volumes)
}

// groupOf returns the group of t, making it if it is the first of its kind.
func (s *state) groupOf(t *Task, byKey map[string]*group) *group {
	g := newGroup(t)
	key := g.key(t.ServiceID)
	if old := byKey[key]; old != nil {
		return old
	}
	byKey[key] = g
	svc := s.services[t.ServiceID]
	if svc == nil {
		svc = &service{}
		s.services[t.ServiceID] = svc
	}
	svc.remaining++
	g.svc = svc
	s.layoutUsers[g.layoutKey()]++
	return g
}

// newGroup normalises the placement fields of t into a group, noting in
// invalid what is malformed.
func newGroup(t *Task) *group {
	g := &group{reserve: Resources{
		CPUMillis:   max(t.Reserve.CPUMillis, 0),
		MemoryBytes: max(t.Reserve.MemoryBytes, 0),
	}}
	var problems []string
	for _, c := range t.Constraints {
		if err := c.Validate(); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		a, _ := parseAttr(c.Attr)
		g.rules = append(g.rules, rule{attr: a, op: c.Op, value: c.Value, text: c.String()})
	}
	for _, v := range t.Volumes {
		// A volume pins the task to the node that holds its data.
		a, _ := parseAttr("node.id")
		g.rules = append(g.rules, rule{attr: a, op: Eq, value: v.NodeID, text: "node.id==" + v.NodeID})
		g.volumes = append(g.volumes, v)
	}
	slices.SortFunc(g.rules, func(a, b rule) int { return cmp.Compare(a.text, b.text) })
	g.rules = slices.CompactFunc(g.rules, func(a, b rule) bool { return a.text == b.text })
	for _, r := range g.rules {
		g.rulesKey += strconv.Quote(r.text)
	}
	for _, sp := range t.Spread {
		if err := ValidateSpread(sp); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		a, _ := parseAttr(sp)
		g.spread = append(g.spread, a)
		g.spreadKey += strconv.Quote(sp)
	}
	for _, p := range t.HostPorts {
		if p.Number == 0 {
			continue
		}
		k, problem := parsePort(p)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		g.ports = append(g.ports, k)
	}
	slices.SortFunc(g.ports, portKey.compare)
	g.ports = slices.Compact(g.ports)
	if len(problems) > 0 {
		g.invalid = "invalid placement: " + strings.Join(problems, "; ")
	}
	return g
}

// key identifies the group: every part is quoted, so no two groups share
// a key.
func (g *group) key(serviceID string) string {
	var b strings.Builder
	b.WriteString(strconv.Quote(serviceID))
	b.WriteString(g.rulesKey)
	b.WriteByte('|')
	b.WriteString(g.spreadKey)
	fmt.Fprintf(&b, "|%d|%d|", g.reserve.CPUMillis, g.reserve.MemoryBytes)
	for _, p := range g.ports {
		b.WriteString(p.String())
		b.WriteByte(',')
	}
	b.WriteString(g.invalid) // a malformed field is dropped from the rest
	return b.String()
}

// layoutKey names the layout of g: its constraints and spread attributes.
func (g *group) layoutKey() string { return g.rulesKey + "|" + g.spreadKey }

// portKey is a valid host port.
type portKey struct {
	number int32
	udp    bool
}

// parsePort validates p, or says what is wrong with it. The protocol is
// case-insensitive; empty is tcp.
func parsePort(p Port) (portKey, string) {
	k := portKey{number: p.Number}
	switch strings.ToLower(p.Protocol) {
	case "", "tcp":
	case "udp":
		k.udp = true
	default:
		return k, fmt.Sprintf("host port %d/%s: the protocol must be tcp or udp", p.Number, p.Protocol)
	}
	if p.Number < 1 || p.Number > 65535 {
		return k, fmt.Sprintf("host port %s is out of range (1-65535)", k)
	}
	return k, ""
}

func (k portKey) String() string {
	if k.udp {
		return strconv.Itoa(int(k.number)) + "/udp"
	}
	return strconv.Itoa(int(k.number)) + "/tcp"
}

func (k portKey) compare(o portKey) int {
	if k.udp != o.udp {
		if k.udp {
			return 1
		}
		return -1
	}
	return cmp.Compare(k.number, o.number)
}

// slot packs host port k on node n into a key of state.ports.
func slot(n int32, k portKey) uint64 {
	v := uint64(uint32(n))<<32 | uint64(k.number)<<1
	if k.udp {
		v |= 1
	}
	return v
}

// candidatesFor returns the nodes that are ready, active and match g's
// constraints, by ID, computed once per set of constraints.
func (s *state) candidatesFor(g *group) []int32 {
	if c, ok := s.cands[g.rulesKey]; ok {
		return c
	}
	c := []int32{}
	for i := range s.nodes {
		if s.eligible(g, int32(i)) {
			c = append(c, int32(i))
		}
	}
	s.cands[g.rulesKey] = c
	return c
}

// eligible reports whether node n is ready, active and matches g's
// constraints: what does not change during a call.
func (s *state) eligible(g *group, n int32) bool {
	node := s.nodes[n].node
	if !node.Ready || !node.Active {
		return false
	}
	for _, r := range g.rules {
		if !r.matches(node) {
			return false
		}
	}
	return true
}

// fits reports whether node n has the resources and host ports a task of g
// needs.
func (s *state) fits(g *group, n int32) bool {
	ns := &s.nodes[n]
	if !fitsIn(g.reserve.CPUMillis, ns.node.Capacity.CPUMillis, ns.cpu) ||
		!fitsIn(g.reserve.MemoryBytes, ns.node.Capacity.MemoryBytes, ns.mem) {
		return false
	}
	for _, p := range g.ports {
		if _, taken := s.ports[slot(n, p)]; taken {
			return false
		}
	}
	return true
}

// fitsIn reports whether need fits in capacity with used already taken; a
// zero capacity is unknown, which only a zero need fits.
func fitsIn(need, capacity, used int64) bool {
	return need == 0 || (capacity > 0 && capacity-used >= need)
}

// bitset is a set of node indexes.
type bitset []uint64

func newBitset(n int) bitset       { return make(bitset, (n+63)/64) }
func (b bitset) set(i int32)       { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int32)     { b[i/64] &^= 1 << (i % 64) }
func (b bitset) test(i int32) bool { return b[i/64]&(1<<(i%64)) != 0 }
