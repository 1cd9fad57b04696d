package scheduler

import "testing"

// TestReasonKind sorts the reasons Place gives into their kinds: the
// filter furthest along that ruled out some node.
func TestReasonKind(t *testing.T) {
	for _, c := range []struct {
		name    string
		nodes   []Node
		placed  []Task
		pending []Task
		want    string
	}{
		{"no nodes", nil, nil, mkTasks("web", 1), ReasonNoReadyNode},
		{"none ready or active", []Node{mkNode("a", notReady), mkNode("b", paused)}, nil, mkTasks("web", 1), ReasonNoReadyNode},
		{"constraints", []Node{mkNode("a", notReady), mkNode("b", label("zone", "b"))}, nil, mkTasks("web", 1, constraints("node.labels.zone==a")), ReasonConstraints},
		{"cpu", []Node{mkNode("a", capacity(100, 8*gib))}, nil, mkTasks("web", 1, reserve(500, 0)), ReasonResources},
		{"memory unknown", []Node{mkNode("a", capacity(4000, 0))}, nil, mkTasks("web", 1, reserve(0, gib)), ReasonResources},
		{"resources past constraints", []Node{mkNode("a", label("zone", "b")), mkNode("b", label("zone", "a"), capacity(100, 8*gib))}, nil,
			mkTasks("web", 1, constraints("node.labels.zone==a"), reserve(500, 0)), ReasonResources},
		{"host ports", []Node{mkNode("a")}, mkTasks("other", 1, on("a"), ports(tcp8080)), mkTasks("web", 1, ports(tcp8080)), ReasonHostPorts},
		{"invalid", []Node{mkNode("a")}, nil, mkTasks("web", 1, ports(Port{Number: 70000})), ReasonInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := Place(c.nodes, c.placed, c.pending, Spread)
			why, ok := res.Pending[c.pending[0].ID]
			if !ok {
				t.Fatalf("placed: %v", res.Assigned)
			}
			if got := ReasonKind(why); got != c.want {
				t.Errorf("ReasonKind(%q) = %s, want %s", why, got, c.want)
			}
		})
	}
	if got := ReasonKind("something else"); got != ReasonOther {
		t.Errorf("an unknown reason: %s, want %s", got, ReasonOther)
	}
}
