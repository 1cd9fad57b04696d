// Package metrics is the agent's Prometheus metrics: its containers, image
// pulls, job sandboxes and health checks, and its edge's requests,
// connections, upstreams, TLS handshakes, certificates and ACME challenges
// (names and labels in docs/metrics.md). Each agent has its own registry,
// served by cc-agent on --metrics-addr. A nil *Metrics is valid and
// records nothing.
package metrics

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	imetrics "github.com/containercodes/cc/internal/metrics"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const ns = imetrics.Namespace

// Metrics holds an agent's series. Its methods are safe for concurrent use
// and do nothing on a nil *Metrics.
type Metrics struct {
	reg *prometheus.Registry

	starts        *prometheus.CounterVec
	startDuration *prometheus.HistogramVec
	restarts      prometheus.Counter
	oomKills      *prometheus.CounterVec
	pulls         *prometheus.CounterVec
	pullDuration  *prometheus.HistogramVec
	sandboxSetup  prometheus.Histogram
	healthChecks  *prometheus.CounterVec

	edgeRequests *prometheus.CounterVec
	// edgeServed and edgeErrors are edgeRequests in all and those with a
	// 5xx code: what heartbeats report (EdgeTraffic).
	edgeServed, edgeErrors atomic.Uint64
	edgeDuration           *prometheus.HistogramVec
	edgeConns              *prometheus.GaugeVec
	tlsHandshakes          *prometheus.CounterVec
	acmeChallenges         *prometheus.CounterVec

	containers atomic.Pointer[func() map[ContainerKey]int]
	edge       atomic.Pointer[func() EdgeStats]
	usage      usageState
}

// New registers an agent's series in reg (from
// internal/metrics.NewRegistry). version and nodeID label cc_build_info.
func New(reg *prometheus.Registry, version, nodeID string) *Metrics {
	m := &Metrics{reg: reg}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	histogramVec := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}, labels)
		reg.MustRegister(h)
		return h
	}
	m.starts = counterVec("containers_starts_total", "Container starts by kind (container: a service task or a plain container; job: a job attempt's sandbox) and result (ok, failed).", "kind", "result")
	m.startDuration = histogramVec("containers_start_duration_seconds", "Time to start a container, its image fetched or pulled if missing, by kind.", imetrics.DurationBuckets, "kind")
	m.restarts = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "containers_restarts_total", Help: "Containers restarted by their restart policy (after an exit or being unhealthy)."})
	reg.MustRegister(m.restarts)
	m.oomKills = counterVec("containers_oom_kills_total", "Containers that ended killed by the kernel's OOM killer, by kind.", "kind")
	m.oomKills.WithLabelValues(KindContainer)
	m.oomKills.WithLabelValues(KindJob)
	m.pulls = counterVec("image_pulls_total", "Images fetched because they were missing, by source (registry: a pull; cluster: an archive loaded into the cluster, fetched from the control plane) and result (ok, failed).", "source", "result")
	m.pullDuration = histogramVec("image_pull_duration_seconds", "Time to fetch a missing image, by source.", imetrics.DurationBuckets, "source")
	m.sandboxSetup = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "sandbox_setup_duration_seconds",
		Help: "Time to set a job attempt's sandbox up (network namespace, output and scratch mounts, input) before its container is created.", Buckets: imetrics.DurationBuckets})
	reg.MustRegister(m.sandboxSetup)
	m.healthChecks = counterVec("health_checks_total", "Containers' health checks run, by type (exec, http) and result (pass, fail).", "type", "result")

	m.edgeRequests = counterVec("edge_requests_total", "Requests the edge served, by route (a route's name, site:NAME for a site, none when nothing matched), HTTP status code and upstream (the node id of the task that answered, a fixed upstream's address, or empty when the edge answered itself).", "route", "code", "upstream")
	m.edgeDuration = histogramVec("edge_request_duration_seconds", "Time the edge took to serve a request until its handler returned (a WebSocket: while it was open), by route.", imetrics.DurationBuckets, "route")
	m.edgeConns = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "edge_connections", Help: "Client connections open on the edge, by listener (http, https)."}, []string{"listener"})
	reg.MustRegister(m.edgeConns)
	m.tlsHandshakes = counterVec("edge_tls_handshakes_total", "TLS handshakes on the edge's HTTPS listener, by result (ok, failed).", "result")
	m.acmeChallenges = counterVec("edge_acme_challenges_answered_total", "ACME validation requests the edge answered, by challenge type (http-01, tls-alpn-01).", "type")

	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "build_info", Help: "Always 1; the labels are the agent's build and node.",
		ConstLabels: prometheus.Labels{"version": version, "program": "cc-agent", "node_id": nodeID}})
	build.Set(1)
	reg.MustRegister(build)
	m.registerCollectors()
	m.registerUsage()
	return m
}

