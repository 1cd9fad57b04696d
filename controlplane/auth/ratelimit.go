package auth

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// RateRule is a token bucket: Burst calls at once, refilled at PerSecond.
// A PerSecond of 0 (or less) means no limit.
type RateRule struct {
	PerSecond float64
	Burst     int
}

func (r RateRule) unlimited() bool { return !(r.PerSecond > 0) }

func (r RateRule) limit() rate.Limit {
	if r.unlimited() {
		return rate.Inf
	}
	return rate.Limit(r.PerSecond)
}

func (r RateRule) burst() int { return max(r.Burst, 1) }

// RateLimits are the rules of a RateLimiter. Only calls made with an API
// token (gRPC and REST) count; agents and servers, which authenticate with
// certificates, and joins are never limited here.
type RateLimits struct {
	// Roles is the rule of each token, by its role; a role not listed is
	// not limited.
	Roles map[ccv1.Role]RateRule
	// Address is the rule of each source address (IPv6: each /64), over
	// the calls of every token from it.
	Address RateRule
	// FailedAuth is the rule of each source address for authentications
	// that fail: an address with an empty bucket is refused before its
	// credentials are looked at.
	FailedAuth RateRule
	// MaxKeys bounds the tokens and addresses each kind of bucket
	// remembers (DefaultRateLimitKeys when 0).
	MaxKeys int
}

// DefaultRateLimitKeys bounds the buckets a RateLimiter keeps of each kind.
const DefaultRateLimitKeys = 10000

// RateLimiter throttles API calls with token buckets: one per token (the
// rule of its role), one per source address, and one per source address
// for failed authentications. Its maps are bounded: when one is full, the
// buckets that are full again (as good as new) are forgotten, then any.
// SetLimits changes the rules of a running limiter.
type RateLimiter struct {
	// now is the clock; tests may set it before use.
	now func() time.Time

	mu     sync.Mutex
	limits RateLimits
	tokens *buckets
	addrs  *buckets
	fails  *buckets

	limited func(limit string) // nil: not told
}

// Limits a refusal names to OnLimited.
const (
	LimitToken      = "token"
	LimitAddress    = "address"
	LimitFailedAuth = "failed_auth"
)

// OnLimited makes the limiter tell fn about every call it refuses, with
// the limit exceeded (LimitToken, LimitAddress or LimitFailedAuth). Call
// it before the limiter is used.
func (r *RateLimiter) OnLimited(fn func(limit string)) { r.limited = fn }

func (r *RateLimiter) refused(limit string) {
	if r.limited != nil {
		r.limited(limit)
	}
}

// NewRateLimiter returns a limiter with the rules l.
func NewRateLimiter(l RateLimits) *RateLimiter {
	r := &RateLimiter{now: time.Now}
	r.tokens, r.addrs, r.fails = newBuckets(), newBuckets(), newBuckets()
	r.SetLimits(l)
	return r
}

// SetClock replaces the limiter's clock (tests).
func (r *RateLimiter) SetClock(now func() time.Time) { r.now = now }

// Limits returns the rules in force.
func (r *RateLimiter) Limits() RateLimits {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limits
}

// SetLimits replaces the rules; the buckets already known take the new
// rate and burst and keep what they hold.
func (r *RateLimiter) SetLimits(l RateLimits) {
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultRateLimitKeys
	}
	roles := make(map[ccv1.Role]RateRule, len(l.Roles))
	for k, v := range l.Roles {
		roles[k] = v
	}
	l.Roles = roles
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limits = l
	r.tokens.reconfigure(now, l.MaxKeys, func(e *bucket) RateRule { return l.Roles[e.role] })
	r.addrs.reconfigure(now, l.MaxKeys, func(*bucket) RateRule { return l.Address })
	r.fails.reconfigure(now, l.MaxKeys, func(*bucket) RateRule { return l.FailedAuth })
}

// Remembered is how many buckets the limiter holds, of every kind (at most
// MaxKeys of each).
func (r *RateLimiter) Remembered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tokens.m) + len(r.addrs.m) + len(r.fails.m)
}

// bucket is one key's limiter and the rule it was made with.
type bucket struct {
	lim  *rate.Limiter
	rule RateRule
	role ccv1.Role
}

// buckets is a bounded map of token buckets. Guarded by RateLimiter.mu.
type buckets struct {
	max int
	m   map[string]*bucket
}

func newBuckets() *buckets { return &buckets{max: DefaultRateLimitKeys, m: map[string]*bucket{}} }

