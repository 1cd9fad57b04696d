package scheduler

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// referencePlace is Place written the obvious way: it scores every node
// for every task. It is the specification the heaps and lazy updates of
// Place must agree with, on clusters small enough for it.
func referencePlace(nodes []Node, placed, pending []Task, strategy Strategy) map[string]string {
	var sorted []*Node
	for i := range nodes {
		if !slices.ContainsFunc(sorted, func(n *Node) bool { return n.ID == nodes[i].ID }) {
			sorted = append(sorted, &nodes[i])
		}
	}
	slices.SortStableFunc(sorted, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) })
	var on []Task // every task on a known node, placed ones and then the new ones
	for _, t := range placed {
		if slices.ContainsFunc(sorted, func(n *Node) bool { return n.ID == t.NodeID }) {
			on = append(on, t)
		}
	}
	assigned := map[string]string{}
	seen := map[string]bool{}
	for _, t := range pending {
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		if n := referencePick(sorted, on, t, strategy); n != nil {
			assigned[t.ID] = n.ID
			t.NodeID = n.ID
			on = append(on, t)
		}
	}
	return assigned
}

// use is what the tasks on a node take, as the reference sees it.
type use struct {
	used         Resources
	tasks, ofSvc int
	ports        []Port
}

// referencePick returns the node for t, or nil.
func referencePick(nodes []*Node, on []Task, t Task, strategy Strategy) *Node {
	uses := map[string]*use{}
	for _, n := range nodes {
		uses[n.ID] = &use{}
	}
	for _, o := range on {
		u := uses[o.NodeID]
		u.used.CPUMillis += max(o.Reserve.CPUMillis, 0)
		u.used.MemoryBytes += max(o.Reserve.MemoryBytes, 0)
		u.tasks++
		if o.ServiceID == t.ServiceID {
			u.ofSvc++
		}
		u.ports = append(u.ports, o.HostPorts...)
	}
	var cands, fit []*Node
	for _, n := range nodes {
		if !n.Ready || !n.Active || slices.ContainsFunc(t.Constraints, func(c Constraint) bool { return !c.Matches(n) }) {
			continue
		}
		cands = append(cands, n)
		if referenceFits(n, uses[n.ID], t) {
			fit = append(fit, n)
		}
	}
	for _, attr := range t.Spread {
		a, _ := parseAttr(attr)
		val := func(n *Node) string { v, _ := a.value(n); return v }
		count := map[string]int{} // tasks of the service per value, on the candidates
		for _, c := range cands {
			count[val(c)] += uses[c.ID].ofSvc
		}
		best := ""
		for i, f := range fit {
			if v := val(f); i == 0 || count[v] < count[best] || (count[v] == count[best] && v < best) {
				best = v
			}
		}
		other := func(n *Node) bool { return val(n) != best }
		fit = slices.DeleteFunc(fit, other)
		cands = slices.DeleteFunc(cands, other)
	}
	var best *Node
	var bestKey [2]float64
	for _, n := range fit {
		u := uses[n.ID]
		key := [2]float64{float64(u.ofSvc), float64(u.tasks)}
		if strategy == Binpack {
			cpu := fraction(u.used.CPUMillis+t.Reserve.CPUMillis, n.Capacity.CPUMillis)
			mem := fraction(u.used.MemoryBytes+t.Reserve.MemoryBytes, n.Capacity.MemoryBytes)
			key = [2]float64{-max(cpu, mem), float64(u.ofSvc)}
		}
		if best == nil || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey = n, key
		}
	}
	return best
}

// referenceFits reports whether t fits on n, which u takes.
func referenceFits(n *Node, u *use, t Task) bool {
	for _, p := range u.ports {
		if p.Number != 0 && slices.ContainsFunc(t.HostPorts, func(q Port) bool { return samePort(p, q) }) {
			return false
		}
	}
	ok := func(need, capacity, used int64) bool { return need == 0 || (capacity > 0 && capacity-used >= need) }
	return ok(t.Reserve.CPUMillis, n.Capacity.CPUMillis, u.used.CPUMillis) &&
		ok(t.Reserve.MemoryBytes, n.Capacity.MemoryBytes, u.used.MemoryBytes)
}

