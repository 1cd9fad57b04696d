package scheduler

import (
	"cmp"
	"slices"
)

// layout is the candidates of a set of constraints arranged in a tree of
// spread values, one level per spread attribute, shared by the groups with
// the same constraints and spread attributes. Without spread attributes
// the tree is a single leaf.
type layout struct {
	cands   []int32 // ready, active and matching nodes, by ID
	leafOf  []int32 // per node: its leaf, -1 if not a candidate
	localOf []int32 // per node: its index in its leaf, if a candidate
	buckets []shape // the root first, children after their parent
	leaves  int     // how many buckets are leaves
	inners  int     // and how many are not

	// Spread: per leaf, its candidates by their tasks, kept current while
	// groups that use the layout have tasks left.
	totals []tiers
}

// shape is a bucket of a layout: the candidates that share the values of
// the first spread attributes.
type shape struct {
	parent   int32
	rank     int32 // the order of its value among its siblings' values
	leaf     bool
	children []int32
	nodes    []int32 // leaf: its candidates, by ID
	slot     int32   // its index among the layout's leaves, or among its inner buckets
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
	key := g.layoutKey()
	if l := s.layouts[key]; l != nil {
		return l
	}
	l := &layout{cands: s.candidatesFor(g), leafOf: make([]int32, len(s.nodes)), localOf: make([]int32, len(s.nodes))}
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
		l.localOf[n] = int32(len(l.buckets[b].nodes))
		l.buckets[b].nodes = append(l.buckets[b].nodes, n)
	}
	l.finish(values)
	s.layouts[key] = l
	if !s.binpack {
		s.keepTotals(l)
	}
	return l
}

// finish numbers the leaves and the inner buckets apart, and ranks every
// bucket's children by value.
func (l *layout) finish(values []string) {
	for i := range l.buckets {
		b := &l.buckets[i]
		if b.leaf {
			b.slot = int32(l.leaves)
			l.leaves++
			continue
		}
		b.slot = int32(l.inners)
		l.inners++
		byValue := slices.Clone(b.children)
		slices.SortFunc(byValue, func(x, y int32) int { return cmp.Compare(values[x], values[y]) })
		for rank, c := range byValue {
			l.buckets[c].rank = int32(rank)
		}
	}
}

// build makes g's tree from its layout and the nodes as they are now.
func (g *group) build(s *state) {
	l := s.layoutFor(g)
	g.lay = l
	counts := g.svc.tasksPerNode(s)
	g.counts = make([]int32, len(l.buckets))
	g.empty = make([]bool, len(l.buckets))
	if len(g.spread) > 0 {
		for _, n := range l.cands {
			if c := counts[n]; c > 0 {
				g.addCount(l.leafOf[n], c)
			}
		}
	}
	g.leaves = make([]*leaf, l.leaves)
	if s.binpack {
		g.gone = s.takeBitset()
		g.synced = s.step
	}
	// Children come after their parent: build the inner heaps bottom up.
	g.kids = make([][]kid, l.inners)
	for i := len(l.buckets) - 1; i >= 0; i-- {
		b := &l.buckets[i]
		if b.leaf {
			continue
		}
		kids := make([]kid, 0, len(b.children))
		for _, c := range b.children {
			if !g.empty[c] {
				kids = append(kids, kid{count: g.counts[c], rank: l.buckets[c].rank, b: c})
			}
		}
		kidHeapInit(kids)
		g.kids[b.slot] = kids
		g.empty[i] = len(kids) == 0
	}
	if len(g.spread) > 0 || !s.binpack {
		g.svc.groups = append(g.svc.groups, g)
	}
}

// addCount adds c tasks of the service to leaf and the buckets above it.
func (g *group) addCount(leaf int32, c int32) {
	for b := leaf; b > 0; b = g.lay.buckets[b].parent {
		g.counts[b] += c
	}
}

// countTask counts a new task of g's service on node n, which had old
// tasks of the service.
func (g *group) countTask(s *state, n, old int32) {
	leaf := g.lay.leafOf[n]
	if leaf < 0 {
		return
	}
	if len(g.spread) > 0 {
		g.addCount(leaf, 1)
	}
	if !s.binpack {
		g.moveLevel(n, old)
	}
}

// release drops g's tree once its tasks are all handled.
func (g *group) release(s *state) {
	if g.lay == nil {
		return
	}
	if s.binpack {
		g.releaseBinpack(s)
	}
	g.lay, g.counts, g.empty, g.kids, g.leaves = nil, nil, nil, nil, nil
	g.svc.groups = deleteFirst(g.svc.groups, g)
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
		lf := g.leafAt(s, leaf)
		n := int32(-1)
		if s.binpack {
			n = s.bestBinpack(g, lf)
		} else {
			n = s.bestSpread(g, lf, leaf)
		}
		if n >= 0 {
			return n
		}
		g.empty[leaf] = true
	}
	return -1
}

// leaf is a group's state in one leaf of its tree, made when the group
// first looks at the leaf: with Spread, its candidates that may still fit
// by level (their tasks of the service) and a cursor; with Binpack, a heap
// of its candidates that fit, fullest first.
type leaf struct {
	above  bitset // candidates not at level 0
	zero   int32  // candidates at level 0
	levels tiers  // candidates at level 1 and up
	// No candidate at level has (tasks, index) below (curTasks, curIndex).
	level, curTasks, curIndex int32

	heap []entry
}

// leafAt returns g's state in leaf b, making it on first use.
func (g *group) leafAt(s *state, b int32) *leaf {
	slot := g.lay.buckets[b].slot
	if lf := g.leaves[slot]; lf != nil {
		return lf
	}
	lf := &leaf{}
	if s.binpack {
		s.initBinpack(g, lf, b)
	} else {
		g.initSpread(lf, b)
	}
	g.leaves[slot] = lf
	return lf
}

// leafOf returns g's state in the leaf of candidate n, or nil if it has
// none yet.
func (g *group) leafOf(n int32) *leaf {
	return g.leaves[g.lay.buckets[g.lay.leafOf[n]].slot]
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
	h := &g.kids[g.lay.buckets[b].slot]
	for len(*h) > 0 {
		top := &(*h)[0]
		switch {
		case g.empty[top.b]:
			kidHeapPop(h)
		case top.count != g.counts[top.b]:
			top.count = g.counts[top.b]
			kidHeapDown(*h, 0)
		default:
			return top.b
		}
	}
	return -1
}

// kidHeapInit orders h as a min-heap.
func kidHeapInit(h []kid) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		kidHeapDown(h, i)
	}
}

// kidHeapPop removes the smallest kid of the heap h.
func kidHeapPop(h *[]kid) {
	last := len(*h) - 1
	(*h)[0] = (*h)[last]
	*h = (*h)[:last]
	kidHeapDown(*h, 0)
}

// kidHeapDown moves h[i] down to its place.
func kidHeapDown(h []kid, i int) {
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
