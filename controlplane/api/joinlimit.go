package api

import (
	"context"
	"fmt"
	"net/netip"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
)

// Defaults of a JoinLimiter (and of the join_limit server config).
const (
	DefaultJoinAttemptsPerMinute = 10
	DefaultJoinBurst             = 20
	// DefaultJoinLimitAddresses bounds the addresses a JoinLimiter
	// remembers.
	DefaultJoinLimitAddresses = 10000
)

// JoinLimiter throttles the join attempts (Join, JoinServer) that fail,
// per source address: each address has a token bucket of burst attempts,
// refilled at a rate per minute; a refused attempt takes one, a join that
// succeeds none. An address with an empty bucket is refused with
// ResourceExhausted and the wait, before any work. It is the API's
// failed-authentication limiter (auth.RateLimiter's FailedAuth rule, whose
// buckets are by address, IPv6 by /64, and bounded) with the join's own
// rule.
type JoinLimiter struct {
	lim      *auth.RateLimiter
	maxAddrs int
}

// NewJoinLimiter returns a limiter of perMinute failed attempts per
// address, with bursts of burst; it remembers at most maxAddrs addresses
// (DefaultJoinLimitAddresses when 0).
func NewJoinLimiter(perMinute float64, burst, maxAddrs int) *JoinLimiter {
	if maxAddrs <= 0 {
		maxAddrs = DefaultJoinLimitAddresses
	}
	return &JoinLimiter{maxAddrs: maxAddrs, lim: auth.NewRateLimiter(joinRule(perMinute, burst, maxAddrs))}
}

func joinRule(perMinute float64, burst, maxAddrs int) auth.RateLimits {
	return auth.RateLimits{
		FailedAuth: auth.RateRule{PerSecond: perMinute / 60, Burst: max(burst, 1)},
		MaxKeys:    maxAddrs,
	}
}

// SetRule changes the rule (a reload of the configuration); the buckets
// keep what they hold.
func (l *JoinLimiter) SetRule(perMinute float64, burst int) {
	l.lim.SetLimits(joinRule(perMinute, burst, l.maxAddrs))
}

// begin checks ip's budget: when the bucket holds less than one attempt it
// returns the refusal (ResourceExhausted with the wait); otherwise a
// function that takes one attempt from the bucket, to call when the
// attempt failed. Attempts that succeed cost nothing, so that a fleet of
// agents behind one address may join at once.
func (l *JoinLimiter) begin(ip netip.Addr) (failed func(), err error) {
	failed, err = l.lim.AuthBudget(ip)
	if err != nil {
		return nil, auth.Exhausted(fmt.Sprintf("too many failed join attempts from %s", ip.Unmap()), auth.RetryAfter(err))
	}
	return failed, nil
}

// beginJoin applies the core's join limiter to the caller of ctx: an
// address over its budget is refused with ResourceExhausted and the wait
// (a RetryInfo detail, and in the message). Otherwise it returns a function
// to call with the join's error: a refusal of the token or the request
// (Unauthenticated, InvalidArgument) counts against the address. With no
// limiter, or no IP address to go by, every attempt goes on.
func (c *Core) beginJoin(ctx context.Context) (func(error), error) {
	noop := func(error) {}
	if c.JoinLimiter == nil {
		return noop, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return noop, nil
	}
	ip, ok := auth.ParseAddr(p.Addr.String())
	if !ok {
		return noop, nil // not an IP connection (in-memory)
	}
	failed, err := c.JoinLimiter.begin(ip)
	if err != nil {
		return nil, err
	}
	return func(err error) {
		if code := status.Code(err); code == codes.Unauthenticated || code == codes.InvalidArgument {
			failed()
		}
	}, nil
}
