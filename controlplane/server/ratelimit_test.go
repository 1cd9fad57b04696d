package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func listNodes(t *testing.T, c *testcluster.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := c.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
	return err
}

func wantRateLimited(t *testing.T, err error, substr string) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, substr) {
		t.Fatalf("message %q lacks %q", msg, substr)
	}
	if d := auth.RetryAfter(err); d <= 0 {
		t.Fatalf("no RetryInfo in %v", status.Convert(err).Details())
	}
}

// A token over its role's rate is refused with ResourceExhausted and a
// RetryInfo on gRPC, and 429 with Retry-After on REST; another token of
// the same role is not; a reload lifts the limit.
func TestRateLimitPerToken(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) {
		c.RateLimit.ViewerPerSecond = 0.1 // one call per 10s after the burst
		c.RateLimit.ViewerBurst = 3
	})
	admin := srv.Client()
	a := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	b := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	ca, cb := clientFor(srv, a.Secret), clientFor(srv, b.Secret)
	for i := 0; i < 3; i++ {
		if err := listNodes(t, ca); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	wantRateLimited(t, listNodes(t, ca), "rate limit of token "+a.GetToken().GetId())

	res := doHTTP(t, srv, http.MethodGet, "/v1/nodes", "Bearer "+a.Secret)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("REST over the limit: status %d, want 429; body %s", res.status, res.body)
	}
	if n, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After = %q, want a number of seconds", res.header.Get("Retry-After"))
	}

	if err := listNodes(t, cb); err != nil {
		t.Fatalf("another token: %v", err)
	}
	if res := doHTTP(t, srv, http.MethodGet, "/v1/nodes", "Bearer "+b.Secret); res.status != http.StatusOK {
		t.Fatalf("another token over REST: status %d; body %s", res.status, res.body)
	}
	// The admin token has its own (default, generous) rule.
	if err := listNodes(t, admin); err != nil {
		t.Fatalf("admin: %v", err)
	}

	// A reload without a viewer limit lets the token through at once.
	rl := srv.Srv.RateLimit()
	rl.ViewerPerSecond = 0
	changes, err := srv.Srv.SetRateLimit(rl)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "rate_limit.viewer_per_second") {
		t.Fatalf("changes = %q", changes)
	}
	if err := listNodes(t, ca); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}

// The calls of every token from one address share the address's bucket.
func TestRateLimitPerAddress(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) {
		c.RateLimit.AddressPerSecond = 0.1
		c.RateLimit.AddressBurst = 4
	})
	admin := srv.Client() // the harness's own calls count too
	v := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	cv := clientFor(srv, v.Secret)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = listNodes(t, cv)
	}
	wantRateLimited(t, err, "rate limit of source address 127.0.0.1")
	wantRateLimited(t, listNodes(t, admin), "source address")
}

// Failed authentications are throttled per source address: once over,
// the address is refused even with a valid token, on gRPC and REST.
func TestFailedAuthThrottled(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) {
		c.RateLimit.FailedAuthPerMinute = 1
		c.RateLimit.FailedAuthBurst = 3
	})
	bad := clientFor(srv, "CCAPI-1-0123456789abcdef-wrongsecret")
	for i := 0; i < 3; i++ {
		if err := listNodes(t, bad); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("bad token, attempt %d: %v, want Unauthenticated", i+1, err)
		}
	}
	wantRateLimited(t, listNodes(t, bad), "too many failed authentications from 127.0.0.1")
	wantRateLimited(t, listNodes(t, srv.Client()), "too many failed authentications")
	res := doHTTP(t, srv, http.MethodGet, "/v1/nodes", "Bearer "+srv.Token)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("REST: status %d, Retry-After %q; want 429 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
}
