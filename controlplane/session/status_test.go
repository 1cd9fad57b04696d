package session

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
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

// writeRecorder is a status write that records each batch and can hold
// writes until released.
type writeRecorder struct {
	entered chan *statev1.ReportStatuses // each write, as it starts
	release chan error                   // the result of each write
}

func newWriteRecorder() *writeRecorder {
	return &writeRecorder{entered: make(chan *statev1.ReportStatuses), release: make(chan error)}
}

func (w *writeRecorder) write(ctx context.Context, r *statev1.ReportStatuses) error {
	w.entered <- r
	return <-w.release
}

func states(r *statev1.ReportStatuses) map[string]ccv1.ContainerState {
	out := map[string]ccv1.ContainerState{}
	for _, rep := range r.Reports {
		for _, s := range rep.Statuses {
			out[rep.NodeId+"/"+s.ContainerId] = s.Status.State
		}
	}
	return out
}

func startWriter(t *testing.T, b *statusBuffer, retry time.Duration, w *writeRecorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runStatusWriter(ctx, b, retry, w.write)
	}()
	return func() {
		cancel()
		<-done
	}
}

// TestStatusWriterGroupCommit: a status is written as soon as it arrives
// (no timer: the retry wait is an hour), and the statuses that arrive
// while a write is in flight go together in the next write, the newest
// per container.
func TestStatusWriterGroupCommit(t *testing.T) {
	running, exited := ccv1.ContainerState_CONTAINER_STATE_RUNNING, ccv1.ContainerState_CONTAINER_STATE_EXITED
	b := newStatusBuffer()
	w := newWriteRecorder()
	stop := startWriter(t, b, time.Hour, w)
	defer stop()

	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 10, running)})
	first := <-w.entered
	if got := states(first); len(got) != 1 || got["n1/a"] != running {
		t.Fatalf("first write: %v, want n1/a running", got)
	}
	// While the first write is in flight.
	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 20, exited), st("b", 1, 20, running)})
	b.add("n2", []*ccv1.TaskStatus{st("c", 1, 20, running)})
	b.add("n1", []*ccv1.TaskStatus{st("b", 1, 30, exited)})
	w.release <- nil
	second := <-w.entered
	want := map[string]ccv1.ContainerState{"n1/a": exited, "n1/b": exited, "n2/c": running}
	if got := states(second); !maps.Equal(got, want) {
		t.Fatalf("second write: %v, want %v in one command", got, want)
	}
	w.release <- nil
	// Nothing left: the next status makes the next write.
	b.add("n3", []*ccv1.TaskStatus{st("d", 1, 40, running)})
	if got := states(<-w.entered); len(got) != 1 || got["n3/d"] != running {
		t.Fatalf("third write: %v, want only n3/d", got)
	}
	w.release <- nil
}

// TestStatusWriterRetry: a failed write's statuses are written again,
// replaced by newer ones that arrived meanwhile.
func TestStatusWriterRetry(t *testing.T) {
	running, exited := ccv1.ContainerState_CONTAINER_STATE_RUNNING, ccv1.ContainerState_CONTAINER_STATE_EXITED
	b := newStatusBuffer()
	w := newWriteRecorder()
	stop := startWriter(t, b, time.Millisecond, w)
	defer stop()

	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 10, running), st("b", 1, 10, running)})
	<-w.entered
	b.add("n1", []*ccv1.TaskStatus{st("b", 1, 20, exited)})
	w.release <- errors.New("no leader")
	want := map[string]ccv1.ContainerState{"n1/a": running, "n1/b": exited}
	if got := states(<-w.entered); !maps.Equal(got, want) {
		t.Fatalf("write after a failure: %v, want %v", got, want)
	}
	w.release <- nil
}

// TestStatusWriterFinalFlush: what arrived during the last write is
// written once more when the writer stops.
func TestStatusWriterFinalFlush(t *testing.T) {
	running, exited := ccv1.ContainerState_CONTAINER_STATE_RUNNING, ccv1.ContainerState_CONTAINER_STATE_EXITED
	b := newStatusBuffer()
	w := newWriteRecorder()
	stop := startWriter(t, b, time.Hour, w)

	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 10, running)})
	<-w.entered
	b.add("n1", []*ccv1.TaskStatus{st("a", 1, 20, exited)})
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	w.release <- context.Canceled // the stop cancelled the write in flight
	want := map[string]ccv1.ContainerState{"n1/a": exited}
	if got := states(<-w.entered); !maps.Equal(got, want) {
		t.Fatalf("final write: %v, want %v", got, want)
	}
	w.release <- nil
	<-stopped
	if b.take() != nil {
		t.Fatal("statuses left after the final write")
	}
}
