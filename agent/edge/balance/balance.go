// Package balance picks the upstream of a request: round robin, smooth
// weighted round robin, least connections, rendezvous hashing of the
// client address or of a header, and the better of two random picks. Each
// policy is a small immutable type behind Policy; counters are atomics, so
// Select takes no lock. It is pure: no I/O and no goroutines.
package balance

import (
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"
)

// Upstream is one place a route sends requests to.
type Upstream struct {
	// Key names the upstream (its address); hashing policies hash it.
	Key string
	// Weight counts for Weighted (0: 1).
	Weight int
	// InFlight counts the requests it serves now; the caller increments
	// and decrements it and may share it between tables so that it
	// survives a configuration change. Nil counts as 0.
	InFlight *atomic.Int64
}

func (u *Upstream) load() int64 {
	if u.InFlight == nil {
		return 0
	}
	return u.InFlight.Load()
}

func (u *Upstream) weight() int {
	if u.Weight <= 0 {
		return 1
	}
	return u.Weight
}

// Request is what a policy may look at.
type Request struct {
	// Key is what hashing policies hash: the client address for IPHash,
	// the header's value for HashHeader. Empty: they fall back to round
	// robin.
	Key string
	// Usable reports whether an upstream may be picked (healthy and not
	// tried yet by this request). Nil: all are usable.
	Usable func(i int) bool
}

func (r *Request) usable(i int) bool { return r.Usable == nil || r.Usable(i) }

// Policy picks an upstream.
type Policy interface {
	// Select returns the index of the chosen upstream in ups, or -1 when
	// none is usable. ups is the slice the policy was made for.
	Select(ups []Upstream, r *Request) int
}

// Kind names a policy.
type Kind int

// The policies.
const (
	RoundRobin Kind = iota
	Weighted
	LeastConn
	IPHash
	HashHeader
	RandomTwo
)

// New returns a policy of kind for ups (Weighted precomputes its order
// from the weights, so it is made for one set of upstreams).
func New(kind Kind, ups []Upstream) Policy {
	switch kind {
	case Weighted:
		return newWeighted(ups)
	case LeastConn:
		return &leastConn{}
	case IPHash, HashHeader:
		return &rendezvous{}
	case RandomTwo:
		return &randomTwo{intN: rand.IntN}
	default:
		return &roundRobin{}
	}
}

// roundRobin takes the upstreams in turn, skipping unusable ones.
type roundRobin struct{ next atomic.Uint64 }

func (p *roundRobin) Select(ups []Upstream, r *Request) int {
	// the n-th usable one, so that an unusable upstream's turns spread
	// evenly over the others instead of all going to its neighbour
	usable := 0
	for i := range ups {
		if r.usable(i) {
			usable++
		}
	}
	if usable == 0 {
		return -1
	}
	k := int((p.next.Add(1) - 1) % uint64(usable))
	for i := range ups {
		if r.usable(i) {
			if k == 0 {
				return i
			}
			k--
		}
	}
	for i := range ups { // health changed between the passes
		if r.usable(i) {
			return i
		}
	}
	return -1
}

// weighted is smooth weighted round robin (nginx's): the order for the
// weights is computed once, then walked with an atomic counter, so weights
// 1 and 2 give exactly B A B, B A B, ...
type weighted struct {
	order []int
	next  atomic.Uint64
}

// maxWeight bounds a weight so that the precomputed order stays small.
const maxWeight = 1000

func newWeighted(ups []Upstream) *weighted {
	w := make([]int, len(ups))
	total := 0
	for i := range ups {
		w[i] = min(ups[i].weight(), maxWeight)
		total += w[i]
	}
	if g := gcdAll(w); g > 1 {
		total = 0
		for i := range w {
			w[i] /= g
			total += w[i]
		}
	}
	cur := make([]int, len(ups))
	order := make([]int, 0, total)
	for range total {
		best := -1
		for i := range w {
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, best)
	}
	return &weighted{order: order}
}

func gcdAll(w []int) int {
	g := 0
	for _, x := range w {
		a, b := g, x
		for b != 0 {
			a, b = b, a%b
		}
		g = a
	}
	return g
}

func (p *weighted) Select(ups []Upstream, r *Request) int {
	n := len(p.order)
	if n == 0 || len(ups) == 0 {
		return -1
	}
	start := int((p.next.Add(1) - 1) % uint64(n))
	for k := 0; k < n; k++ {
		if i := p.order[(start+k)%n]; i < len(ups) && r.usable(i) {
			return i
		}
	}
	return -1
}

// leastConn picks the usable upstream with the fewest requests in flight;
// ties go to the higher weight, then in turn.
type leastConn struct{ next atomic.Uint64 }

func (p *leastConn) Select(ups []Upstream, r *Request) int {
	n := len(ups)
	if n == 0 {
		return -1
	}
	start := int((p.next.Add(1) - 1) % uint64(n))
	best := -1
	var bestLoad int64
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if !r.usable(i) {
			continue
		}
		l := ups[i].load()
		if best < 0 || l < bestLoad || (l == bestLoad && ups[i].weight() > ups[best].weight()) {
			best, bestLoad = i, l
		}
	}
	return best
}

// rendezvous is highest-random-weight hashing of Request.Key with each
// upstream's key: a key stays on its upstream, and when the set changes
// only the keys of the upstreams that left move.
type rendezvous struct{ fallback roundRobin }

func (p *rendezvous) Select(ups []Upstream, r *Request) int {
	if r.Key == "" {
		return p.fallback.Select(ups, r)
	}
	best := -1
	var bestScore uint64
	for i := range ups {
		if !r.usable(i) {
			continue
		}
		if s := Score(r.Key, ups[i].Key); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// Score is the rendezvous score of key on upstream: FNV-1a of both, mixed
// (splitmix64's finalizer) so that close keys spread.
func Score(key, upstream string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(upstream))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// randomTwo draws two usable upstreams and keeps the one with fewer
// requests in flight ("the power of two choices").
type randomTwo struct{ intN func(int) int }

func (p *randomTwo) Select(ups []Upstream, r *Request) int {
	var buf [16]int
	cand := buf[:0]
	for i := range ups {
		if r.usable(i) {
			cand = append(cand, i)
		}
	}
	switch len(cand) {
	case 0:
		return -1
	case 1:
		return cand[0]
	}
	a := p.intN(len(cand))
	b := p.intN(len(cand) - 1)
	if b >= a {
		b++
	}
	x, y := cand[a], cand[b]
	if ups[y].load() < ups[x].load() {
		return y
	}
	return x
}
