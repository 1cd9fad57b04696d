package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/metricstest"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestMetrics: GET /metrics on the API port answers tokens of roles
// metrics, viewer and admin with the server's series (raft, API, jobs,
// sessions, state, Go runtime), which pass client_golang's linter and
// promtool; it refuses a missing token (401) and a role that may not read
// them (403), both counted as auth failures. A metrics token may call no
// API method. metrics_addr serves the same without a token.
func TestMetrics(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.MetricsAddr = "127.0.0.1:0" })
	cl := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := func(role ccv1.Role) string {
		t.Helper()
		resp, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: role, Description: "metrics test"})
		if err != nil {
			t.Fatalf("create %v token: %v", role, err)
		}
		return resp.Secret
	}
	metricsTok, viewerTok, jobsTok := token(ccv1.Role_ROLE_METRICS), token(ccv1.Role_ROLE_VIEWER), token(ccv1.Role_ROLE_JOBS)

	client := srv.HTTPClient()
	get := func(url, tok string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode, body
	}

	if code, body := get(srv.URL()+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d %s, want 401", code, body)
	}
	if code, body := get(srv.URL()+"/metrics", jobsTok); code != http.StatusForbidden {
		t.Errorf("GET /metrics with a jobs token: %d %s, want 403", code, body)
	}
	for name, tok := range map[string]string{"viewer": viewerTok, "admin": srv.Token} {
		if code, _ := get(srv.URL()+"/metrics", tok); code != http.StatusOK {
			t.Errorf("GET /metrics with a %s token: %d, want 200", name, code)
		}
	}

	// A metrics token reads /metrics and nothing else.
	conn := srv.Conn(metricsTok)
	if _, err := ccv1.NewNodeServiceClient(conn).ListNodes(ctx, &ccv1.ListNodesRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListNodes with a metrics token: %v, want PermissionDenied", err)
	}
	if code, body := get(srv.URL()+"/v1/nodes", metricsTok); code != http.StatusForbidden {
		t.Errorf("GET /v1/nodes with a metrics token: %d %s, want 403", code, body)
	}

	code, body := get(srv.URL()+"/metrics", metricsTok)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics with a metrics token: %d %s", code, body)
	}
	metricstest.Check(t, body, "cc_raft_", "cc_api_", "cc_jobs", "cc_fsm_apply_duration_seconds", "cc_nodes", "cc_sessions_open", "cc_disk_free_bytes", "cc_blobs", "go_", "process_")
	for series, want := range map[string]string{
		`cc_raft_state{state="leader"}`: "1",
		`cc_raft_has_leader`:            "1",
		`cc_raft_voters`:                "1",
		`cc_api_requests_total{code="OK",method="TokenService/CreateToken"}`: "3",
		`cc_api_auth_failures_total{outcome="unauthenticated"}`:              "1",
		`cc_jobs{state="queued"}`:                                            "0",
	} {
		if got, ok := metricstest.Value(body, series); !ok || got != want {
			t.Errorf("%s = %q (found %v), want %s", series, got, ok, want)
		}
	}
	// Three refusals of role: the jobs token here, the metrics token on
	// ListNodes over gRPC and over REST.
	if got, _ := metricstest.Value(body, `cc_api_auth_failures_total{outcome="permission_denied"}`); got != "3" {
		t.Errorf("permission_denied failures = %q, want 3", got)
	}

	// metrics_addr: the same series, over plain HTTP, without a token.
	resp, err := http.Get("http://" + srv.Srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET metrics_addr: %v", err)
	}
	plain, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET metrics_addr: %s", resp.Status)
	}
	metricstest.Check(t, plain, "cc_raft_", "cc_api_")
}

// TestRaftMetricsOfACluster: in a cluster of three, each server has its
// own registry; the leader reports its last contact with both followers,
// each follower its last contact with the leader, and all count three
// voters and the election they saw.
func TestRaftMetricsOfACluster(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	leader := c.Leader()
	contacts := func(s *testcluster.Server) (n int, maxSeconds float64) {
		mfs, err := s.Srv.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "cc_raft_last_contact_seconds" {
				for _, m := range mf.GetMetric() {
					n++
					maxSeconds = max(maxSeconds, m.GetGauge().GetValue())
				}
			}
		}
		return n, maxSeconds
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Servers {
		want := 1
		if s == leader {
			want = 2
		}
		for {
			n, most := contacts(s)
			// A peer heard from in the last few heartbeats (the test's
			// heartbeat timeout is 500ms); generous for a loaded machine.
			if n == want && most < 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server %s (leader %v): %d contacts, the oldest %vs ago; want %d", s.Addr(), s == leader, n, most, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
		mfs, err := s.Srv.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "cc_raft_voters":
				if v := mf.GetMetric()[0].GetGauge().GetValue(); v != 3 {
					t.Errorf("server %s: %v voters, want 3", s.Addr(), v)
				}
			case "cc_raft_leader_changes_total":
				if v := mf.GetMetric()[0].GetCounter().GetValue(); v < 1 {
					t.Errorf("server %s: saw %v leader changes, want at least the election", s.Addr(), v)
				}
			}
		}
	}
}
