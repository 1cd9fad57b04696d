package auth

import (
	"context"
	"sync"
	"time"
)

// DefaultCatchUpMaxAge is how long a server trusts that it has caught up
// with the cluster before it checks a token again: a token revoked on any
// server is refused everywhere for calls that start this long after the
// revocation was acknowledged, or sooner.
const DefaultCatchUpMaxAge = 500 * time.Millisecond

// catchUpTimeout bounds one barrier; a caller gives up with its error.
const catchUpTimeout = 5 * time.Second

// CatchUp brings this server's state up to the cluster's before a credential
// is checked against it, cheaply: one barrier (a read index from the leader,
// then waiting until this server has applied it) serves every call that
// arrives within MaxAge of the barrier's start, and concurrent callers
// share the barrier in flight instead of each making a round trip.
//
// A successful barrier that started at T means this server's state holds
// every write acknowledged before T ("caught up as of T"). Wait returns
// without a round trip while the last such T is less than MaxAge old. A
// failed barrier is not remembered: the next call tries again.
type CatchUp struct {
	barrier func(context.Context) error
	maxAge  time.Duration
	now     func() time.Time

	mu       sync.Mutex
	asOf     time.Time // the start of the last successful barrier
	inflight *catchUpCall
}

type catchUpCall struct {
	start time.Time
	done  chan struct{}
	err   error
}

// NewCatchUp returns a CatchUp over barrier, which must make this server's
// state hold every write acknowledged before it was called. maxAge <= 0
// makes every call wait for a barrier of its own (concurrent calls still
// share one that started after they arrived).
func NewCatchUp(barrier func(context.Context) error, maxAge time.Duration) *CatchUp {
	if maxAge < 0 {
		maxAge = 0
	}
	return &CatchUp{barrier: barrier, maxAge: maxAge, now: time.Now}
}

// Wait returns once this server's state is caught up as of less than MaxAge
// ago, or with the error of the barrier that failed, or when ctx ends.
func (c *CatchUp) Wait(ctx context.Context) error {
	c.mu.Lock()
	arrived := c.now()
	if !c.asOf.IsZero() && arrived.Sub(c.asOf) < c.maxAge {
		c.mu.Unlock()
		return nil
	}
	call := c.inflight
	// Join the barrier in flight only if it is recent enough to count for
	// this call: one started before the call arrived serves it only within
	// MaxAge (with MaxAge 0, never).
	if call == nil || arrived.Sub(call.start) >= c.maxAge && call.start.Before(arrived) {
		call = &catchUpCall{start: arrived, done: make(chan struct{})}
		c.inflight = call
		go c.run(ctx, call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run makes one barrier for every caller waiting on call; it does not end
// with the first caller's context.
func (c *CatchUp) run(ctx context.Context, call *catchUpCall) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catchUpTimeout)
	err := c.barrier(bctx)
	cancel()
	c.mu.Lock()
	if err == nil && call.start.After(c.asOf) {
		c.asOf = call.start
	}
	if c.inflight == call {
		c.inflight = nil
	}
	call.err = err
	c.mu.Unlock()
	close(call.done)
}
