package scheduler

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// nodeOpt changes a test node.
type nodeOpt func(*Node)

// mkNode returns a ready, active node named like its ID with 4 CPUs and
// 8 GiB.
func mkNode(id string, opts ...nodeOpt) Node {
	n := Node{ID: id, Name: id, Ready: true, Active: true, Capacity: Resources{4000, 8 * gib}}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func label(k, v string) nodeOpt {
	return func(n *Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

func capacity(cpu, mem int64) nodeOpt { return func(n *Node) { n.Capacity = Resources{cpu, mem} } }
func notReady(n *Node)                { n.Ready = false }
func paused(n *Node)                  { n.Active = false }

// taskOpt changes a test task.
type taskOpt func(*Task)

func reserve(cpu, mem int64) taskOpt { return func(t *Task) { t.Reserve = Resources{cpu, mem} } }
func ports(ps ...Port) taskOpt       { return func(t *Task) { t.HostPorts = ps } }
func spread(attrs ...string) taskOpt { return func(t *Task) { t.Spread = attrs } }
func on(node string) taskOpt         { return func(t *Task) { t.NodeID = node } }
func svc(id string) taskOpt          { return func(t *Task) { t.ServiceID = id } }

func constraints(cs ...string) taskOpt {
	return func(t *Task) {
		for _, s := range cs {
			c, err := ParseConstraint(s)
			if err != nil {
				panic(err)
			}
			t.Constraints = append(t.Constraints, c)
		}
	}
}

// mkTasks returns count tasks of service svc, with IDs svc.1, svc.2, …
func mkTasks(svc string, count int, opts ...taskOpt) []Task {
	var ts []Task
	for i := 1; i <= count; i++ {
		t := Task{ID: fmt.Sprintf("%s.%d", svc, i), ServiceID: svc}
		for _, o := range opts {
			o(&t)
		}
		ts = append(ts, t)
	}
	return ts
}

// perNode counts the assigned tasks per node.
func perNode(r Result) map[string]int {
	m := map[string]int{}
	for _, n := range r.Assigned {
		m[n]++
	}
	return m
}

var tcp8080 = Port{Number: 8080}

func TestPlace(t *testing.T) {
	zoned := []Node{mkNode("a1", label("zone", "a")), mkNode("a2", label("zone", "a")), mkNode("b1", label("zone", "b"))}
	tests := []struct {
		name       string
		nodes      []Node
		placed     []Task
		pending    []Task
		strategy   Strategy
		wantCounts map[string]int    // assigned per node; nil to skip
		want       map[string]string // exact assignments; nil to skip
		wantWhy    map[string]string // exact pending reasons
	}{
		{
			name:       "spread 3 replicas on 3 nodes",
			nodes:      []Node{mkNode("a"), mkNode("b"), mkNode("c")},
			pending:    mkTasks("web", 3),
			wantCounts: map[string]int{"a": 1, "b": 1, "c": 1},
		},
		{
			name:       "spread 4 replicas on 2 nodes",
			nodes:      []Node{mkNode("a"), mkNode("b")},
			pending:    mkTasks("web", 4),
			wantCounts: map[string]int{"a": 2, "b": 2},
		},
		{
			name:       "spread counts the service's placed tasks",
			nodes:      []Node{mkNode("a"), mkNode("b"), mkNode("c")},
			placed:     mkTasks("old", 2, svc("web"), on("a")),
			pending:    mkTasks("web", 2),
			wantCounts: map[string]int{"b": 1, "c": 1},
		},
		{
			name:   "placed tasks of the service come first, then all tasks",
			nodes:  []Node{mkNode("a"), mkNode("b"), mkNode("c")},
			placed: append(mkTasks("web", 1, on("a")), mkTasks("db", 2, on("b"))...),
			pending: []Task{
				{ID: "web.2", ServiceID: "web"}, // b and c have no web task; c has fewer tasks
				{ID: "web.3", ServiceID: "web"}, // then b, the only node without web
				{ID: "web.4", ServiceID: "web"}, // all have one web task; a has the fewest tasks
			},
			want: map[string]string{"web.2": "c", "web.3": "b", "web.4": "a"},
		},
		{
			name:    "spread over a label: zone a has 2 nodes, zone b 1",
			nodes:   zoned,
			pending: mkTasks("web", 4, spread("node.labels.zone")),
			want:    map[string]string{"web.1": "a1", "web.2": "b1", "web.3": "a2", "web.4": "b1"},
		},
		{
			name:       "nodes without the label form one group",
			nodes:      append(slices.Clone(zoned), mkNode("x1"), mkNode("x2")),
			pending:    mkTasks("web", 6, spread("node.labels.zone")),
			wantCounts: map[string]int{"a1": 1, "a2": 1, "b1": 2, "x1": 1, "x2": 1},
		},
		{
			name: "spread over a label counts placed tasks",
			nodes: []Node{mkNode("a1", label("zone", "a")), mkNode("a2", label("zone", "a")),
				mkNode("b1", label("zone", "b"))},
			placed:     mkTasks("old", 2, svc("web"), on("b1")),
			pending:    mkTasks("web", 4, spread("node.labels.zone")),
			wantCounts: map[string]int{"a1": 2, "a2": 1, "b1": 1},
		},
		{
			name: "spread over two attributes",
			nodes: []Node{
				mkNode("a-r1-1", label("zone", "a"), label("rack", "1")),
				mkNode("a-r1-2", label("zone", "a"), label("rack", "1")),
				mkNode("a-r2-1", label("zone", "a"), label("rack", "2")),
				mkNode("b-r1-1", label("zone", "b"), label("rack", "1")),
			},
			pending:    mkTasks("web", 8, spread("node.labels.zone", "node.labels.rack")),
			wantCounts: map[string]int{"a-r1-1": 1, "a-r1-2": 1, "a-r2-1": 2, "b-r1-1": 4},
		},
		{
			name:       "constraint ==",
			nodes:      zoned,
			pending:    mkTasks("web", 4, constraints("node.labels.zone==a")),
			wantCounts: map[string]int{"a1": 2, "a2": 2},
		},
		{
			name:       "constraint !=",
			nodes:      zoned,
			pending:    mkTasks("web", 2, constraints("node.labels.zone!=a")),
			wantCounts: map[string]int{"b1": 2},
		},
		{
			name:       "missing label: == never matches, != always does",
			nodes:      []Node{mkNode("a", label("zone", "a")), mkNode("none")},
			pending:    append(mkTasks("eq", 2, constraints("node.labels.zone==b")), mkTasks("ne", 2, constraints("node.labels.zone!=a"))...),
			wantCounts: map[string]int{"none": 2},
			wantWhy: map[string]string{
				"eq.1": "no node fits: 2 do not match node.labels.zone==b",
				"eq.2": "no node fits: 2 do not match node.labels.zone==b",
			},
		},
		{
			name:    "node.id and node.name",
			nodes:   []Node{mkNode("id1", func(n *Node) { n.Name = "db1" }), mkNode("id2", func(n *Node) { n.Name = "db2" })},
			pending: append(mkTasks("byid", 1, constraints("node.id==id2")), mkTasks("byname", 2, constraints("node.name != db2"))...),
			want:    map[string]string{"byid.1": "id2", "byname.1": "id1", "byname.2": "id1"},
		},
		{
			name:       "binpack fills one node first",
			nodes:      []Node{mkNode("a"), mkNode("b"), mkNode("c")},
			pending:    mkTasks("web", 5, reserve(1000, gib)),
			strategy:   Binpack,
			wantCounts: map[string]int{"a": 4, "b": 1},
		},
		{
			name:       "binpack prefers the fullest node",
			nodes:      []Node{mkNode("a"), mkNode("b"), mkNode("c")},
			placed:     mkTasks("other", 1, on("b"), reserve(0, 4*gib)),
			pending:    mkTasks("web", 3, reserve(1000, gib)),
			strategy:   Binpack,
			wantCounts: map[string]int{"b": 3},
		},
		{
			name:       "binpack still spreads over a spread attribute",
			nodes:      zoned,
			pending:    mkTasks("web", 4, reserve(1000, gib), spread("node.labels.zone")),
			strategy:   Binpack,
			wantCounts: map[string]int{"a1": 2, "b1": 2},
		},
		{
			name:     "memory exhausted: the next node",
			nodes:    []Node{mkNode("a", capacity(4000, gib)), mkNode("b", capacity(4000, 4*gib))},
			pending:  mkTasks("web", 3, reserve(0, gib)),
			strategy: Binpack,
			want:     map[string]string{"web.1": "a", "web.2": "b", "web.3": "b"},
		},
		{
			name:    "CPU exhausted: the next node",
			nodes:   []Node{mkNode("a", capacity(1000, gib)), mkNode("b", capacity(4000, gib))},
			pending: mkTasks("web", 4, reserve(1000, 0)),
			want:    map[string]string{"web.1": "a", "web.2": "b", "web.3": "b", "web.4": "b"},
		},
		{
			name:    "no node has the memory",
			nodes:   []Node{mkNode("node-a", capacity(4000, gib)), mkNode("node-b", capacity(4000, 512*mib))},
			pending: mkTasks("web", 2, reserve(0, 2*gib)),
			wantWhy: map[string]string{
				"web.1": "no node fits: 2 have too little free memory (needs 2.0 GiB; the most free is 1.0 GiB on node-a)",
				"web.2": "no node fits: 2 have too little free memory (needs 2.0 GiB; the most free is 1.0 GiB on node-a)",
			},
		},
		{
			name:    "no node has the CPU, counting placed tasks",
			nodes:   []Node{mkNode("a", capacity(2000, gib))},
			placed:  mkTasks("other", 1, on("a"), reserve(1500, 0)),
			pending: mkTasks("web", 1, reserve(1000, 0)),
			wantWhy: map[string]string{"web.1": "no node fits: 1 has too little free CPU (needs 1 CPU; the most free is 0.5 CPUs on a)"},
		},
		{
			name:    "unknown capacity fits only a zero reservation",
			nodes:   []Node{mkNode("a", capacity(0, 0))},
			pending: append(mkTasks("big", 1, reserve(500, 0)), mkTasks("free", 1)...),
			want:    map[string]string{"free.1": "a"},
			wantWhy: map[string]string{"big.1": "no node fits: 1 does not report its CPU capacity"},
		},
		{
			name:       "host port conflicts",
			nodes:      []Node{mkNode("a"), mkNode("b")},
			pending:    mkTasks("web", 3, ports(tcp8080)),
			wantCounts: map[string]int{"a": 1, "b": 1},
			wantWhy: map[string]string{
				"web.3": "host port 8080/tcp is taken on every node that could take it (2)",
			},
		},
		{
			name:     "host port conflicts with binpack",
			nodes:    []Node{mkNode("a"), mkNode("b")},
			pending:  mkTasks("web", 3, ports(tcp8080), reserve(100, 0)),
			strategy: Binpack,
			want:     map[string]string{"web.1": "a", "web.2": "b"},
			wantWhy: map[string]string{
				"web.3": "host port 8080/tcp is taken on every node that could take it (2)",
			},
		},
		{
			name:   "host ports of other services and placed tasks; udp and tcp differ",
			nodes:  []Node{mkNode("a"), mkNode("b")},
			placed: mkTasks("old", 1, on("b"), ports(Port{Number: 53, Protocol: "udp"})),
			pending: append(append(
				mkTasks("dns", 2, ports(Port{Number: 53, Protocol: "UDP"})),
				mkTasks("dnstcp", 1, ports(Port{Number: 53}))...),
				mkTasks("web", 1, ports(Port{Number: 53, Protocol: "udp"}, Port{Number: 80, Protocol: "tcp"}))...),
			want: map[string]string{"dns.1": "a", "dnstcp.1": "a"},
			wantWhy: map[string]string{
				"dns.2": "host port 53/udp is taken on every node that could take it (2)",
				"web.1": "host port 53/udp is taken on every node that could take it (2)",
			},
		},
		{
			name:    "not ready, paused and drained nodes are excluded",
			nodes:   []Node{mkNode("a", notReady), mkNode("b", paused), mkNode("c", paused), mkNode("d")},
			pending: mkTasks("web", 3),
			want:    map[string]string{"web.1": "d", "web.2": "d", "web.3": "d"},
		},
		{
			name:    "no node ready and active",
			nodes:   []Node{mkNode("a", notReady), mkNode("b", paused), mkNode("c", paused)},
			pending: mkTasks("web", 1),
			wantWhy: map[string]string{"web.1": "no node is ready and active (1 not ready, 2 paused or drained)"},
		},
		{
			name:    "no nodes",
			pending: mkTasks("web", 2),
			wantWhy: map[string]string{
				"web.1": "no node is ready and active (the cluster has no nodes)",
				"web.2": "no node is ready and active (the cluster has no nodes)",
			},
		},
		{
			name: "every filter counted",
			nodes: []Node{
				mkNode("a", notReady, label("zone", "a")),
				mkNode("b", paused, label("zone", "a")),
				mkNode("c", label("zone", "b")),
				mkNode("d"),
				mkNode("e", label("zone", "a"), capacity(4000, gib)),
				mkNode("f", label("zone", "a"), capacity(4000, 0)),
				mkNode("g", label("zone", "a"), capacity(100, 8*gib)),
			},
			placed:  mkTasks("other", 1, on("g"), ports(tcp8080)),
			pending: mkTasks("web", 1, constraints("node.labels.zone==a"), reserve(500, 2*gib), ports(tcp8080)),
			wantWhy: map[string]string{"web.1": "no node fits: 1 not ready, 1 paused or drained, 2 do not match node.labels.zone==a, " +
				"1 has too little free CPU (needs 0.5 CPUs; the most free is 0.1 CPUs on g), " +
				"1 does not report its memory capacity, 1 has too little free memory (needs 2.0 GiB; the most free is 1.0 GiB on e)"},
		},
		{
			name:    "host port with other nodes ruled out",
			nodes:   []Node{mkNode("a", notReady), mkNode("b", label("zone", "b")), mkNode("c", label("zone", "a"))},
			placed:  mkTasks("other", 1, on("c"), ports(tcp8080)),
			pending: mkTasks("web", 1, constraints("node.labels.zone==a"), ports(tcp8080)),
			wantWhy: map[string]string{"web.1": "host port 8080/tcp is taken on every node that could take it (1); " +
				"the other nodes: 1 not ready, 1 does not match node.labels.zone==a"},
		},
		{
			name:  "invalid placement fields",
			nodes: []Node{mkNode("a")},
			pending: []Task{
				{ID: "t1", Constraints: []Constraint{{Attr: "node.hostname", Op: Eq, Value: "a"}}},
				{ID: "t2", Spread: []string{"node.zone"}},
				{ID: "t3", HostPorts: []Port{{Number: 70000}}},
				{ID: "t4", HostPorts: []Port{{Number: 80, Protocol: "sctp"}}},
			},
			wantWhy: map[string]string{
				"t1": `invalid placement: invalid placement constraint "node.hostname==a": unknown attribute "node.hostname"; ` + constraintForm,
				"t2": `invalid placement: invalid spread attribute "node.zone": unknown attribute "node.zone"; ` + attrForms,
				"t3": "invalid placement: host port 70000/tcp is out of range (1-65535)",
				"t4": "invalid placement: host port 80/sctp: the protocol must be tcp or udp",
			},
		},
		{
			name:    "a duplicate pending ID is placed once",
			nodes:   []Node{mkNode("a"), mkNode("b")},
			pending: append(mkTasks("web", 1, ports(tcp8080)), mkTasks("web", 1, ports(tcp8080))...),
			want:    map[string]string{"web.1": "a"},
		},
		{
			name:    "placed tasks on unknown nodes are ignored; port 0 never conflicts",
			nodes:   []Node{mkNode("a")},
			placed:  append(mkTasks("old", 1, on("gone"), ports(tcp8080)), mkTasks("any", 1, on("a"), ports(Port{}))...),
			pending: mkTasks("web", 2, ports(tcp8080, Port{}), reserve(0, 0)),
			want:    map[string]string{"web.1": "a"},
			wantWhy: map[string]string{"web.2": "host port 8080/tcp is taken on every node that could take it (1)"},
		},
		{
			// x and y are two groups of one service (their reservations
			// differ), interleaved: each one's spread counts follow the other's.
			name:  "tasks placed earlier in the call count for later ones of another group",
			nodes: []Node{mkNode("a", label("zone", "a")), mkNode("b", label("zone", "b")), mkNode("c", label("zone", "c"))},
			pending: []Task{
				{ID: "x1", ServiceID: "web", Spread: []string{"node.labels.zone"}},
				{ID: "y1", ServiceID: "web", Spread: []string{"node.labels.zone"}, Reserve: Resources{CPUMillis: 10}},
				{ID: "x2", ServiceID: "web", Spread: []string{"node.labels.zone"}},
				{ID: "y2", ServiceID: "web", Spread: []string{"node.labels.zone"}, Reserve: Resources{CPUMillis: 10}},
			},
			want: map[string]string{"x1": "a", "y1": "b", "x2": "c", "y2": "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Place(tt.nodes, tt.placed, tt.pending, tt.strategy)
			checkComplete(t, tt.pending, got)
			if tt.wantCounts != nil && !reflect.DeepEqual(perNode(got), tt.wantCounts) {
				t.Errorf("tasks per node = %v, want %v (assigned %v)", perNode(got), tt.wantCounts, got.Assigned)
			}
			if tt.want != nil && !reflect.DeepEqual(got.Assigned, tt.want) {
				t.Errorf("Assigned = %v, want %v", got.Assigned, tt.want)
			}
			for id, want := range tt.wantWhy {
				if got.Pending[id] != want {
					t.Errorf("Pending[%s] =\n  %q\nwant\n  %q", id, got.Pending[id], want)
				}
			}
			if tt.wantWhy != nil && len(got.Pending) != len(tt.wantWhy) {
				t.Errorf("Pending = %v, want %d entries", got.Pending, len(tt.wantWhy))
			}
		})
	}
}

// checkComplete checks that every pending task is either assigned or
// pending, not both.
func checkComplete(t *testing.T, pending []Task, r Result) {
	t.Helper()
	ids := map[string]bool{}
	for _, p := range pending {
		ids[p.ID] = true
	}
	for id := range ids {
		_, a := r.Assigned[id]
		_, p := r.Pending[id]
		if a == p {
			t.Errorf("task %s: assigned %v, pending %v; want exactly one", id, a, p)
		}
	}
	if len(r.Assigned)+len(r.Pending) != len(ids) {
		t.Errorf("%d assigned + %d pending, want %d tasks", len(r.Assigned), len(r.Pending), len(ids))
	}
}

// Place depends on its inputs only: not on the order of the nodes, nor on
// map iteration.
func TestPlaceDeterministic(t *testing.T) {
	nodes, placed, pending := randomCluster(7, 40, 30, 200)
	// Of two nodes with one ID the first wins, so the order of those
	// matters; keep one of each.
	slices.SortStableFunc(nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	nodes = slices.CompactFunc(nodes, func(a, b Node) bool { return a.ID == b.ID })
	for _, strategy := range []Strategy{Spread, Binpack} {
		first := Place(nodes, placed, pending, strategy)
		for i := range 20 {
			shuffled := slices.Clone(nodes)
			rotate := i % len(shuffled)
			shuffled = append(shuffled[rotate:], shuffled[:rotate]...)
			slices.Reverse(shuffled[:i%len(shuffled)])
			got := Place(shuffled, placed, pending, strategy)
			if !maps.Equal(got.Assigned, first.Assigned) || !maps.Equal(got.Pending, first.Pending) {
				t.Fatalf("strategy %d, run %d: result differs from the first run", strategy, i)
			}
		}
		if len(first.Assigned) == 0 || len(first.Pending) == 0 {
			t.Fatalf("strategy %d: %d assigned, %d pending; want a cluster that exercises both", strategy, len(first.Assigned), len(first.Pending))
		}
	}
}

// Place does not change its inputs.
func TestPlaceKeepsInputs(t *testing.T) {
	nodes, placed, pending := randomCluster(3, 10, 10, 50)
	n0, p0, q0 := deepCopy(nodes), slices.Clone(placed), slices.Clone(pending)
	Place(nodes, placed, pending, Binpack)
	if !reflect.DeepEqual(nodes, n0) || !reflect.DeepEqual(placed, p0) || !reflect.DeepEqual(pending, q0) {
		t.Fatal("Place changed its inputs")
	}
}

func deepCopy(nodes []Node) []Node {
	out := slices.Clone(nodes)
	for i := range out {
		out[i].Labels = maps.Clone(out[i].Labels)
	}
	return out
}

func TestBytesText(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 * 1024, "1.5 MiB"}, {2 * gib, "2.0 GiB"}, {1 << 40, "1.0 TiB"},
	}
	for _, tt := range tests {
		if got := bytesText(tt.in); got != tt.want {
			t.Errorf("bytesText(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCPUText(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 CPUs"}, {250, "0.25 CPUs"}, {1000, "1 CPU"}, {1500, "1.5 CPUs"}, {16000, "16 CPUs"},
	}
	for _, tt := range tests {
		if got := cpuText(tt.in); got != tt.want {
			t.Errorf("cpuText(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
