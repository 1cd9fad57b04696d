package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
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
// ResourceExhausted and the wait, before any work. IPv6 addresses count by
// /64, as one host usually holds a whole /64. The addresses it remembers
// are bounded: when full, it forgets those whose bucket is full again,
// then any.
type JoinLimiter struct {
	limit rate.Limit
	burst int
	max   int
	// now is the clock; tests may set it.
	now func() time.Time

	mu    sync.Mutex
	addrs map[netip.Prefix]*rate.Limiter
}

// NewJoinLimiter returns a limiter of perMinute failed attempts per
// address, with bursts of burst; it remembers at most maxAddrs addresses
// (DefaultJoinLimitAddresses when 0).
func NewJoinLimiter(perMinute float64, burst, maxAddrs int) *JoinLimiter {
	if maxAddrs <= 0 {
		maxAddrs = DefaultJoinLimitAddresses
	}
	return &JoinLimiter{limit: rate.Limit(perMinute / 60), burst: max(burst, 1), max: maxAddrs, now: time.Now, addrs: map[netip.Prefix]*rate.Limiter{}}
}

// joinKey is the bucket of an address.
func joinKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p
	}
	return netip.PrefixFrom(ip, 32)
}

// begin checks ip's budget. When the bucket holds less than one attempt it
// returns ok false and how long until it does; otherwise a function that
// takes one attempt from the bucket, to call when the attempt failed.
// Attempts that succeed cost nothing, so that a fleet of agents behind
// one address may join at once.
func (l *JoinLimiter) begin(ip netip.Addr) (failed func(), retry time.Duration, ok bool) {
	key := joinKey(ip)
	now := l.now()
	l.mu.Lock()
	lim := l.addrs[key]
	if lim == nil {
		if len(l.addrs) >= l.max {
			l.evict(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.addrs[key] = lim
	}
	l.mu.Unlock()
	if tokens := lim.TokensAt(now); tokens < 1 {
		if l.limit <= 0 {
			return nil, time.Minute, false
		}
		return nil, time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)), false
	}
	return func() { lim.AllowN(l.now(), 1) }, 0, true
}

// evict forgets the addresses whose bucket is full (they are as good as
// new), or, if none is, one address. Called with mu held.
func (l *JoinLimiter) evict(now time.Time) {
	for k, lim := range l.addrs {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) < l.max {
		return
	}
	for k := range l.addrs {
		delete(l.addrs, k)
		break
	}
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
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return noop, nil // not an IP connection (in-memory)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return noop, nil
	}
	failed, retry, ok := c.JoinLimiter.begin(ip)
	if ok {
		return func(err error) {
			if code := status.Code(err); code == codes.Unauthenticated || code == codes.InvalidArgument {
				failed()
			}
		}, nil
	}
	retry = max((retry + time.Second - 1).Truncate(time.Second), time.Second)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("too many failed join attempts from %s: retry in %s", ip.Unmap(), retry))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
		st = d
	}
	return nil, st.Err()
}
