package leader

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopsFollowLeadership(t *testing.T) {
	var running, starts atomic.Int32
	loop := Loop{Name: "count", Run: func(ctx context.Context) {
		running.Add(1)
		starts.Add(1)
		<-ctx.Done()
		running.Add(-1)
	}}
	r := NewRunner(slog.New(slog.NewTextHandler(io.Discard, nil)), loop, loop)
	ch := make(chan bool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, false, ch); close(done) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s (running %d, starts %d)", what, running.Load(), starts.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if running.Load() != 0 {
		t.Fatal("loops run before leadership")
	}
	ch <- true
	waitFor("both loops run", func() bool { return running.Load() == 2 })
	ch <- true // already leader: nothing more starts
	ch <- false
	waitFor("loops stop on losing leadership", func() bool { return running.Load() == 0 })
	if starts.Load() != 2 {
		t.Errorf("starts = %d, want 2", starts.Load())
	}
	ch <- true
	waitFor("loops run again", func() bool { return running.Load() == 2 })
	cancel()
	<-done
	if running.Load() != 0 {
		t.Error("Run returned with loops still running")
	}
}

// The loops of a term share one Prepare; a new term prepares again.
func TestReadyPreparesOncePerTerm(t *testing.T) {
	var prepares, ready atomic.Int32
	loop := Loop{Name: "wait", Run: func(ctx context.Context) {
		if Ready(ctx) {
			ready.Add(1)
		}
		<-ctx.Done()
	}}
	r := NewRunner(slog.New(slog.NewTextHandler(io.Discard, nil)), loop, loop, loop)
	r.Prepare = func(context.Context) bool { prepares.Add(1); return true }
	ch := make(chan bool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, true, ch); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for ready.Load() != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ready.Load() != 3 || prepares.Load() != 1 {
		t.Fatalf("first term: %d loops ready, %d prepares", ready.Load(), prepares.Load())
	}
	ch <- false
	ch <- true
	for ready.Load() != 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ready.Load() != 6 || prepares.Load() != 2 {
		t.Fatalf("second term: %d loops ready, %d prepares", ready.Load(), prepares.Load())
	}
	cancel()
	<-done
	if !Ready(context.Background()) {
		t.Fatal("Ready outside a term")
	}
}
