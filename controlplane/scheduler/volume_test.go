package scheduler

import (
	"strings"
	"testing"
)

// A task that mounts a volume goes to the volume's node, whatever the
// strategy prefers; when that node cannot take it, the reason names the
// volume, the node and what is wrong with it.
func TestVolumePinsTask(t *testing.T) {
	nodes := func() []Node {
		return []Node{
			{ID: "a", Name: "alpha", Ready: true, Active: true, Capacity: Resources{CPUMillis: 4000, MemoryBytes: 1 << 30}},
			{ID: "b", Name: "beta", Ready: true, Active: true, Capacity: Resources{CPUMillis: 4000, MemoryBytes: 1 << 30}},
		}
	}
	data := []Volume{{Name: "data", NodeID: "b"}}
	// Spread alone would pick a (fewer tasks); the volume wants b.
	placed := []Task{{ID: "p", ServiceID: "x", NodeID: "b"}}
	res := Place(nodes(), placed, []Task{{ID: "t1", ServiceID: "s", Volumes: data}, {ID: "t2", ServiceID: "s"}}, Spread)
	if res.Assigned["t1"] != "b" || res.Assigned["t2"] != "a" {
		t.Fatalf("assigned %v (pending %v), want t1 on b, t2 on a", res.Assigned, res.Pending)
	}

	cases := []struct {
		name  string
		edit  func(n []Node)
		task  Task
		wants []string
	}{
		{"down", func(n []Node) { n[1].Ready = false }, Task{ID: "t", Volumes: data},
			[]string{`volume data of "data" lives on node beta, which is down`}},
		{"drained", func(n []Node) { n[1].Active = false }, Task{ID: "t", Volumes: data},
			[]string{"node beta", "paused or drained"}},
		{"full", func([]Node) {}, Task{ID: "t", Volumes: data, Reserve: Resources{MemoryBytes: 2 << 30}},
			[]string{"node beta, which is full", "too little free memory"}},
		{"gone", func([]Node) {}, Task{ID: "t", Volumes: []Volume{{Name: "data", NodeID: "z"}}},
			[]string{"node z, which is not in the cluster"}},
		{"two nodes", func([]Node) {}, Task{ID: "t", Volumes: []Volume{{Name: "data", NodeID: "b"}, {Name: "logs", NodeID: "a"}}},
			[]string{"volumes of one node only"}},
	}
	for _, c := range cases {
		n := nodes()
		c.edit(n)
		res := Place(n, nil, []Task{c.task}, Binpack)
		why, pending := res.Pending["t"]
		if !pending {
			t.Errorf("%s: placed on %s, want pending", c.name, res.Assigned["t"])
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(why, w) {
				t.Errorf("%s: reason %q, want it to contain %q", c.name, why, w)
			}
		}
	}
	if k := ReasonKind(`volume data of "data" lives on node beta, which is down`); k != ReasonNoReadyNode {
		t.Errorf("kind of a down volume node: %s", k)
	}
}
