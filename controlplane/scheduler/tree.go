package scheduler

import (
	"cmp"
	"math"
	"slices"
)

// layout is the candidates of a set of constraints arranged in a tree of
// spread values, one level per spread attribute, shared by the groups with
// the same constraints and spread attributes. Without spread attributes
// the tree is a single leaf.
type layout struct {
	cands   []int32 // ready, active and matching nodes, by ID
	leafOf  []int32 // per node: its leaf, -1 if not a candidate
	buckets []shape // the root first, children after their parent
}

// shape is a bucket of a layout: the candidates that share the values of
// the first spread attributes.
type shape struct {
	parent   int32
	rank     int32 // the order of its value among its siblings' values
	leaf     bool
	children []int32
	start    int32 // leaf: the offset of its candidates in a group's buffer
	size     int32 // leaf: its number of candidates
}

// kid is a child bucket in its parent's heap, with its count of the
// service's tasks when last looked at. Counts only grow, so a kid whose
// count went stale is moved down the heap when it reaches the top.
type kid struct {
	count int32
	rank  int32
	b     int32
}

func (k kid) less(o kid) bool {
	return k.count < o.count || (k.count == o.count && k.rank < o.rank)
}

// layoutFor returns the layout of g's constraints and spread attributes.
func (s *state) layoutFor(g *group) *layout {
	key := g.rulesKey + "|" + g.spreadKey
	if l := s.layouts[key]; l != nil {
		return l
	}
	l := &layout{cands: s.candidatesFor(g), leafOf: make([]int32, len(s.nodes))}
	for i := range l.leafOf {
		l.leafOf[i] = -1
	}
	l.buckets = []shape{{parent: -1, leaf: len(g.spread) == 0}}
	type edge struct {
		parent int32
		value  string
	}
	child := map[edge]int32{}
	values := []string{""} // per bucket
	for _, n := range l.cands {
		b := int32(0)
		for depth, a := range g.spread {
			v, _ := a.value(s.nodes[n].node) // a missing label is ""
			c, ok := child[edge{b, v}]
			if !ok {
				c = int32(len(l.buckets))
				l.buckets = append(l.buckets, shape{parent: b, leaf: depth == len(g.spread)-1})
				l.buckets[b].children = append(l.buckets[b].children, c)
				values = append(values, v)
				child[edge{b, v}] = c
			}
			b = c
		}
		l.leafOf[n] = b
		l.buckets[b].size++
	}
	l.finish(values)
	s.layouts[key] = l
	return l
}

// finish ranks every bucket's children by value and places the leaves'
// candidates in a buffer, leaf after leaf.
func (l *layout) finish(values []string) {
	var start int32
	for i := range l.buckets {
		b := &l.buckets[i]
		if b.leaf {
			b.start = start
			start += b.size
			continue
		}
		byValue := slices.Clone(b.children)
		slices.SortFunc(byValue, func(x, y int32) int { return cmp.Compare(values[x], values[y]) })
		for rank, c := range byValue {
			l.buckets[c].rank = int32(rank)
		}
	}
}

// entry is a node in a leaf's heap, smallest (key, sub) first. With
// Spread, key is the service's tasks on the node and then its tasks, and
// sub the node; with Binpack, key orders the nodes fullest first once the
// task is on them, and sub is the service's tasks and then the node. An
// entry is stale when it differs from the node's current entry.
type entry struct {
	key, sub uint64
}

func (e *entry) less(o *entry) bool {
	return e.key < o.key || (e.key == o.key && e.sub < o.sub)
}

// node returns the node of e.
func (e *entry) node() int32 { return int32(uint32(e.sub)) }

// entry returns node n's current entry for g.
func (s *state) entry(g *group, n int32) entry {
	ns := &s.nodes[n]
	tasks := uint64(uint32(g.svc.counts[n]))
	if !s.binpack {
		return entry{key: tasks<<32 | uint64(uint32(ns.tasks)), sub: uint64(uint32(n))}
	}
	cpu := fraction(addSat(ns.cpu, g.reserve.CPUMillis), ns.node.Capacity.CPUMillis)
	mem := fraction(addSat(ns.mem, g.reserve.MemoryBytes), ns.node.Capacity.MemoryBytes)
	// The bits of a float64 ≥ 0 order like its value; inverted, the
	// fullest comes first.
	return entry{key: ^math.Float64bits(max(cpu, mem)), sub: tasks<<32 | uint64(uint32(n))}
}

