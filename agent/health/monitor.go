package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/containercodes/cc/agent/health/healthstate"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// State is a container's health as the Monitor reports it (an alias, so
// that the Monitor's users need not import healthstate).
type State = healthstate.State

// Key names one run of a container: a restart (a new start time) or a new
// generation gets a new prober whose state starts over.
type Key struct {
	ID         string
	Generation uint64
	StartedAt  time.Time
}

type runKey struct {
	id         string
	generation uint64
	startedAt  int64 // UnixNano: time.Time compares badly as a map key
}

func (k Key) run() runKey {
	return runKey{id: k.ID, generation: k.Generation, startedAt: k.StartedAt.UnixNano()}
}

// Target is a running container to check.
type Target struct {
	Key
	// Check is the spec's health check; Ports the spec's published ports
	// (for the default HTTP port). An invalid check makes the container
	// UNHEALTHY at once, saying why.
	Check *ccv1.HealthCheck
	Ports []*ccv1.PortMapping
}

// Monitor runs one prober goroutine per target and keeps their state. It
// owns the probers: Sync stops (and waits for) those whose container is no
// longer a target, Close stops them all.
type Monitor struct {
	checker  Checker
	log      *slog.Logger
	onChange func(id string)

	mu      sync.Mutex
	closed  bool
	probers map[string]*prober // by container id: one run per container at a time
	last    map[string]ended   // by container id: the state of a run that ended
}

type ended struct {
	key   runKey
	state healthstate.State
}

// NewMonitor returns a Monitor that checks through checker and calls
// onChange (which must not block) with a container's id whenever its
// health or reported output changes (not for every failed check).
func NewMonitor(checker Checker, log *slog.Logger, onChange func(id string)) *Monitor {
	if onChange == nil {
		onChange = func(string) {}
	}
	return &Monitor{
		checker: checker, log: log, onChange: onChange,
		probers: map[string]*prober{}, last: map[string]ended{},
	}
}

// Sync makes the probers match targets: it starts one for each new target
// and stops those of containers that are not targets any more (or that
// run again under a new key), keeping their last state for State.
func (m *Monitor) Sync(targets []Target) {
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		want[t.ID] = t
	}
	var stop []*prober
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for id, p := range m.probers {
		if t, ok := want[id]; !ok || t.run() != p.key {
			stop = append(stop, p)
			delete(m.probers, id)
		}
	}
	for id, t := range want {
		if _, ok := m.probers[id]; ok {
			continue
		}
		delete(m.last, id)
		m.probers[id] = m.start(t)
	}
	m.mu.Unlock()
	m.stop(stop)
}

// State returns the health of the run key of a container: that of its
// prober, or the last one of a run whose prober was stopped.
func (m *Monitor) State(key Key) (State, bool) {
	k := key.run()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.probers[key.ID]; ok && p.key == k {
		return p.state, true
	}
	if e, ok := m.last[key.ID]; ok && e.key == k {
		return e.state, true
	}
	return healthstate.State{}, false
}

// Forget drops what the monitor remembers of a removed container (its
// prober, if any, is stopped).
func (m *Monitor) Forget(id string) {
	m.mu.Lock()
	p := m.probers[id]
	delete(m.probers, id)
	delete(m.last, id)
	m.mu.Unlock()
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// Close stops every prober and waits for them; Sync does nothing after.
func (m *Monitor) Close() {
	m.mu.Lock()
	m.closed = true
	var stop []*prober
	for id, p := range m.probers {
		stop = append(stop, p)
		delete(m.probers, id)
	}
	m.mu.Unlock()
	m.stop(stop)
}

// stop cancels probers, waits for them and keeps their last state; m.mu
// is not held.
func (m *Monitor) stop(ps []*prober) {
	for _, p := range ps {
		p.cancel()
	}
	for _, p := range ps {
		<-p.done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ps {
		if _, running := m.probers[p.key.id]; !running && !m.closed {
			m.last[p.key.id] = ended{key: p.key, state: p.state}
		}
	}
}

// prober checks one run of one container. Its state is guarded by the
// Monitor's mutex.
type prober struct {
	key    runKey
	cancel context.CancelFunc
	done   chan struct{}
	state  healthstate.State
}

// start starts the prober of t; m.mu is held. An invalid check makes the
// container UNHEALTHY at once, saying why, and runs nothing.
func (m *Monitor) start(t Target) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{key: t.run(), cancel: cancel, done: make(chan struct{}), state: healthstate.Initial()}
	log := m.log.With("container_id", t.ID, "generation", t.Generation)
	check, err := healthstate.Parse(t.Check, t.Ports)
	if err != nil {
		log.Warn("the container's health check is invalid; it counts as unhealthy", "err", err)
		p.state = healthstate.State{Health: ccv1.HealthState_HEALTH_STATE_UNHEALTHY, Output: healthstate.TrimOutput(err.Error())}
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		m.run(ctx, p, t, check, log)
	}()
	return p
}

// run checks every c.Interval (counted from the end of the previous check)
// until ctx ends.
func (m *Monitor) run(ctx context.Context, p *prober, t Target, c healthstate.Check, log *slog.Logger) {
	timer := time.NewTimer(c.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r := healthstate.Result{At: time.Now()}
		r.OK, r.Output = m.checker.Check(ctx, t.ID, c)
		if ctx.Err() != nil {
			return // stopped during the check: its result means nothing
		}
		m.mu.Lock()
		prev := p.state
		p.state = healthstate.Next(c, prev, t.StartedAt, r)
		next := p.state
		m.mu.Unlock()
		if !r.OK {
			log.Debug("health check failed", "failures", next.Failures, "output", healthstate.TrimOutput(r.Output))
		}
		if next.Health != prev.Health || next.Output != prev.Output {
			log.Info("container health changed", "from", prev.Health.String(), "to", next.Health.String(), "output", next.Output)
			m.onChange(t.ID)
		}
		timer.Reset(c.Interval)
	}
}
