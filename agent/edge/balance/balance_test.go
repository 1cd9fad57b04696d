package balance

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

func ups(weights ...int) []Upstream {
	u := make([]Upstream, len(weights))
	for i, w := range weights {
		u[i] = Upstream{Key: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w, InFlight: new(atomic.Int64)}
	}
	return u
}

func counts(p Policy, u []Upstream, n int, r func(k int) *Request) []int {
	c := make([]int, len(u))
	for k := 0; k < n; k++ {
		if i := p.Select(u, r(k)); i >= 0 {
			c[i]++
		}
	}
	return c
}

func plain(int) *Request { return &Request{} }

func TestWeightedIsExact(t *testing.T) {
	u := ups(1, 2)
	p := New(Weighted, u)
	var seq []int
	for range 6 {
		seq = append(seq, p.Select(u, &Request{}))
	}
	if fmt.Sprint(seq) != "[1 0 1 1 0 1]" {
		t.Errorf("weights 1, 2 gave %v, want [1 0 1 1 0 1]", seq)
	}
	c := counts(p, u, 3000, plain)
	if c[0] != 1000 || c[1] != 2000 {
		t.Errorf("weights 1:2 gave %v", c)
	}
}

// referenceWeighted is nginx's smooth weighted round robin as written
// there: mutable current weights, updated on every pick.
type referenceWeighted struct{ w, cur []int }

func (r *referenceWeighted) pick() int {
	total, best := 0, -1
	for i := range r.w {
		r.cur[i] += r.w[i]
		total += r.w[i]
		if best < 0 || r.cur[i] > r.cur[best] {
			best = i
		}
	}
	r.cur[best] -= total
	return best
}

func TestWeightedAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 2000; round++ {
		n := 1 + rng.IntN(6)
		w := make([]int, n)
		for i := range w {
			w[i] = 1 + rng.IntN(20)
		}
		// the reference on gcd-reduced weights: same proportions, same order
		g := gcdAll(w)
		rw := make([]int, n)
		for i := range w {
			rw[i] = w[i] / g
		}
		ref := &referenceWeighted{w: rw, cur: make([]int, n)}
		u := ups(w...)
		p := New(Weighted, u)
		for k := 0; k < 200; k++ {
			if got, want := p.Select(u, &Request{}), ref.pick(); got != want {
				t.Fatalf("round %d weights %v pick %d: got %d, reference %d", round, w, k, got, want)
			}
		}
	}
}

func TestRoundRobinSkipsUnusable(t *testing.T) {
	u := ups(1, 1, 1)
	p := New(RoundRobin, u)
	down := &Request{Usable: func(i int) bool { return i != 1 }}
	c := counts(p, u, 300, func(int) *Request { return down })
	if c[1] != 0 || c[0] != 150 || c[2] != 150 {
		t.Errorf("round robin with 1 down: %v", c)
	}
	none := &Request{Usable: func(int) bool { return false }}
	for _, k := range []Kind{RoundRobin, Weighted, LeastConn, IPHash, HashHeader, RandomTwo} {
		if i := New(k, u).Select(u, none); i != -1 {
			t.Errorf("kind %d picked %d with none usable", k, i)
		}
		if i := New(k, nil).Select(nil, &Request{Key: "x"}); i != -1 {
			t.Errorf("kind %d picked %d of none", k, i)
		}
	}
}

func TestDistribution(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		w    []int
	}{
		{RoundRobin, []int{1, 1, 1}},
		{Weighted, []int{1, 2, 3}},
		{LeastConn, []int{1, 1, 1}},
		{IPHash, []int{1, 1, 1}},
		{HashHeader, []int{1, 1, 1}},
		{RandomTwo, []int{1, 1, 1}},
	} {
		u := ups(c.w...)
		p := New(c.kind, u)
		got := counts(p, u, 6000, func(k int) *Request { return &Request{Key: fmt.Sprintf("client-%d", k)} })
		total := 0
		for _, w := range c.w {
			total += w
		}
		for i, w := range c.w {
			want := 6000 * w / total
			if d := got[i] - want; d < -want/5 || d > want/5 {
				t.Errorf("kind %d weights %v: %v, want about %d for %d", c.kind, c.w, got, want, i)
			}
		}
	}
}

func TestLeastConnPicksTheLeastLoaded(t *testing.T) {
	u := ups(1, 1, 5)
	u[0].InFlight.Store(3)
	u[1].InFlight.Store(1)
	u[2].InFlight.Store(1)
	p := New(LeastConn, u)
	for range 10 {
		if i := p.Select(u, &Request{}); i != 2 {
			t.Fatalf("picked %d, want 2 (least loaded, heavier on the tie)", i)
		}
	}
	u[2].InFlight.Store(7)
	if i := p.Select(u, &Request{}); i != 1 {
		t.Fatalf("picked %d, want 1", i)
	}
}

// referenceRendezvous: every usable upstream scored, the highest wins.
func referenceRendezvous(u []Upstream, key string, usable func(int) bool) int {
	best := -1
	for i := range u {
		if usable(i) && (best < 0 || Score(key, u[i].Key) > Score(key, u[best].Key)) {
			best = i
		}
	}
	return best
}

func TestHashAgainstReferenceAndStability(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := 0; round < 1000; round++ {
		u := ups(make([]int, 1+rng.IntN(8))...)
		mask := rng.Uint32()
		usable := func(i int) bool { return mask&(1<<i) != 0 }
		p := New(IPHash, u)
		for k := 0; k < 20; k++ {
			key := fmt.Sprintf("192.0.2.%d", rng.IntN(256))
			got := p.Select(u, &Request{Key: key, Usable: usable})
			if want := referenceRendezvous(u, key, usable); got != want {
				t.Fatalf("round %d key %s: %d, reference %d", round, key, got, want)
			}
		}
	}
	// a key stays put; removing an upstream moves only its keys
	u := ups(1, 1, 1, 1)
	p := New(HashHeader, u)
	moved := 0
	for k := 0; k < 1000; k++ {
		key := fmt.Sprintf("user-%d", k)
		a := p.Select(u, &Request{Key: key})
		if b := p.Select(u, &Request{Key: key}); a != b {
			t.Fatalf("key %s moved from %d to %d", key, a, b)
		}
		c := p.Select(u, &Request{Key: key, Usable: func(i int) bool { return i != 3 }})
		if a != 3 && c != a {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys moved that were not on the removed upstream", moved)
	}
}

func TestRandomTwoPrefersTheLessLoaded(t *testing.T) {
	u := ups(1, 1)
	u[0].InFlight.Store(10)
	p := New(RandomTwo, u)
	c := counts(p, u, 100, plain)
	if c[1] != 100 {
		t.Errorf("random two with a loaded upstream: %v", c)
	}
}