// fraction is used/capacity, 0 for an unknown capacity.
func fraction(used, capacity int64) float64 {
	if capacity <= 0 {
		return 0
	}
	return float64(used) / float64(capacity)
}

// build makes g's tree from its layout and the nodes as they are now.
func (g *group) build(s *state) {
	l := s.layoutFor(g)
	g.lay = l
	counts := g.svc.tasksPerNode(s)
	g.counts = make([]int32, len(l.buckets))
	g.empty = make([]bool, len(l.buckets))
	g.kids = make([][]kid, len(l.buckets))
	g.heaps = make([][]entry, len(l.buckets))
	g.buf = s.takeEntries(len(l.cands))
	for i, b := range l.buckets {
		if b.leaf {
			g.heaps[i] = g.buf[b.start : b.start : b.start+b.size]
		}
	}
	if s.binpack {
		g.gone = s.takeBitset()
	}
	for _, n := range l.cands {
		leaf := l.leafOf[n]
		if c := counts[n]; c > 0 && len(g.spread) > 0 {
			g.addCount(leaf, c)
		}
		if s.fits(g, n) {
			g.heaps[leaf] = append(g.heaps[leaf], s.entry(g, n))
		} else if s.binpack {
			g.gone.set(n)
		}
	}
	// Children come after their parent: build the heaps bottom up.
	for i := len(l.buckets) - 1; i >= 0; i-- {
		b := &l.buckets[i]
		if b.leaf {
			entryHeapInit(g.heaps[i])
			g.empty[i] = len(g.heaps[i]) == 0
			continue
		}
		for _, c := range b.children {
			if !g.empty[c] {
				g.kids[i] = append(g.kids[i], kid{count: g.counts[c], rank: l.buckets[c].rank, b: c})
			}
		}
		heapInit(g.kids[i])
		g.empty[i] = len(g.kids[i]) == 0
	}
	g.synced = s.step
	if len(g.spread) > 0 {
		g.svc.groups = append(g.svc.groups, g)
	}
}

// addCount adds c tasks of the service to leaf and the buckets above it.
func (g *group) addCount(leaf int32, c int32) {
	for b := leaf; b > 0; b = g.lay.buckets[b].parent {
		g.counts[b] += c
	}
}

// countTask counts a new task of g's service on node n in g's tree.
func (g *group) countTask(n int32) {
	if leaf := g.lay.leafOf[n]; leaf >= 0 {
		g.addCount(leaf, 1)
	}
}

// release drops g's tree once its tasks are all handled, keeping its
// buffers for the next group.
func (g *group) release(s *state) {
	if g.lay == nil {
		return
	}
	s.entryBufs = append(s.entryBufs, g.buf)
	if g.gone != nil {
		s.bitsets = append(s.bitsets, g.gone)
	}
	g.lay, g.counts, g.empty, g.kids, g.heaps, g.buf, g.gone = nil, nil, nil, nil, nil, nil, nil
	if len(g.spread) > 0 {
		g.svc.groups = deleteFirst(g.svc.groups, g)
	}
}