// Registry is the registry the series are in: serve it at /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Kinds of container.
const (
	KindContainer = "container"
	KindJob       = "job"
)

// StateLabel is a container state as a label value: "running" for
// CONTAINER_STATE_RUNNING.
func StateLabel(s ccv1.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_STATE_"))
}

func seconds(d time.Duration) float64 { return max(d.Seconds(), 0) }

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// ContainerStarted records a start of a container of kind.
func (m *Metrics) ContainerStarted(kind string, ok bool, d time.Duration) {
	if m == nil {
		return
	}
	m.starts.WithLabelValues(kind, result(ok)).Inc()
	if ok {
		m.startDuration.WithLabelValues(kind).Observe(seconds(d))
	}
}

// ContainerRestarted counts a restart by a restart policy.
func (m *Metrics) ContainerRestarted() {
	if m != nil {
		m.restarts.Inc()
	}
}

// OOMKilled counts a container of kind the OOM killer ended.
func (m *Metrics) OOMKilled(kind string) {
	if m != nil {
		m.oomKills.WithLabelValues(kind).Inc()
	}
}

// Image sources.
const (
	SourceRegistry = "registry"
	SourceCluster  = "cluster"
)

// ImagePulled records the fetch of a missing image from source.
func (m *Metrics) ImagePulled(source string, ok bool, d time.Duration) {
	if m == nil {
		return
	}
	m.pulls.WithLabelValues(source, result(ok)).Inc()
	if ok {
		m.pullDuration.WithLabelValues(source).Observe(seconds(d))
	}
}

// SandboxSetUp times a job sandbox's set-up.
func (m *Metrics) SandboxSetUp(d time.Duration) {
	if m != nil {
		m.sandboxSetup.Observe(seconds(d))
	}
}

// HealthChecked counts a health check of type exec or http.
func (m *Metrics) HealthChecked(checkType string, pass bool) {
	if m == nil {
		return
	}
	r := "fail"
	if pass {
		r = "pass"
	}
	m.healthChecks.WithLabelValues(checkType, r).Inc()
}

// EdgeServed records a request the edge served.
func (m *Metrics) EdgeServed(route string, code int, upstream string, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "none"
	}
	m.edgeRequests.WithLabelValues(route, strconv.Itoa(code), upstream).Inc()
	m.edgeDuration.WithLabelValues(route).Observe(seconds(d))
	m.edgeServed.Add(1)
	if code >= 500 {
		m.edgeErrors.Add(1)
	}
}

// EdgeTraffic is what the edge served since the agent started: requests in
// all and those answered with a 5xx code; nil without metrics.
func (m *Metrics) EdgeTraffic() *ccv1.EdgeTraffic {
	if m == nil {
		return nil
	}
	return &ccv1.EdgeTraffic{Requests: m.edgeServed.Load(), Errors: m.edgeErrors.Load()}
}

// EdgeConnection counts a client connection of listener opened (+1) or
// closed (-1).
func (m *Metrics) EdgeConnection(listener string, delta float64) {
	if m != nil {
		m.edgeConns.WithLabelValues(listener).Add(delta)
	}
}

// TLSHandshake counts a handshake on the edge's HTTPS listener.
func (m *Metrics) TLSHandshake(ok bool) {
	if m != nil {
		m.tlsHandshakes.WithLabelValues(result(ok)).Inc()
	}
}

// ACMEChallengeAnswered counts an ACME validation the edge answered.
func (m *Metrics) ACMEChallengeAnswered(challengeType string) {
	if m != nil {
		m.acmeChallenges.WithLabelValues(challengeType).Inc()
	}
}
