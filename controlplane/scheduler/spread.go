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
	last   int    // the tier added to last, which the next add likely wants
	spare  bitset // the set of the last tier dropped, for the next new one
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
		set := t.spare
		if set == nil {
			set = make(bitset, t.words)
		}
		t.spare = nil
		t.values = slices.Insert(t.values, k, v)
		t.sets = slices.Insert(t.sets, k, set)
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
		t.spare = t.sets[k] // empty again
		t.values = slices.Delete(t.values, k, k+1)
		t.sets = slices.Delete(t.sets, k, k+1)
		t.sizes = slices.Delete(t.sizes, k, k+1)
	}
	return true
}

// initSpread sorts the candidates of lf, leaf b, by their tasks of g's
// service. Whether they fit is checked as they come up. Most candidates
// usually have none: level 0 is kept as the complement of above, so that
// only the others cost work.
func (g *group) initSpread(lf *leaf, b int32) {
	nodes := g.lay.buckets[b].nodes
	lf.levels = newTiers(len(nodes))
	lf.above = make(bitset, lf.levels.words)
	lf.zero = int32(len(nodes))
	lf.level = -1
	for i, n := range nodes {
		if c := g.svc.counts[n]; c > 0 {
			lf.above.set(int32(i))
			lf.zero--
			lf.levels.add(c, int32(i))
		}
	}
}

// lowest returns lf's lowest level with candidates that may fit, or -1.
func (lf *leaf) lowest() int32 {
	switch {
	case lf.zero > 0:
		return 0
	case len(lf.levels.values) > 0:
		return lf.levels.values[0]
	}
	return -1
}

// drop takes candidate i out of level, and reports whether it was there.
func (lf *leaf) drop(level, i int32) bool {
	if level > 0 {
		return lf.levels.remove(level, i)
	}
	if lf.above.test(i) {
		return false
	}
	lf.above.set(i)
	lf.zero--
	return true
}

// moveLevel moves candidate n of g from level old to old+1 after a task of
// the service was placed on it.
func (g *group) moveLevel(n, old int32) {
	lf := g.leafOf(n)
	if lf == nil {
		return // not looked at yet
	}
	if i := g.lay.localOf[n]; lf.drop(old, i) {
		lf.levels.add(old+1, i)
	}
}

// bestSpread returns the best node of lf, leaf b, that fits a task of g,
// or -1.
func (s *state) bestSpread(g *group, lf *leaf, b int32) int32 {
	retried := false
	for {
		level := lf.lowest()
		if level < 0 {
			return -1
		}
		if level != lf.level {
			lf.level, lf.curTasks, lf.curIndex = level, -1, 0
		}
		if n := s.scan(g, lf, b); n >= 0 {
			return n
		}
		if lf.lowest() == level {
			// Candidates are left at this level that the scan from the
			// cursor did not find: impossible, but never loop on it.
			if retried {
				return -1
			}
			retried = true
			lf.curTasks, lf.curIndex = -1, 0
		}
	}
}

// scan walks the candidates of lf, leaf b, at lf's level in (tasks,
// index) order from the cursor and returns the first that fits, dropping
// those that do not; -1 if none does.
func (s *state) scan(g *group, lf *leaf, b int32) int32 {
	totals := &g.lay.totals[b]
	nodes := g.lay.buckets[b].nodes
	var members bitset // nil at level 0: the complement of above
	if lf.level > 0 {
		members = lf.levels.sets[0]
	}
	k, _ := slices.BinarySearch(totals.values, lf.curTasks)
	for ; k < len(totals.values); k++ {
		set := totals.sets[k]
		from := int32(0)
		if totals.values[k] == lf.curTasks {
			from = lf.curIndex
		}
		for w := int(from / 64); w < len(set); w++ {
			var x uint64
			if members != nil {
				x = set[w] & members[w]
			} else {
				x = set[w] &^ lf.above[w]
			}
			if w == int(from/64) {
				x &= ^uint64(0) << (from % 64)
			}
			for ; x != 0; x &= x - 1 {
				i := int32(w*64 + bits.TrailingZeros64(x))
				if n := nodes[i]; s.fits(g, n) {
					lf.curTasks, lf.curIndex = totals.values[k], i
					return n
				}
				lf.drop(lf.level, i) // it will not fit again
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