// deleteFirst removes the first x from list.
func deleteFirst(list []*group, x *group) []*group {
	for i, y := range list {
		if y == x {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// pick returns the best node for the next task of g, or -1 if none fits.
func (g *group) pick(s *state) int32 {
	if g.lay == nil {
		g.build(s)
	}
	if s.binpack {
		g.sync(s)
	}
	for !g.empty[0] {
		leaf := g.descend()
		if leaf < 0 {
			continue // a bucket turned out empty; choose again
		}
		if n := s.best(g, leaf); n >= 0 {
			return n
		}
		g.empty[leaf] = true
	}
	return -1
}

// descend follows the child with the fewest tasks of the service (the
// smallest value on a tie) down to a leaf. It returns -1 when it finds a
// bucket without children left, which it marks empty.
func (g *group) descend() int32 {
	b := int32(0)
	for !g.lay.buckets[b].leaf {
		next := g.bestKid(b)
		if next < 0 {
			g.empty[b] = true
			return -1
		}
		b = next
	}
	return b
}

// bestKid returns the child of b with the fewest tasks of the service,
// dropping empty children and updating stale counts on the way.
func (g *group) bestKid(b int32) int32 {
	h := &g.kids[b]
	for len(*h) > 0 {
		top := &(*h)[0]
		switch {
		case g.empty[top.b]:
			heapPop(h)
		case top.count != g.counts[top.b]:
			top.count = g.counts[top.b]
			heapDown(*h, 0)
		default:
			return top.b
		}
	}
	return -1
}

// best returns the best node of leaf that fits a task of g, or -1. Nodes
// only lose resources and ports during a call, so a node that does not fit
// is dropped for good. A stale entry is refreshed (Spread: keys only grow,
// so it moves down) or dropped (Binpack: sync pushed a fresh one).
func (s *state) best(g *group, leaf int32) int32 {
	h := &g.heaps[leaf]
	for len(*h) > 0 {
		top := &(*h)[0]
		n := top.node()
		switch now := s.entry(g, n); {
		case now != *top && s.binpack:
			entryHeapPop(h)
		case now != *top:
			*top = now
			entryHeapDown(*h, 0)
		case !s.fits(g, n):
			entryHeapPop(h)
			if s.binpack {
				g.gone.set(n)
			}
		default:
			return n
		}
	}
	return -1
}

// sync pushes a fresh entry for each candidate placed on since g last
// looked, for Binpack: a placement makes a node fuller, which moves it up,
// so it cannot wait in the heap to be found stale.
func (g *group) sync(s *state) {
	for n := s.recent; n >= 0 && s.nodes[n].modified > g.synced; n = s.nodes[n].next {
		leaf := g.lay.leafOf[n]
		if leaf < 0 || g.gone.test(n) || g.empty[leaf] {
			continue
		}
		entryHeapPush(&g.heaps[leaf], s.entry(g, n))
	}
	g.synced = s.step
}

// lesser is an element of a heap.
type lesser[T any] interface{ less(T) bool }

// heapInit orders h as a min-heap.
func heapInit[T lesser[T]](h []T) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		heapDown(h, i)
	}
}

// heapPush adds x to the heap h.
func heapPush[T lesser[T]](h *[]T, x T) {
	*h = append(*h, x)
	i := len(*h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !(*h)[i].less((*h)[p]) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

// heapPop removes the smallest element of the heap h.
func heapPop[T lesser[T]](h *[]T) {
	last := len(*h) - 1
	(*h)[0] = (*h)[last]
	var zero T
	(*h)[last] = zero
	*h = (*h)[:last]
	heapDown(*h, 0)
}

// heapDown moves h[i] down to its place.
func heapDown[T lesser[T]](h []T, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// The entry heaps are the hot path, written for entry alone so that less
// is inlined, and 4-ary: half as deep as a binary heap, and a node's
// children share a cache line or two.
const arity = 4

// entryHeapInit orders h as a min-heap.
func entryHeapInit(h []entry) {
	for i := (len(h) - 2) / arity; i >= 0; i-- {
		entryHeapDown(h, i)
	}
}

// entryHeapPush adds x to the heap h.
func entryHeapPush(h *[]entry, x entry) {
	*h = append(*h, x)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / arity
		if !x.less(&a[p]) {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = x
}

// entryHeapPop removes the smallest entry of the heap h.
func entryHeapPop(h *[]entry) {
	last := len(*h) - 1
	(*h)[0] = (*h)[last]
	*h = (*h)[:last]
	entryHeapDown(*h, 0)
}

// entryHeapDown moves h[i] down to its place.
func entryHeapDown(h []entry, i int) {
	if i >= len(h) {
		return
	}
	x := h[i]
	for {
		first := arity*i + 1
		if first >= len(h) {
			break
		}
		m := first
		for c := first + 1; c < min(first+arity, len(h)); c++ {
			if h[c].less(&h[m]) {
				m = c
			}
		}
		if !h[m].less(&x) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}
