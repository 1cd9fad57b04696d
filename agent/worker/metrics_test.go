package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/metricstest"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestAgentMetrics: an agent with an edge serves its metrics on its
// metrics address: its containers by state, their starts, the image
// fetched from the cluster, health checks, and the edge's requests by
// route, code and upstream and the upstreams' health. The scrape passes
// client_golang's linter and promtool.
func TestAgentMetrics(t *testing.T) {
	srv := testcluster.Start(t)
	cl := srv.Client()
	a := srv.StartAgent("node-metrics", testcluster.WithEdgeHTTPAddr("127.0.0.1:0"), testcluster.WithMetricsAddr("127.0.0.1:0"))
	cl.LoadBusybox(t, testImage)
	id := create(t, cl, "metered", &ccv1.ContainerSpec{
		Image: testImage, Command: []string{"/bin/busybox", "sleep", "300"}, Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
		Health: &ccv1.HealthCheck{Exec: []string{"/bin/busybox", "true"}, Interval: durationpb.New(200 * time.Millisecond), Timeout: durationpb.New(5 * time.Second)},
	})
	poll(t, cl, id, "running and healthy", func(c *ccv1.Container) bool {
		return running(c) && c.Status.Health == ccv1.HealthState_HEALTH_STATE_HEALTHY
	})

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "up") }))
	defer up.Close()
	upAddr := up.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Edge.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web", Spec: &ccv1.RouteSpec{
		Hosts: []string{"web.localhost"}, Upstreams: []*ccv1.Upstream{{Address: upAddr}},
	}}); err != nil {
		t.Fatalf("create route: %v", err)
	}
	edgeGet := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+a.EdgeAddr+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(60 * time.Second)
	for edgeGet("web.localhost") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the route never answered through the edge")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := edgeGet("nothing.localhost"); code != http.StatusNotFound {
		t.Errorf("a host without a route: %d, want 404", code)
	}

	scrape := func() []byte {
		t.Helper()
		resp, err := http.Get("http://" + a.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape: %s %v", resp.Status, err)
		}
		return body
	}
	want := map[string]func(string) bool{
		`cc_containers{kind="container",state="running"}`:                                eq(1),
		`cc_containers_starts_total{kind="container",result="ok"}`:                       eq(1),
		`cc_containers_restarts_total`:                                                   eq(0),
		`cc_container_pids{name="metered"}`:                                              atLeast(1),
		`cc_container_memory_usage_bytes{name="metered"}`:                                atLeast(1),
		`cc_container_cpu_seconds_total{name="metered"}`:                                 atLeast(0),
		`cc_containers_pids{kind="container"}`:                                           atLeast(1),
		`cc_containers_cpu_seconds_total{kind="container"}`:                              atLeast(0),
		`cc_container_series_omitted`:                                                    eq(0),
		`cc_image_pulls_total{result="ok",source="cluster"}`:                             eq(1),
		`cc_health_checks_total{result="pass",type="exec"}`:                              atLeast(1),
		`cc_edge_requests_total{code="200",route="web",upstream="` + upAddr + `"}`:       atLeast(1),
		`cc_edge_requests_total{code="404",route="none",upstream=""}`:                    atLeast(1),
		`cc_edge_upstreams{health="healthy",route="web"}`:                                eq(1),
		`cc_edge_connections{listener="http"}`:                                           atLeast(0),
		`cc_build_info{node_id="` + a.ID.NodeID + `",program="cc-agent",version="test"}`: eq(1),
	}
	var body []byte
	for {
		body = scrape()
		bad := ""
		for series, ok := range want {
			if v, found := metricstest.Value(body, series); !found || !ok(v) {
				bad = fmt.Sprintf("%s = %q (found %v)", series, v, found)
				break
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s\n%s", bad, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	metricstest.Check(t, body, "cc_containers_", "cc_container_", "cc_edge_", "cc_image_pull", "cc_health_checks_total", "go_", "process_")
}

func eq(n float64) func(string) bool {
	return func(v string) bool { f, err := strconv.ParseFloat(v, 64); return err == nil && f == n }
}

func atLeast(n float64) func(string) bool {
	return func(v string) bool { f, err := strconv.ParseFloat(v, 64); return err == nil && f >= n }
}
