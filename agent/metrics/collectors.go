package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ContainerKey is a kind of container in a state, as label values.
type ContainerKey struct{ Kind, State string }

// EdgeStats is the edge's state as the edge collector reads it.
type EdgeStats struct {
	// Upstreams counts each route's upstreams by health (healthy: usable
	// now; unhealthy: failing its active checks or ejected).
	Upstreams map[UpstreamKey]int
	// Certs are the certificates the edge holds, by name.
	Certs map[string]time.Time
	// Challenges counts the pending ACME challenges by type.
	Challenges map[string]int
	// InFlight is the requests being served.
	InFlight int64
}

// UpstreamKey is a route and a health, as label values.
type UpstreamKey struct{ Route, Health string }

// SetContainers makes read the source of cc_containers: the node's
// containers by kind and state, as the agent last observed them.
func (m *Metrics) SetContainers(read func() map[ContainerKey]int) {
	if m != nil {
		m.containers.Store(&read)
	}
}

// SetEdge makes read the source of the edge's gauges; nil: none (no edge).
func (m *Metrics) SetEdge(read func() EdgeStats) {
	if m == nil {
		return
	}
	if read == nil {
		m.edge.Store(nil)
		return
	}
	m.edge.Store(&read)
}

type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// containerStates are the states cc_containers always shows, at 0 too.
var containerStates = []string{"preparing", "running", "exited", "failed"}

func (m *Metrics) registerCollectors() {
	var (
		containers = desc("containers", "The node's containers by kind (container, job) and state (preparing, running, exited, failed), as the agent last observed them.", "kind", "state")
		upstreams  = desc("edge_upstreams", "Each route's upstreams by health: healthy (usable now) or unhealthy (failing its active checks, or ejected after failures).", "route", "health")
		expiry     = desc("edge_certificate_expiry_seconds", "Seconds until a certificate the edge serves expires (negative once expired).", "cert")
		pending    = desc("edge_acme_challenges_pending", "ACME challenges the edge is ready to answer, by type.", "type")
		inflight   = desc("edge_requests_in_flight", "Requests the edge is serving now (open WebSockets included).")
	)
	m.reg.MustRegister(&funcCollector{
		descs: []*prometheus.Desc{containers, upstreams, expiry, pending, inflight},
		collect: func(ch chan<- prometheus.Metric) {
			if read := m.containers.Load(); read != nil {
				counts := map[ContainerKey]int{}
				for _, k := range []string{KindContainer, KindJob} {
					for _, s := range containerStates {
						counts[ContainerKey{k, s}] = 0
					}
				}
				for k, v := range (*read)() {
					counts[k] += v
				}
				for k, v := range counts {
					gauge(ch, containers, float64(v), k.Kind, k.State)
				}
			}
			read := m.edge.Load()
			if read == nil {
				return
			}
			st := (*read)()
			for k, v := range st.Upstreams {
				gauge(ch, upstreams, float64(v), k.Route, k.Health)
			}
			now := time.Now()
			for name, notAfter := range st.Certs {
				gauge(ch, expiry, notAfter.Sub(now).Seconds(), name)
			}
			for _, t := range []string{"http-01", "tls-alpn-01"} {
				gauge(ch, pending, float64(st.Challenges[t]), t)
			}
			gauge(ch, inflight, float64(st.InFlight))
		},
	})
}
