package edge

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/containercodes/cc/agent/metrics"
)

// connState counts the connections of listener open, and on HTTPS the
// handshakes that failed: a connection that closes before its handshake
// completed.
func (s *Server) connState(listener string) func(net.Conn, http.ConnState) {
	m := s.opts.Metrics
	if m == nil {
		return nil
	}
	return func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			m.EdgeConnection(listener, 1)
		case http.StateHijacked:
			m.EdgeConnection(listener, -1)
		case http.StateClosed:
			m.EdgeConnection(listener, -1)
			if tc, ok := c.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
				m.TLSHandshake(false)
			}
		}
	}
}

// stats reads the edge's state for its gauges: the health of each route's
// upstreams, its certificates, its pending ACME challenges and the
// requests in flight.
func (s *Server) stats() metrics.EdgeStats {
	st := metrics.EdgeStats{
		Upstreams: map[metrics.UpstreamKey]int{}, Certs: map[string]time.Time{},
		Challenges: map[string]int{}, InFlight: s.active.Load(),
	}
	now := time.Now()
	for name, rt := range s.table.Load().routes {
		st.Upstreams[metrics.UpstreamKey{Route: name, Health: "healthy"}] += 0
		st.Upstreams[metrics.UpstreamKey{Route: name, Health: "unhealthy"}] += 0
		for _, h := range rt.states {
			health := "healthy"
			if !h.Usable(now) {
				health = "unhealthy"
			}
			st.Upstreams[metrics.UpstreamKey{Route: name, Health: health}]++
		}
	}
	certs := s.certs.Load()
	for name, e := range certs.byName {
		st.Certs[name] = e.leaf.NotAfter
	}
	st.Challenges[ChallengeHTTP01] = len(certs.http01)
	st.Challenges[ChallengeTLSALPN01] = len(certs.alpn)
	return st
}
