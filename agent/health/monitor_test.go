package health

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/agent/health/healthstate"
	"github.com/containercodes/cc/internal/logging"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const (
	starting  = ccv1.HealthState_HEALTH_STATE_STARTING
	healthy   = ccv1.HealthState_HEALTH_STATE_HEALTHY
	unhealthy = ccv1.HealthState_HEALTH_STATE_UNHEALTHY
)

// scriptedChecker passes or fails as told, per container, and counts calls.
type scriptedChecker struct {
	mu     sync.Mutex
	ok     map[string]bool
	calls  map[string]int
	closed atomic.Bool
	t      *testing.T
}

func (s *scriptedChecker) Check(ctx context.Context, id string, c healthstate.Check) (bool, string) {
	if s.closed.Load() {
		s.t.Errorf("check of %s after the monitor closed", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id]++
	if s.ok[id] {
		return true, ""
	}
	return false, "failing " + id
}

func (s *scriptedChecker) set(id string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok[id] = ok
}

func (s *scriptedChecker) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMonitor(t *testing.T) {
	checker := &scriptedChecker{ok: map[string]bool{}, calls: map[string]int{}, t: t}
	var changes sync.Map // id -> count
	m := NewMonitor(checker, logging.Test(t), func(id string) {
		n, _ := changes.LoadOrStore(id, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	})
	hc := &ccv1.HealthCheck{Exec: []string{"x"}, Interval: durationpb.New(100 * time.Millisecond), Retries: 2}
	t0 := time.Now()
	a := Target{Key: Key{ID: "a", Generation: 1, StartedAt: t0}, Check: hc}
	b := Target{Key: Key{ID: "b", Generation: 1, StartedAt: t0}, Check: hc}
	checker.set("a", true)
	m.Sync([]Target{a, b})

	health := func(k Key) ccv1.HealthState {
		s, _ := m.State(k)
		return s.Health
	}
	if h := health(a.Key); h != starting {
		t.Errorf("a new target is %s, want STARTING", h)
	}
	waitFor(t, "a healthy", func() bool { return health(a.Key) == healthy })
	waitFor(t, "b unhealthy", func() bool { return health(b.Key) == unhealthy })
	if s, _ := m.State(b.Key); s.Output != "failing b" {
		t.Errorf("b's output %q", s.Output)
	}
	if n, ok := changes.Load("b"); !ok || n.(*atomic.Int32).Load() != 1 {
		t.Errorf("b: onChange called %v times, want once (STARTING to UNHEALTHY)", n)
	}

	// b recovers.
	checker.set("b", true)
	waitFor(t, "b healthy again", func() bool { return health(b.Key) == healthy })

	// b is restarted: a new key starts over.
	b2 := b
	b2.StartedAt = t0.Add(time.Second)
	checker.set("b", false)
	m.Sync([]Target{a, b2})
	if _, ok := m.State(b.Key); ok {
		t.Error("the state of b's previous run is still reported")
	}
	if h := health(b2.Key); h != starting {
		t.Errorf("b restarted is %s, want STARTING", h)
	}
	waitFor(t, "b restarted unhealthy", func() bool { return health(b2.Key) == unhealthy })

	// a stops: its prober ends, its last state stays until Forget.
	m.Sync([]Target{b2})
	calls := checker.count("a")
	if h := health(a.Key); h != healthy {
		t.Errorf("a after its prober stopped: %s, want its last state HEALTHY", h)
	}
	before := checker.count("b")
	waitFor(t, "b checked twice more", func() bool { return checker.count("b") >= before+2 })
	if n := checker.count("a"); n != calls {
		t.Errorf("a was checked after its prober stopped (%d calls, then %d)", calls, n)
	}
	m.Forget("a")
	if _, ok := m.State(a.Key); ok {
		t.Error("a is still known after Forget")
	}

	m.Close()
	checker.closed.Store(true)
	m.Sync([]Target{a}) // ignored after Close
	if _, ok := m.State(a.Key); ok {
		t.Error("Sync started a prober after Close")
	}
}

func TestMonitorInvalidCheckIsUnhealthy(t *testing.T) {
	checker := &scriptedChecker{ok: map[string]bool{}, calls: map[string]int{}, t: t}
	m := NewMonitor(checker, logging.Test(t), nil)
	defer m.Close()
	k := Key{ID: "bad", Generation: 1, StartedAt: time.Now()}
	m.Sync([]Target{{Key: k, Check: &ccv1.HealthCheck{HttpPath: "no-slash"}}})
	s, ok := m.State(k)
	if !ok || s.Health != unhealthy || !strings.Contains(s.Output, "must start with /") {
		t.Fatalf("State = %+v, %v", s, ok)
	}
	m.Sync(nil)
	if s, ok := m.State(k); !ok || s.Health != unhealthy {
		t.Errorf("after the container stopped: %+v, %v", s, ok)
	}
	if checker.count("bad") != 0 {
		t.Error("an invalid check reached the checker")
	}
}
