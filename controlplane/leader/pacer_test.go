package leader

import (
	"testing"
	"time"
)

// TestPacer: after a quiet spell passBurst passes start without waiting;
// then passes start a gap apart, start to start, as without credit (the
// gap is the last pass's duration when that is longer than the least
// gap); a quiet spell gives the burst back, no more. The clock is
// simulated.
func TestPacer(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPacer(minPassGap)
	run := func(took time.Duration) {
		t.Helper()
		if d := p.delay(now); d != 0 {
			t.Fatalf("delay %v before a pass, want none", d)
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
	if d := p.delay(now); d != minPassGap-time.Millisecond {
		t.Fatalf("under a stream of changes: delay %v, want the rest of %v since the last start", d, minPassGap)
	}
	now = now.Add(p.delay(now))

	// A pass longer than the gap: the next may start when it ends.
	run(300 * time.Millisecond)
	if d := p.delay(now); d != 0 {
		t.Fatalf("after a pass of 300ms: delay %v, want none", d)
	}
	run(time.Millisecond)
	if d := p.delay(now); d != minPassGap-time.Millisecond {
		t.Fatalf("after a short pass again: delay %v, want %v", d, minPassGap-time.Millisecond)
	}

	// A quiet spell gives the whole burst back, no more.
	now = now.Add(time.Hour)
	for range passBurst {
		run(0)
	}
	if d := p.delay(now); d == 0 {
		t.Fatal("more than passBurst passes without a wait")
	}

	// Another loop's least gap.
	p = newPacer(dispatchPassGap)
	for range passBurst {
		run(0)
	}
	if d := p.delay(now); d != dispatchPassGap {
		t.Fatalf("dispatcher after a burst: delay %v, want %v", d, dispatchPassGap)
	}
}