func (b *buckets) reconfigure(now time.Time, maxKeys int, rule func(*bucket) RateRule) {
	b.max = maxKeys
	for k, e := range b.m {
		r := rule(e)
		if r.unlimited() {
			delete(b.m, k)
			continue
		}
		e.rule = r
		e.lim.SetLimitAt(now, r.limit())
		e.lim.SetBurstAt(now, r.burst())
	}
}

// get returns key's bucket, making it with rule when it is new.
func (b *buckets) get(now time.Time, key string, rule RateRule, role ccv1.Role) *bucket {
	if e := b.m[key]; e != nil {
		return e
	}
	if len(b.m) >= b.max {
		b.evict(now)
	}
	e := &bucket{lim: rate.NewLimiter(rule.limit(), rule.burst()), rule: rule, role: role}
	b.m[key] = e
	return e
}

// evict forgets the buckets that are full, or, if none is, one bucket.
func (b *buckets) evict(now time.Time) {
	for k, e := range b.m {
		if e.lim.TokensAt(now) >= float64(e.rule.burst()) {
			delete(b.m, k)
		}
	}
	if len(b.m) < b.max {
		return
	}
	for k := range b.m {
		delete(b.m, k)
		break
	}
}

// wait is how long until a bucket holds one call again.
func wait(e *bucket, now time.Time) time.Duration {
	tokens := e.lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	if e.rule.unlimited() {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / e.rule.PerSecond * float64(time.Second)))
}

// AddrKey is the bucket of a source address: the address itself, or its
// /64 for IPv6 (one host usually holds a whole /64).
func AddrKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// ParseAddr reads the IP of a network address such as "10.0.0.5:4711";
// ok is false when it holds none (an in-memory connection).
func ParseAddr(addr string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// AuthBudget checks the failed-authentication budget of ip before its
// credentials are looked at. When the bucket is empty it returns a
// ResourceExhausted error with the wait; otherwise a function to call when
// the authentication failed, which takes one from the bucket.
func (r *RateLimiter) AuthBudget(ip netip.Addr) (failed func(), err error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	rule := r.limits.FailedAuth
	if rule.unlimited() {
		return func() {}, nil
	}
	e := r.fails.get(now, AddrKey(ip), rule, 0)
	if d := wait(e, now); d > 0 {
		r.refused(LimitFailedAuth)
		return nil, Exhausted(fmt.Sprintf("too many failed authentications from %s", ip), d)
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		e.lim.AllowN(r.now(), 1)
	}, nil
}

// Allow takes one call from the buckets of the token of p (by its role)
// and of the source address ip (when valid). When either is empty, it
// takes nothing and returns a ResourceExhausted error with the wait.
func (r *RateLimiter) Allow(p Principal, ip netip.Addr) error {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var tok, addr *bucket
	if rule, ok := r.limits.Roles[p.Role]; ok && !rule.unlimited() && p.TokenID != "" {
		tok = r.tokens.get(now, p.TokenID, rule, p.Role)
		if d := wait(tok, now); d > 0 {
			r.refused(LimitToken)
			return Exhausted(fmt.Sprintf("rate limit of token %s exceeded (role %s: %g calls per second, bursts of %d)", p.TokenID, roleName(p.Role), rule.PerSecond, rule.burst()), d)
		}
	}
	if rule := r.limits.Address; ip.IsValid() && !rule.unlimited() {
		addr = r.addrs.get(now, AddrKey(ip), rule, 0)
		if d := wait(addr, now); d > 0 {
			r.refused(LimitAddress)
			return Exhausted(fmt.Sprintf("rate limit of source address %s exceeded (%g calls per second, bursts of %d)", ip, rule.PerSecond, rule.burst()), d)
		}
	}
	// Both hold a call, and mu keeps them so: take it from each.
	for _, e := range []*bucket{tok, addr} {
		if e != nil {
			e.lim.AllowN(now, 1)
		}
	}
	return nil
}

// Exhausted is the ResourceExhausted error of a limit: what was exceeded,
// the wait in the message and as a RetryInfo detail. The wait is rounded
// up to whole seconds, at least one.
func Exhausted(what string, retry time.Duration) error {
	retry = min(retry, time.Hour)
	retry = max((retry + time.Second - 1).Truncate(time.Second), time.Second)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("%s: retry in %s", what, retry))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
		st = d
	}
	return st.Err()
}

// RetryAfter is the wait a status error asks for in a RetryInfo detail,
// or 0.
func RetryAfter(err error) time.Duration {
	st, ok := status.FromError(err)
	if !ok {
		return 0
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
