package leader

import (
	"testing"
	"time"
)

// TestPacer: after a quiet spell passBurst passes start without waiting;
// then each waits for its gap after the one before ended (the gap is the
// last pass's duration when that is longer than minPassGap); a quiet
// spell gives the burst back. The clock is simulated.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	p := newPacer(minPassGap)
	run := func(took time.Duration) {
		t.Helper()
		if d := p.delay(now); d != 0 {
			t.Fatalf("at %v: delay %v, want none", now.Sub(t0), d)
		}
		p.start(now)
		now = now.Add(took)
		p.end(now)
	}
	for range passBurst {
		run(time.Millisecond)
	}
	if d := p.delay(now); d <= 0 || d > minPassGap {
		t.Fatalf("after a burst: delay %v, want a wait of at most %v", d, minPassGap)
	}
	now = now.Add(p.delay(now))
	run(time.Millisecond)
	if d := p.delay(now); d != minPassGap {
		t.Fatalf("under a stream of changes: delay %v, want %v", d, minPassGap)
	}

	// A slow pass: the next waits as long as it took.
	now = now.Add(time.Hour)
	run(time.Second)
	for range passBurst - 1 {
		run(time.Millisecond)
	}
	now = now.Add(time.Hour)
	p = newPacer(minPassGap)
	for range passBurst - 1 {
		run(time.Millisecond)
	}
	run(300 * time.Millisecond)
	if d := p.delay(now); d != 300*time.Millisecond {
		t.Fatalf("after a pass of 300ms with no credit left: delay %v, want 300ms", d)
	}

	// A quiet spell gives the whole burst back, no more.
	now = now.Add(time.Hour)
	for range passBurst {
		run(time.Millisecond)
	}
	if d := p.delay(now); d == 0 {
		t.Fatal("more than passBurst passes without a wait")
	}
}
