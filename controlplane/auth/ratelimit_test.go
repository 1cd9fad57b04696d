package auth

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func newTestLimiter(l RateLimits) (*RateLimiter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	r := NewRateLimiter(RateLimits{})
	r.SetClock(c.now)
	r.SetLimits(l)
	return r, c
}

func wantExhausted(t *testing.T, err error, substr string, retry time.Duration) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	if !strings.Contains(status.Convert(err).Message(), substr) {
		t.Errorf("message %q lacks %q", status.Convert(err).Message(), substr)
	}
	if got := RetryAfter(err); got != retry {
		t.Errorf("RetryInfo delay = %s, want %s", got, retry)
	}
}

func TestRateLimiterPerToken(t *testing.T) {
	r, clock := newTestLimiter(RateLimits{Roles: map[ccv1.Role]RateRule{
		ccv1.Role_ROLE_JOBS: {PerSecond: 0.5, Burst: 3},
	}})
	ip := netip.MustParseAddr("10.0.0.1")
	a := Principal{TokenID: "a", Role: ccv1.Role_ROLE_JOBS}
	b := Principal{TokenID: "b", Role: ccv1.Role_ROLE_JOBS}
	admin := Principal{TokenID: "c", Role: ccv1.Role_ROLE_ADMIN}
	for i := 0; i < 3; i++ {
		if err := r.Allow(a, ip); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	wantExhausted(t, r.Allow(a, ip), "token a", 2*time.Second)
	// Another token, and a role with no rule, are not affected.
	if err := r.Allow(b, ip); err != nil {
		t.Fatalf("token b: %v", err)
	}
	for i := 0; i < 100; i++ {
		if err := r.Allow(admin, ip); err != nil {
			t.Fatalf("admin call %d: %v", i+1, err)
		}
	}
	clock.add(time.Second)
	wantExhausted(t, r.Allow(a, ip), "token a", time.Second)
	clock.add(time.Second)
	if err := r.Allow(a, ip); err != nil {
		t.Fatalf("after 2s: %v", err)
	}
}

func TestRateLimiterPerAddress(t *testing.T) {
	r, clock := newTestLimiter(RateLimits{Address: RateRule{PerSecond: 1, Burst: 2}})
	ip := netip.MustParseAddr("2001:db8::1")
	same64 := netip.MustParseAddr("2001:db8::2")
	other := netip.MustParseAddr("2001:db8:1::1")
	p := func(id string) Principal { return Principal{TokenID: id, Role: ccv1.Role_ROLE_ADMIN} }
	if err := r.Allow(p("a"), ip); err != nil {
		t.Fatal(err)
	}
	if err := r.Allow(p("b"), same64); err != nil {
		t.Fatal(err)
	}
	wantExhausted(t, r.Allow(p("c"), ip), "source address", time.Second)
	if err := r.Allow(p("a"), other); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// No address (the in-memory gateway connection): not limited by address.
	if err := r.Allow(p("a"), netip.Addr{}); err != nil {
		t.Fatalf("no address: %v", err)
	}
	clock.add(time.Second)
	if err := r.Allow(p("a"), ip); err != nil {
		t.Fatalf("after 1s: %v", err)
	}
}

func TestRateLimiterTokenRefusalDoesNotChargeAddress(t *testing.T) {
	r, _ := newTestLimiter(RateLimits{
		Roles:   map[ccv1.Role]RateRule{ccv1.Role_ROLE_VIEWER: {PerSecond: 1, Burst: 1}},
		Address: RateRule{PerSecond: 1, Burst: 2},
	})
	ip := netip.MustParseAddr("10.0.0.1")
	v := Principal{TokenID: "v", Role: ccv1.Role_ROLE_VIEWER}
	if err := r.Allow(v, ip); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		wantExhausted(t, r.Allow(v, ip), "token v", time.Second)
	}
	// The refusals took nothing from the address: one call is left.
	if err := r.Allow(Principal{TokenID: "w", Role: ccv1.Role_ROLE_ADMIN}, ip); err != nil {
		t.Fatalf("address bucket was charged by refused calls: %v", err)
	}
}

func TestRateLimiterFailedAuth(t *testing.T) {
	r, clock := newTestLimiter(RateLimits{FailedAuth: RateRule{PerSecond: 1.0 / 60, Burst: 2}})
	ip := netip.MustParseAddr("192.0.2.7")
	for i := 0; i < 2; i++ {
		failed, err := r.AuthBudget(ip)
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		failed()
	}
	_, err := r.AuthBudget(ip)
	wantExhausted(t, err, "failed authentications from 192.0.2.7", time.Minute)
	// Successful authentications cost nothing; another address is fine.
	if _, err := r.AuthBudget(netip.MustParseAddr("192.0.2.8")); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Minute)
	if _, err := r.AuthBudget(ip); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
}