// randomCluster returns a small random cluster, tasks on it and pending
// tasks of a few kinds in random order.
func randomCluster(seed uint64, nodeCount, placedCount, pendingCount int) ([]Node, []Task, []Task) {
	r := rand.New(rand.NewPCG(seed, 1))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	var nodes []Node
	for i := range nodeCount {
		n := Node{
			ID: fmt.Sprintf("n%02d", r.IntN(nodeCount*2)), Name: fmt.Sprintf("name%d", i),
			Ready: r.IntN(8) > 0, Active: r.IntN(8) > 0, Labels: map[string]string{},
			Capacity: Resources{CPUMillis: int64(r.IntN(5)) * 1000, MemoryBytes: int64(r.IntN(5)) * gib},
		}
		if z := pick("a", "b", "c", ""); z != "" {
			n.Labels["zone"] = z
		}
		if rack := pick("1", "2", ""); rack != "" {
			n.Labels["rack"] = rack
		}
		nodes = append(nodes, n)
	}
	randomTask := func(id, svc string) Task {
		t := Task{ID: id, ServiceID: svc}
		t.Reserve = Resources{CPUMillis: int64(r.IntN(3)) * 500, MemoryBytes: int64(r.IntN(3)) * gib / 2}
		for range r.IntN(3) {
			c, _ := ParseConstraint(pick("node.labels.zone==a", "node.labels.zone!=b", "node.labels.rack==1", "node.name!=name1", "node.id!=n03"))
			t.Constraints = append(t.Constraints, c)
		}
		if r.IntN(2) == 0 {
			t.Spread = []string{pick("node.labels.zone", "node.labels.rack", "node.id")}
			if r.IntN(2) == 0 {
				t.Spread = append(t.Spread, pick("node.labels.zone", "node.labels.rack"))
			}
		}
		if r.IntN(3) == 0 {
			t.HostPorts = []Port{{Number: []int32{80, 443}[r.IntN(2)], Protocol: pick("tcp", "udp", "")}}
		}
		return t
	}
	var placed []Task
	for i := range placedCount {
		t := randomTask(fmt.Sprintf("p%d", i), pick("s1", "s2", "s3", "s4"))
		t.NodeID = fmt.Sprintf("n%02d", r.IntN(nodeCount*2))
		placed = append(placed, t)
	}
	// A few kinds of pending task per service, each repeated, shuffled so
	// that groups interleave.
	var pending []Task
	for s := range 4 {
		svc := fmt.Sprintf("s%d", s+1)
		for k := range 1 + r.IntN(3) {
			kind := randomTask("", svc)
			for j := range 1 + r.IntN(pendingCount/8+1) {
				t := kind
				t.ID = fmt.Sprintf("%s.%d.%d", svc, k, j)
				pending = append(pending, t)
			}
		}
	}
	r.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	if len(pending) > 1 {
		pending = append(pending, pending[0]) // a duplicate ID
	}
	return nodes, placed, pending
}

// Place agrees with the obvious implementation on many random clusters:
// small ones, and some of a few hundred nodes (several words per bitset).
func TestPlaceMatchesReference(t *testing.T) {
	small, large := 3000, 12
	if testing.Short() {
		small, large = 300, 3
	}
	for seed := range uint64(small + large) {
		nodes, placed, pending := randomCluster(seed, 1+int(seed%12), int(seed%20), 5+int(seed%60))
		if seed >= uint64(small) {
			nodes, placed, pending = randomCluster(seed, 64+int(seed*37%300), 300, 400)
		}
		for _, strategy := range []Strategy{Spread, Binpack} {
			got := Place(nodes, placed, pending, strategy)
			want := referencePlace(nodes, placed, pending, strategy)
			if !maps.Equal(got.Assigned, want) {
				t.Fatalf("seed %d, strategy %d, %d nodes:\n got %v\nwant %v", seed, strategy, len(nodes), got.Assigned, want)
			}
			checkComplete(t, pending, got)
		}
	}
}

// samePort reports whether p and q are the same host port.
func samePort(p, q Port) bool {
	proto := func(p Port) string {
		if p.Protocol == "" {
			return "tcp"
		}
		return strings.ToLower(p.Protocol)
	}
	return p.Number == q.Number && proto(p) == proto(q)
}
