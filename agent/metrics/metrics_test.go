package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "v1", "n1")
	// Before a source is set: no cc_containers, no edge gauges.
	if n, err := testutil.GatherAndCount(reg, "cc_containers", "cc_edge_upstreams"); err != nil || n != 0 {
		t.Fatalf("series without sources: %d %v", n, err)
	}
	m.SetContainers(func() map[ContainerKey]int {
		return map[ContainerKey]int{{KindContainer, "running"}: 2, {KindJob, "exited"}: 1}
	})
	m.SetEdge(func() EdgeStats {
		return EdgeStats{
			Upstreams: map[UpstreamKey]int{{"web", "healthy"}: 2, {"web", "unhealthy"}: 1},
			Certs:     map[string]time.Time{"web": time.Now().Add(-time.Hour)},
			InFlight:  3,
		}
	})
	want := `
# HELP cc_containers The node's containers by kind (container, job) and state (preparing, running, exited, failed), as the agent last observed them.
# TYPE cc_containers gauge
cc_containers{kind="container",state="exited"} 0
cc_containers{kind="container",state="failed"} 0
cc_containers{kind="container",state="preparing"} 0
cc_containers{kind="container",state="running"} 2
cc_containers{kind="job",state="exited"} 1
cc_containers{kind="job",state="failed"} 0
cc_containers{kind="job",state="preparing"} 0
cc_containers{kind="job",state="running"} 0
# HELP cc_edge_upstreams Each route's upstreams by health: healthy (usable now) or unhealthy (failing its active checks, or ejected after failures).
# TYPE cc_edge_upstreams gauge
cc_edge_upstreams{health="healthy",route="web"} 2
cc_edge_upstreams{health="unhealthy",route="web"} 1
# HELP cc_edge_acme_challenges_pending ACME challenges the edge is ready to answer, by type.
# TYPE cc_edge_acme_challenges_pending gauge
cc_edge_acme_challenges_pending{type="http-01"} 0
cc_edge_acme_challenges_pending{type="tls-alpn-01"} 0
# HELP cc_edge_requests_in_flight Requests the edge is serving now (open WebSockets included).
# TYPE cc_edge_requests_in_flight gauge
cc_edge_requests_in_flight 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cc_containers", "cc_edge_upstreams", "cc_edge_acme_challenges_pending", "cc_edge_requests_in_flight"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "cc_edge_certificate_expiry_seconds" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v > -3500 || v < -3700 {
				t.Errorf("an expired certificate: %v seconds, want about -3600", v)
			}
		}
	}
	m.EdgeServed("", 404, "", time.Millisecond)
	m.EdgeServed("web", 200, "n2", time.Millisecond)
	m.ContainerStarted(KindJob, true, time.Second)
	m.ImagePulled(SourceRegistry, false, time.Second)
	m.HealthChecked("exec", true)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if v := testutil.ToFloat64(m.edgeRequests.WithLabelValues("none", "404", "")); v != 1 {
		t.Errorf("a request nothing matched: %v under route none", v)
	}
	// What heartbeats report: every request, and those answered 5xx.
	m.EdgeServed("web", 502, "", time.Millisecond)
	if e := m.EdgeTraffic(); e.GetRequests() != 3 || e.GetErrors() != 1 {
		t.Errorf("edge traffic after a 404, a 200 and a 502: %v, want 3 requests and 1 error", e)
	}
	var none *Metrics
	if e := none.EdgeTraffic(); e != nil {
		t.Errorf("edge traffic without metrics: %v", e)
	}
	// The edge stopping takes its gauges away.
	m.SetEdge(nil)
	if n, _ := testutil.GatherAndCount(reg, "cc_edge_upstreams"); n != 0 {
		t.Errorf("edge gauges after SetEdge(nil): %d", n)
	}
}
