package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for CatchUp.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCatchUpBurstSharesOneBarrier(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := NewCatchUp(func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	}, time.Second)
	c.now = clock.now

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Wait(context.Background())
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them all queue on the barrier in flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("a burst of 50 calls made %d barriers, want 1", n)
	}
	// Within MaxAge of the barrier's start: no round trip.
	clock.add(900 * time.Millisecond)
	if err := c.Wait(context.Background()); err != nil || calls.Load() != 1 {
		t.Fatalf("within max age: %v, %d barriers", err, calls.Load())
	}
	// After it: a new barrier.
	clock.add(200 * time.Millisecond)
	if err := c.Wait(context.Background()); err != nil || calls.Load() != 2 {
		t.Fatalf("after max age: %v, %d barriers, want 2", err, calls.Load())
	}
}

func TestCatchUpFailureIsNotCached(t *testing.T) {
	var calls atomic.Int32
	fail := errors.New("no leader")
	c := NewCatchUp(func(context.Context) error {
		if calls.Add(1) == 1 {
			return fail
		}
		return nil
	}, time.Second)
	if err := c.Wait(context.Background()); !errors.Is(err, fail) {
		t.Fatalf("first wait: %v, want %v", err, fail)
	}
	if err := c.Wait(context.Background()); err != nil || calls.Load() != 2 {
		t.Fatalf("second wait: %v after %d barriers, want a new, successful barrier", err, calls.Load())
	}
}

func TestCatchUpZeroMaxAgeAlwaysWaits(t *testing.T) {
	var calls atomic.Int32
	c := NewCatchUp(func(context.Context) error { calls.Add(1); return nil }, 0)
	for range 3 {
		if err := c.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d barriers for 3 sequential calls with max age 0, want 3", n)
	}
}

func TestCatchUpCallerGivesUp(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := NewCatchUp(func(ctx context.Context) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a short context: %v, want DeadlineExceeded", err)
	}
}
