package session

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func st(id string, gen uint64, at int, state ccv1.ContainerState) *ccv1.TaskStatus {
	return &ccv1.TaskStatus{ContainerId: id, Generation: gen, ObservedAt: timestamppb.New(time.Unix(int64(at), 0)),
		Status: &ccv1.ContainerStatus{State: state}}
}

// TestStatusBuffer: the newest status of each container is written; a
// failed write is retried unless a newer status arrived meanwhile.
func TestStatusBuffer(t *testing.T) {
	b := newStatusBuffer()
	if b.take() != nil {
		t.Fatal("an empty buffer gave a command")
	}
	running, exited := ccv1.ContainerState_CONTAINER_STATE_RUNNING, ccv1.ContainerState_CONTAINER_STATE_EXITED
	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 10, running), st("b", 1, 10, running)})
	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 5, exited)}) // older: ignored
	b.add("n2", []*ccv1.TaskStatus{st("c", 2, 10, running)})
	b.add("n2", []*ccv1.TaskStatus{st("c", 1, 20, exited)}) // older generation: ignored
	r := b.take()
	if len(r.Reports) != 2 || r.Reports[0].NodeId != "n1" || len(r.Reports[0].Statuses) != 2 || r.Reports[1].Statuses[0].Status.State != running {
		t.Fatalf("take: %v", r)
	}
	if r.Reports[0].Statuses[0].Status.State != running {
		t.Fatalf("a: %v, want the newer running status", r.Reports[0].Statuses[0])
	}
	// The write failed; meanwhile b exited.
	b.add("n1", []*ccv1.TaskStatus{st("b", 1, 30, exited)})
	b.putBack(r)
	again := b.take()
	got := map[string]ccv1.ContainerState{}
	for _, rep := range again.Reports {
		for _, s := range rep.Statuses {
			got[s.ContainerId] = s.Status.State
		}
	}
	want := map[string]ccv1.ContainerState{"a": running, "b": exited, "c": running}
	for id, s := range want {
		if got[id] != s {
			t.Errorf("after put back: %s is %v, want %v", id, got[id], s)
		}
	}
}
