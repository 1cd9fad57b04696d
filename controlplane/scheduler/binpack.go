package scheduler

import "math"

// With Binpack a leaf keeps its candidates that fit in a heap, fullest
// first. A placement makes a node fuller, which moves it up its heaps, so
// a group cannot wait to find the change when the node reaches the top:
// before each pick it pushes a fresh entry for every candidate placed on
// since its last pick (sync), and drops stale entries as they surface.

// entry is a node in a leaf's heap, smallest (key, sub) first: key orders
// the nodes fullest first once the task is on them, and sub is the
// service's tasks on the node and then the node. An entry is stale when it
// differs from the node's current entry.
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
	cpu := fraction(addSat(ns.cpu, g.reserve.CPUMillis), ns.node.Capacity.CPUMillis)
	mem := fraction(addSat(ns.mem, g.reserve.MemoryBytes), ns.node.Capacity.MemoryBytes)
	// The bits of a float64 ≥ 0 order like its value; inverted, the
	// fullest comes first.
	return entry{key: ^math.Float64bits(max(cpu, mem)), sub: uint64(uint32(g.svc.counts[n]))<<32 | uint64(uint32(n))}
}

// fraction is used/capacity, 0 for an unknown capacity.
func fraction(used, capacity int64) float64 {
	if capacity <= 0 {
		return 0
	}
	return float64(used) / float64(capacity)
}

// initBinpack fills the heap of lf, leaf b, with its candidates that fit
// now; the others will never fit during this call.
func (s *state) initBinpack(g *group, lf *leaf, b int32) {
	nodes := g.lay.buckets[b].nodes
	lf.heap = s.takeEntries(len(nodes))
	for _, n := range nodes {
		if !g.gone.test(n) && s.fits(g, n) {
			lf.heap = append(lf.heap, s.entry(g, n))
		} else {
			g.gone.set(n)
		}
	}
	entryHeapInit(lf.heap)
}

// bestBinpack returns the fullest node of leaf that fits a task of g, or
// -1. Nodes only lose resources and ports during a call, so a node that
// does not fit is dropped for good.
func (s *state) bestBinpack(g *group, lf *leaf) int32 {
	h := &lf.heap
	for len(*h) > 0 {
		top := &(*h)[0]
		n := top.node()
		switch {
		case s.entry(g, n) != *top: // sync pushed a fresh one
			entryHeapPop(h)
		case !s.fits(g, n):
			entryHeapPop(h)
			g.gone.set(n)
		default:
			return n
		}
	}
	return -1
}

// sync pushes a fresh entry for each candidate placed on since g last
// looked. The recent list has each node once, most recent first, so this
// costs the number of distinct nodes placed on meanwhile.
func (g *group) sync(s *state) {
	for n := s.recent; n >= 0 && s.nodes[n].modified > g.synced; n = s.nodes[n].next {
		b := g.lay.leafOf[n]
		if b < 0 || g.gone.test(n) || g.empty[b] {
			continue
		}
		if lf := g.leafOf(n); lf != nil { // else it will be made fresh
			entryHeapPush(&lf.heap, s.entry(g, n))
		}
	}
	g.synced = s.step
}

// releaseBinpack keeps g's buffers for the next group.
func (g *group) releaseBinpack(s *state) {
	for _, lf := range g.leaves {
		if lf != nil {
			s.putEntries(lf.heap)
		}
	}
	s.bitsets = append(s.bitsets, g.gone)
	g.gone = nil
}

// The entry heaps are the hot path of Binpack, written for entry alone so
// that less is inlined, and 4-ary: half as deep as a binary heap, and a
// node's children share a cache line or two.
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
