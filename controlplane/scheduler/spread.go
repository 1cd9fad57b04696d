package scheduler

import (
	"math/bits"
	"slices"
)

// With Spread a leaf's best node has the fewest tasks of the service, then
// the fewest tasks, then the smallest ID. The order by (tasks, ID) is the
// same for every group, so each layout keeps it once per leaf (totals),
// current through every placement; each group keeps only its leaf's
// candidates by their tasks of the service (levels). A pick intersects the
// lowest level with the totals, word by word, from a cursor below which
// no candidate of that level can be: within a level, candidates only
// leave (to the next level, or because they no longer fit) and their
// tasks only grow.
//
// A heap per group keyed by (service tasks, tasks, ID) would do the same,
// but every placement by another group makes entries stale in every
// group, which costs a heap operation each when groups interleave.

// tiers sorts the candidates of a leaf, by their index in the leaf, into
// sets by a count: one bitset per distinct count, ascending.
type tiers struct {
	values []int32
	sets   []bitset
	sizes  []int32
	words  int
	last   int // the tier added to last, which the next add likely wants
}

func newTiers(size int) tiers { return tiers{words: (size + 63) / 64} }

// add puts candidate i in the tier of count v.
func (t *tiers) add(v, i int32) {
	k, ok := t.last, t.last < len(t.values) && t.values[t.last] == v
	if !ok {
		k, ok = slices.BinarySearch(t.values, v)
	}
	t.last = k
	if !ok {
		t.values = slices.Insert(t.values, k, v)
		t.sets = slices.Insert(t.sets, k, make(bitset, t.words))
		t.sizes = slices.Insert(t.sizes, k, 0)
	}
	t.sets[k].set(i)
	t.sizes[k]++
}

// remove takes candidate i out of the tier of count v, dropping the tier
// when it empties, and reports whether i was there.
func (t *tiers) remove(v, i int32) bool {
	k, ok := slices.BinarySearch(t.values, v)
	if !ok || !t.sets[k].test(i) {
		return false
	}
	t.sets[k].clear(i)
	t.sizes[k]--
	if t.sizes[k] == 0 {
		t.values = slices.Delete(t.values, k, k+1)
		t.sets = slices.Delete(t.sets, k, k+1)
		t.sizes = slices.Delete(t.sizes, k, k+1)
	}
	return true
}

// spreadLeaf is a group's state in one leaf.
type spreadLeaf struct {
	levels tiers // the candidates that may still fit, by tasks of the service
	// No candidate at level has (tasks, index) below (curTasks, curIndex).
	level, curTasks, curIndex int32
}

// buildSpread sorts every leaf's candidates by their tasks of g's service.
// Whether they fit is checked as they come up.
func (g *group) buildSpread(s *state, counts []int32) {
	l := g.lay
	g.leaves = make([]spreadLeaf, len(l.buckets))
	for b, sh := range l.buckets {
		if !sh.leaf {
			continue
		}
		sl := &g.leaves[b]
		sl.levels = newTiers(len(sh.nodes))
		for i, n := range sh.nodes {
			sl.levels.add(counts[n], int32(i))
		}
		sl.level = -1
		g.empty[b] = len(sh.nodes) == 0
	}
}

// moveLevel moves node n of g's leaves from level old to old+1 after a
// task of the service was placed on it.
func (g *group) moveLevel(n, old int32) {
	leaf := g.lay.leafOf[n]
	sl := &g.leaves[leaf]
	i := g.lay.localOf[n]
	if sl.levels.remove(old, i) {
		sl.levels.add(old+1, i)
	}
}

// bestSpread returns the best node of leaf that fits a task of g, or -1.
func (s *state) bestSpread(g *group, leaf int32) int32 {
	sl := &g.leaves[leaf]
	retried := false
	for len(sl.levels.values) > 0 {
		if level := sl.levels.values[0]; level != sl.level {
			sl.level, sl.curTasks, sl.curIndex = level, -1, 0
		}
		if n := s.scan(g, sl, leaf); n >= 0 {
			return n
		}
		if len(sl.levels.values) > 0 && sl.levels.values[0] == sl.level {
			// Candidates are left at this level that the scan from the
			// cursor did not find: impossible, but never loop on it.
			if retried {
				return -1
			}
			retried = true
			sl.curTasks, sl.curIndex = -1, 0
		}
	}
	return -1
}

// scan walks the leaf's candidates at sl's level in (tasks, index) order
// from the cursor and returns the first that fits, dropping those that do
// not; -1 if none does.
func (s *state) scan(g *group, sl *spreadLeaf, leaf int32) int32 {
	totals := &g.lay.totals[leaf]
	nodes := g.lay.buckets[leaf].nodes
	members := sl.levels.sets[0]
	k, _ := slices.BinarySearch(totals.values, sl.curTasks)
	for ; k < len(totals.values); k++ {
		set := totals.sets[k]
		from := int32(0)
		if totals.values[k] == sl.curTasks {
			from = sl.curIndex
		}
		for w := int(from / 64); w < len(set); w++ {
			x := set[w] & members[w]
			if w == int(from/64) {
				x &= ^uint64(0) << (from % 64)
			}
			for ; x != 0; x &= x - 1 {
				i := int32(w*64 + bits.TrailingZeros64(x))
				if n := nodes[i]; s.fits(g, n) {
					sl.curTasks, sl.curIndex = totals.values[k], i
					return n
				}
				sl.levels.remove(sl.level, i) // it will not fit again
			}
		}
	}
	return -1
}

// keepTotals makes l's totals, to be kept current while groups that use
// l have tasks left.
func (s *state) keepTotals(l *layout) {
	l.totals = make([]tiers, len(l.buckets))
	for b, sh := range l.buckets {
		if !sh.leaf {
			continue
		}
		t := newTiers(len(sh.nodes))
		for i, n := range sh.nodes {
			t.add(s.nodes[n].tasks, int32(i))
		}
		l.totals[b] = t
	}
	s.live = append(s.live, l)
}

// dropTotals stops keeping l's totals once no group with tasks left uses
// it.
func (s *state) dropTotals(l *layout) {
	l.totals = nil
	s.live = slices.DeleteFunc(s.live, func(x *layout) bool { return x == l })
}

// moveTotal moves node n, which had old tasks, up one in the totals of
// every layout in use.
func (s *state) moveTotal(n, old int32) {
	for _, l := range s.live {
		if leaf := l.leafOf[n]; leaf >= 0 {
			t := &l.totals[leaf]
			t.remove(old, l.localOf[n])
			t.add(old+1, l.localOf[n])
		}
	}
}
