package session

import (
	"path/filepath"
	"testing"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/logging"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestEdgeSenderSequence(t *testing.T) {
	var s edgeSender
	cfg1 := &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{{Name: "web", Version: 1}}}
	m := s.next(cfg1)
	if m.GetEdge().GetSeq() != 1 || m.GetEdge().GetFull() == nil {
		t.Fatalf("first message %v, want a full set with seq 1", m)
	}
	if m := s.next(&ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{{Name: "web", Version: 1}}}); m != nil {
		t.Fatalf("no change sent %v", m)
	}
	m = s.next(&ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{{Name: "web", Version: 2}}, Relays: []*ccv1.Relay{{ContainerId: "a", Port: 80}}})
	ch := m.GetEdge().GetChanges()
	if m.GetEdge().GetSeq() != 2 || ch == nil || len(ch.UpdatedRoutes) != 1 || !ch.SetRelays {
		t.Fatalf("second message %v, want changes with seq 2", m)
	}
	m = s.next(&ccv1.EdgeConfig{})
	if m.GetEdge().GetSeq() != 3 || len(m.GetEdge().GetChanges().GetRemovedRoutes()) != 1 {
		t.Fatalf("third message %v, want the route removed with seq 3", m)
	}
	// An empty configuration is still sent first, so the agent knows it
	// has the full set.
	var fresh edgeSender
	if m := fresh.next(&ccv1.EdgeConfig{}); m.GetEdge().GetFull() == nil {
		t.Fatalf("first message of an empty config %v, want a full set", m)
	}
}

func TestEdgeCacheEmptyState(t *testing.T) {
	f, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"), logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	e := newEdgeCache(f)
	cl, changed, err := e.current()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cl.For("n1", true)
	if len(cfg.Routes) != 0 || len(cfg.Sites) != 0 || len(cfg.Relays) != 0 {
		t.Fatalf("config of an empty state %v", cfg)
	}
	// Resolving the same state again wakes nobody.
	if _, _, err := e.current(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("an unchanged resolution woke the sessions")
	default:
	}
}
