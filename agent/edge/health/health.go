// Package health keeps the health of the edge's upstreams: active checks
// (a GET of a path every interval) and passive ejection (consecutive
// failed connections take an upstream out for a cool-down). State is keyed
// by (check, address) and lives in a Registry that outlasts configuration
// changes: Sync with the same keys keeps the state and the checkers.
//
// The rules:
//   - A new upstream is usable: for passive health it has no failures yet;
//     for an active check its state is "unknown", which counts as usable,
//     and its first check runs at once. Fails checks in a row (default 3)
//     mark it down, then Passes in a row (default 2) mark it up again.
//   - Passive: PassiveFails transport failures in a row (failed dial,
//     reset, timeout; not an HTTP status, which is the application's
//     answer) eject it for PassiveCoolDown. After the cool-down it is
//     usable again, on probation: one more failure ejects it again, one
//     success clears the count.
//   - An upstream is usable when neither says no. When the active check
//     puts it back, a passive ejection ends too: it answers again.
//   - A check identity includes the route and the check's settings, so
//     two routes checking the same address with different paths keep
//     separate state, and a changed check starts over.
package health

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Passive ejection defaults.
const (
	PassiveFails    = 3
	PassiveCoolDown = 10 * time.Second
)

// Key identifies one health state.
type Key struct {
	Check   string // the route and check settings
	Address string // host:port
}

// Check is an active check's settings; Path "" means no active check.
type Check struct {
	Path     string
	Host     string        // the Host header of a check ("": the address)
	Interval time.Duration // 0: 30s
	Timeout  time.Duration // 0: 2s
	Fails    int           // 0: 3
	Passes   int           // 0: 2
}

func (c Check) withDefaults() Check {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Fails <= 0 {
		c.Fails = 3
	}
	if c.Passes <= 0 {
		c.Passes = 2
	}
	return c
}

// State is one upstream's health for one check. Its methods are safe for
// concurrent use.
type State struct {
	down         atomic.Bool  // by the active check
	failures     atomic.Int32 // passive: transport failures in a row
	ejectedUntil atomic.Int64 // passive: unix nanoseconds
}

// Usable reports whether requests may go to the upstream at now.
func (s *State) Usable(now time.Time) bool {
	return !s.down.Load() && now.UnixNano() >= s.ejectedUntil.Load()
}

// Down reports whether the active check holds the upstream down.
func (s *State) Down() bool { return s.down.Load() }

// Success records a request that reached the upstream.
func (s *State) Success() {
	if s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

// Failure records a transport failure at now; it ejects the upstream when
// it makes PassiveFails in a row.
func (s *State) Failure(now time.Time) {
	if s.failures.Add(1) >= PassiveFails {
		s.ejectedUntil.Store(now.Add(PassiveCoolDown).UnixNano())
		s.failures.Store(PassiveFails - 1) // on probation after the cool-down
	}
}

// Target is an upstream to keep a state for, with its active check.
type Target struct {
	Key   Key
	Check Check
}

// Registry holds the states and runs the active checkers, one goroutine
// per (check, address), owned by the registry.
type Registry struct {
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	entries map[Key]*entry
	closed  bool
	wg      sync.WaitGroup
}

type entry struct {
	state  *State
	cancel context.CancelFunc // nil without an active check
	done   chan struct{}
}

// NewRegistry returns a registry whose checks use client.
func NewRegistry(client *http.Client, log *slog.Logger) *Registry {
	return &Registry{client: client, log: log, entries: map[Key]*entry{}}
}

// Sync makes the registry hold exactly targets: states of known keys are
// kept, new keys start usable (and their checkers start), the others are
// dropped after their checkers stopped. It returns the state of every
// target.
func (r *Registry) Sync(targets []Target) map[Key]*State {
	out := make(map[Key]*State, len(targets))
	var stopped []*entry
	r.mu.Lock()
	want := make(map[Key]Check, len(targets))
	for _, t := range targets {
		want[t.Key] = t.Check
	}
	for k, e := range r.entries {
		if _, ok := want[k]; !ok {
			delete(r.entries, k)
			stopped = append(stopped, e)
		}
	}
	for k, c := range want {
		e := r.entries[k]
		if e == nil {
			e = &entry{state: &State{}}
			if c.Path != "" && !r.closed {
				ctx, cancel := context.WithCancel(context.Background())
				e.cancel, e.done = cancel, make(chan struct{})
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					defer close(e.done)
					r.run(ctx, k, c.withDefaults(), e.state)
				}()
			}
			r.entries[k] = e
		}
		out[k] = e.state
	}
	r.mu.Unlock()
	for _, e := range stopped {
		if e.cancel != nil {
			e.cancel()
			<-e.done
		}
	}
	return out
}

// Close stops every checker and waits for them.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	for _, e := range r.entries {
		if e.cancel != nil {
			e.cancel()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// run checks one upstream until ctx ends: at once, then every interval.
func (r *Registry) run(ctx context.Context, k Key, c Check, s *State) {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	var passes, fails int
	for {
		ok := r.probe(ctx, k.Address, c)
		if ctx.Err() != nil {
			return
		}
		passes, fails = Next(passes, fails, ok)
		switch {
		case !s.down.Load() && fails >= c.Fails:
			s.down.Store(true)
			r.log.Warn("edge: upstream down by health check", "address", k.Address, "path", c.Path, "fails", fails)
		case s.down.Load() && passes >= c.Passes:
			// The check proved it answers again: a passive ejection
			// from the failures that took it down ends too.
			s.failures.Store(0)
			s.ejectedUntil.Store(0)
			s.down.Store(false)
			r.log.Info("edge: upstream up by health check", "address", k.Address, "path", c.Path)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Next counts a check's result into the passes and fails in a row.
func Next(passes, fails int, ok bool) (int, int) {
	if ok {
		return passes + 1, 0
	}
	return 0, fails + 1
}

// probe GETs the check path; a 2xx or 3xx answer passes.
func (r *Registry) probe(ctx context.Context, addr string, c Check) bool {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.Path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "cc-edge-health")
	if c.Host != "" {
		req.Host = c.Host
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf [512]byte
	for i := 0; i < 8; i++ { // drain a little so the connection can be reused
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
