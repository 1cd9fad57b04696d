// Package ratelimit limits requests per client address with token buckets
// (golang.org/x/time/rate), one bucket per address in a bounded map whose
// idle entries are evicted.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxClients bounds the buckets a Limiter keeps.
const DefaultMaxClients = 65536

// Limiter is a rate per client. It is safe for concurrent use.
type Limiter struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	clients map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New returns a limiter of perSecond with burst (0: perSecond, at least 1)
// keeping at most maxClients buckets (0: DefaultMaxClients).
func New(perSecond float64, burst, maxClients int) *Limiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	if maxClients <= 0 {
		maxClients = DefaultMaxClients
	}
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, max: maxClients, clients: map[string]*bucket{}}
}

// Allow takes a token of client's bucket at now. When there is none, it
// says how long until there is.
func (l *Limiter) Allow(client string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[client]
	if b == nil {
		if len(l.clients) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[client] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	if !r.OK() || d <= 0 {
		d = time.Second
	}
	return false, d
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// evict drops the buckets that have refilled (an idle client's bucket is
// full, so dropping it changes nothing); if none has, the least recently
// used half goes.
func (l *Limiter) evict(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	if l.limit <= 0 || full <= 0 {
		full = time.Minute
	}
	for k, b := range l.clients {
		if now.Sub(b.last) >= full {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < l.max {
		return
	}
	ts := make([]time.Time, 0, len(l.clients))
	for _, b := range l.clients {
		ts = append(ts, b.last)
	}
	cut := midpoint(ts)
	for k, b := range l.clients {
		if !b.last.After(cut) {
			delete(l.clients, k)
		}
	}
}

// midpoint is halfway between the oldest and the newest use: the buckets
// used before it go (eviction of this kind is rare, so no exact median).
func midpoint(ts []time.Time) time.Time {
	lo, hi := ts[0], ts[0]
	for _, t := range ts {
		if t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return lo.Add(hi.Sub(lo) / 2)
}