func TestRateLimiterSetLimits(t *testing.T) {
	r, _ := newTestLimiter(RateLimits{Roles: map[ccv1.Role]RateRule{ccv1.Role_ROLE_ADMIN: {PerSecond: 1, Burst: 1}}})
	ip := netip.MustParseAddr("10.0.0.1")
	a := Principal{TokenID: "a", Role: ccv1.Role_ROLE_ADMIN}
	if err := r.Allow(a, ip); err != nil {
		t.Fatal(err)
	}
	if err := r.Allow(a, ip); err == nil {
		t.Fatal("second call allowed with a burst of 1")
	}
	// 0 per second: no limit.
	r.SetLimits(RateLimits{Roles: map[ccv1.Role]RateRule{ccv1.Role_ROLE_ADMIN: {}}})
	for i := 0; i < 50; i++ {
		if err := r.Allow(a, ip); err != nil {
			t.Fatalf("unlimited: %v", err)
		}
	}
	r.SetLimits(RateLimits{Roles: map[ccv1.Role]RateRule{ccv1.Role_ROLE_ADMIN: {PerSecond: 1, Burst: 2}}})
	if got := r.Limits().Roles[ccv1.Role_ROLE_ADMIN]; got.Burst != 2 {
		t.Fatalf("Limits = %+v", got)
	}
}

func TestRateLimiterBounded(t *testing.T) {
	r, _ := newTestLimiter(RateLimits{Address: RateRule{PerSecond: 1, Burst: 1}, MaxKeys: 8})
	for i := 0; i < 100; i++ {
		r.Allow(Principal{}, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	r.mu.Lock()
	n := len(r.addrs.m)
	r.mu.Unlock()
	if n > 8 {
		t.Fatalf("%d addresses remembered, want at most 8", n)
	}
}

// TestRateLimiterOnLimited: every refusal names the limit it hit.
func TestRateLimiterOnLimited(t *testing.T) {
	r, _ := newTestLimiter(RateLimits{
		Roles:      map[ccv1.Role]RateRule{ccv1.Role_ROLE_VIEWER: {PerSecond: 1, Burst: 1}},
		Address:    RateRule{PerSecond: 1, Burst: 2},
		FailedAuth: RateRule{PerSecond: 1, Burst: 1},
	})
	var got []string
	r.OnLimited(func(limit string) { got = append(got, limit) })
	ip := netip.MustParseAddr("10.0.0.1")
	v1 := Principal{TokenID: "v1", Role: ccv1.Role_ROLE_VIEWER}
	v2 := Principal{TokenID: "v2", Role: ccv1.Role_ROLE_VIEWER}
	_ = r.Allow(v1, ip)                                                    // ok
	_ = r.Allow(v1, ip)                                                    // the token's bucket is empty
	_ = r.Allow(v2, ip)                                                    // ok: the address's second call
	_ = r.Allow(Principal{TokenID: "v3", Role: ccv1.Role_ROLE_VIEWER}, ip) // the address's bucket is empty
	failed, err := r.AuthBudget(ip)
	if err != nil {
		t.Fatal(err)
	}
	failed()
	if _, err := r.AuthBudget(ip); err == nil {
		t.Fatal("a second failed authentication was let through")
	}
	want := []string{LimitToken, LimitAddress, LimitFailedAuth}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

func TestMayReadMetrics(t *testing.T) {
	for role, want := range map[ccv1.Role]bool{
		ccv1.Role_ROLE_METRICS: true, ccv1.Role_ROLE_VIEWER: true, ccv1.Role_ROLE_ADMIN: true,
		ccv1.Role_ROLE_JOBS: false, ccv1.Role_ROLE_AGENT: false, ccv1.Role_ROLE_UNSPECIFIED: false,
	} {
		if got := MayReadMetrics(role); got != want {
			t.Errorf("MayReadMetrics(%v) = %v, want %v", role, got, want)
		}
	}
	// A metrics token may call no gRPC method.
	if Allowed(ccv1.Role_ROLE_METRICS, ccv1.ClusterService_GetStatus_FullMethodName) {
		t.Error("a metrics token may call GetStatus")
	}
}
