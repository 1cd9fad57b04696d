package session

import (
	"testing"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestDiff(t *testing.T) {
	a := func(id string, gen uint64) *ccv1.Assignment {
		return &ccv1.Assignment{ContainerId: id, Generation: gen}
	}
	set := func(as ...*ccv1.Assignment) map[string]*ccv1.Assignment {
		m := map[string]*ccv1.Assignment{}
		for _, x := range as {
			m[x.ContainerId] = x
		}
		return m
	}
	cases := []struct {
		name            string
		before, after   map[string]*ccv1.Assignment
		updated, remove []string
		none            bool
	}{
		{name: "same", before: set(a("x", 1)), after: set(a("x", 1)), none: true},
		{name: "empty", before: set(), after: set(), none: true},
		{name: "added", before: set(a("x", 1)), after: set(a("x", 1), a("y", 1)), updated: []string{"y"}},
		{name: "new generation", before: set(a("x", 1)), after: set(a("x", 2)), updated: []string{"x"}},
		{name: "removed", before: set(a("x", 1), a("y", 1)), after: set(a("y", 1)), remove: []string{"x"}},
		{name: "all at once", before: set(a("b", 1), a("c", 1)), after: set(a("a", 1), a("c", 2)), updated: []string{"a", "c"}, remove: []string{"b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := Diff(c.before, c.after)
			if c.none {
				if ch != nil {
					t.Fatalf("want no changes, got %v", ch)
				}
				return
			}
			if ch == nil {
				t.Fatal("want changes, got none")
			}
			var ids []string
			for _, u := range ch.Updated {
				ids = append(ids, u.ContainerId)
			}
			if len(ids) != len(c.updated) || len(ch.Removed) != len(c.remove) {
				t.Fatalf("updated %v removed %v, want %v and %v", ids, ch.Removed, c.updated, c.remove)
			}
			for i := range ids {
				if ids[i] != c.updated[i] {
					t.Errorf("updated %v, want %v", ids, c.updated)
				}
			}
			for i := range ch.Removed {
				if ch.Removed[i] != c.remove[i] {
					t.Errorf("removed %v, want %v", ch.Removed, c.remove)
				}
			}
		})
	}
}

// TestDiffOnly: a diff of the containers a feed named leaves the others
// alone, and names as removed those sent that are gone.
func TestDiffOnly(t *testing.T) {
	sent := map[string]uint64{"a": 1, "b": 1, "c": 1}
	now := map[string]*ccv1.Assignment{"b": {ContainerId: "b", Generation: 2}, "d": {ContainerId: "d", Generation: 1}}
	ch := diffGenerations(sent, now, []string{"b", "c", "d", "e"})
	if ch == nil || len(ch.Updated) != 2 || ch.Updated[0].ContainerId != "b" || ch.Updated[1].ContainerId != "d" ||
		len(ch.Removed) != 1 || ch.Removed[0] != "c" {
		t.Fatalf("changes %v", ch)
	}
	if ch := diffGenerations(sent, map[string]*ccv1.Assignment{"a": {ContainerId: "a", Generation: 1}}, []string{"a", "e"}); ch != nil {
		t.Fatalf("want no changes, got %v", ch)
	}
}
