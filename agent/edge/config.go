package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/agent/edge/balance"
	"github.com/containercodes/cc/agent/edge/health"
	"github.com/containercodes/cc/agent/edge/match"
	"github.com/containercodes/cc/agent/edge/ratelimit"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Defaults of a route.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 2
)

// table is one immutable configuration: what Lookup finds, by ID.
type table struct {
	match   *match.Table
	targets []target
	routes  map[string]*route // by name
}

type target struct {
	route *route // or
	site  *site
	tls   tlsPolicy
}

// site serves a bundle below its prefix.
type site struct {
	name    string
	version uint32
	handler http.Handler // nil: 503
}

type siteEntry struct {
	spec    *ccv1.SiteSpec
	dir     string
	handler http.Handler
}

type limiterEntry struct {
	perSecond float64
	burst     uint32
	lim       *ratelimit.Limiter
}

// Config is what the edge serves: a node's edge configuration as the
// worker hands it over.
type Config struct {
	// Routes, with each endpoint's address the one to dial from this node.
	Routes []*ccv1.EdgeRoute
	Sites  []*ccv1.EdgeSite
	// SiteDirs maps a bundle digest to the directory it is unpacked in (a
	// site whose bundle has no entry answers 503).
	SiteDirs map[string]string
	// Certs are the certificates with their keys, picked by SNI.
	Certs []*ccv1.EdgeCert
	// Challenges are the pending ACME challenges (HTTP-01, TLS-ALPN-01).
	Challenges []*ccv1.ACMEChallenge
	// TLS are the cluster's HTTPS settings (HTTP/3, default certificate);
	// nil: none.
	TLS *ccv1.EdgeTLSSettings
}

// Update makes cfg what the edge serves. Requests in flight finish on the
// table they started with; health state, in-flight counts and rate-limit
// buckets of unchanged upstreams and routes carry over. Certificates and
// challenges apply to the handshakes that start after it returns (a
// certificate that does not parse is logged by name and left out), and
// HTTP/3 starts or stops as cfg.TLS says.
func (s *Server) Update(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	routes, sites, siteDirs := cfg.Routes, cfg.Sites, cfg.SiteDirs
	t := &table{routes: map[string]*route{}}
	var entries []match.Entry
	var targets []health.Target
	keys := map[string]bool{}
	inflight := map[string]*atomic.Int64{}
	limiters := map[string]*limiterEntry{}

	built := make([]*route, 0, len(routes))
	for _, er := range routes {
		if er == nil || er.GetSpec() == nil {
			continue
		}
		r := s.buildRoute(er, inflight, limiters)
		for _, u := range r.ups {
			k := health.Key{Check: r.checkID, Address: u.Key}
			if !keys[k.Check+"\x00"+k.Address] {
				keys[k.Check+"\x00"+k.Address] = true
				targets = append(targets, health.Target{Key: k, Check: r.check})
			}
		}
		built = append(built, r)
	}
	states := s.health.Sync(targets)
	for _, r := range built {
		r.states = make([]*health.State, len(r.ups))
		for i, u := range r.ups {
			r.states[i] = states[health.Key{Check: r.checkID, Address: u.Key}]
		}
		entries = append(entries, match.Entry{Hosts: r.spec.GetHosts(), Prefix: r.spec.GetPathPrefix(), ID: len(t.targets)})
		t.targets = append(t.targets, target{route: r, tls: newTLSPolicy(r.spec.GetTls())})
		t.routes[r.name] = r
	}

	siteCache := map[string]*siteEntry{}
	for _, es := range sites {
		if es == nil || es.GetSpec() == nil {
			continue
		}
		st := &site{name: es.GetName(), version: es.GetVersion()}
		dir, ok := siteDirs[es.GetBundleDigest()]
		key := es.GetBundleDigest() + "\x00" + es.GetName()
		switch {
		case !ok || dir == "":
			s.log.Warn("edge: site bundle not here yet; the site answers 503", "site", es.GetName(), "bundle", es.GetBundleDigest())
		case s.opts.SiteHandler == nil:
		default:
			if old := s.sites[key]; old != nil && old.dir == dir && proto.Equal(old.spec, es.GetSpec()) {
				st.handler = old.handler
				siteCache[key] = old
				break
			}
			h, err := s.opts.SiteHandler(dir, es.GetSpec())
			if err != nil {
				s.log.Error("edge: site handler; the site answers 503", "site", es.GetName(), "bundle", es.GetBundleDigest(), "err", err)
				break
			}
			st.handler = h
			siteCache[key] = &siteEntry{spec: es.GetSpec(), dir: dir, handler: h}
		}
		entries = append(entries, match.Entry{Hosts: es.GetSpec().GetHosts(), Prefix: es.GetSpec().GetPathPrefix(), ID: len(t.targets)})
		t.targets = append(t.targets, target{site: st, tls: newTLSPolicy(es.GetSpec().GetTls())})
	}
	t.match = match.New(entries)
	retired := s.sites
	s.inflight, s.limiters, s.sites = inflight, limiters, siteCache
	certs, oldCerts := s.buildCerts(cfg)
	s.certs.Store(certs)
	s.table.Store(t)
	for _, e := range oldCerts {
		if e.stop != nil {
			e.stop()
		}
	}
	s.setHTTP3(cfg.TLS.GetHttp3())
	// A site version no longer served releases its directory once the
	// requests that found it in the old table have opened their files
	// (an open file outlives the handler's root).
	for key, old := range retired {
		if c, ok := old.handler.(io.Closer); ok && siteCache[key] != old {
			time.AfterFunc(siteCloseDelay, func() { c.Close() })
		}
	}
}

// siteCloseDelay is how long a retired site handler stays open.
const siteCloseDelay = 10 * time.Second

// buildRoute makes the immutable form of a route.
func (s *Server) buildRoute(er *ccv1.EdgeRoute, inflight map[string]*atomic.Int64, limiters map[string]*limiterEntry) *route {
	spec := er.GetSpec()
	r := &route{
		s:          s,
		name:       er.GetName(),
		spec:       spec,
		prefix:     match.NormalizePrefix(spec.GetPathPrefix()),
		strip:      spec.GetStripPrefix(),
		hashHeader: spec.GetHashHeader(),
		retries:    int(spec.GetRetries()),
		timeout:    spec.GetTimeout().AsDuration(),
		maxBody:    spec.GetMaxBodyBytes(),
		headerUp:   newHeaderRules(spec.GetHeaderUp()),
		headerDown: newHeaderRules(spec.GetHeaderDown()),
		cors:       newCORS(spec.GetCorsOrigins()),
	}
	if r.retries <= 0 {
		r.retries = DefaultRetries
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	seen := map[string]bool{}
	for _, ep := range er.GetEndpoints() {
		addr := ep.GetAddress()
		if ep.GetNodeId() != "" && ep.GetNodeId() == s.opts.NodeID && ep.GetLocalAddress() != "" {
			addr = ep.GetLocalAddress()
		}
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		c := inflight[addr]
		if c == nil {
			if c = s.inflight[addr]; c == nil {
				c = new(atomic.Int64)
			}
			inflight[addr] = c
		}
		r.ups = append(r.ups, balance.Upstream{Key: addr, Weight: int(ep.GetWeight()), InFlight: c})
		// The metrics' upstream label: the node of a task (its addresses
		// change with each restart, its node does not), or a fixed
		// upstream's configured address.
		label := ep.GetNodeId()
		if label == "" {
			label = ep.GetAddress()
		}
		r.upNodes = append(r.upNodes, label)
	}
	r.kind = policyKind(spec.GetLoadBalancing())
	r.policy = balance.New(r.kind, r.ups)
	if hc := spec.GetHealthCheck(); hc.GetPath() != "" {
		r.check = health.Check{
			Path:     hc.GetPath(),
			Host:     checkHost(spec.GetHosts()),
			Interval: hc.GetInterval().AsDuration(),
			Timeout:  hc.GetTimeout().AsDuration(),
			Fails:    int(hc.GetFails()),
			Passes:   int(hc.GetPasses()),
		}
	}
	r.checkID = fmt.Sprintf("%s|%s|%s|%v|%v|%d|%d", r.name, r.check.Path, r.check.Host, r.check.Interval, r.check.Timeout, r.check.Fails, r.check.Passes)
	if rl := spec.GetRateLimit(); rl.GetPerSecond() > 0 {
		le := s.limiters[r.name]
		if le == nil || le.perSecond != rl.GetPerSecond() || le.burst != rl.GetBurst() {
			le = &limiterEntry{perSecond: rl.GetPerSecond(), burst: rl.GetBurst(), lim: ratelimit.New(rl.GetPerSecond(), int(rl.GetBurst()), 0)}
		}
		limiters[r.name] = le
		r.limiter = le.lim
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:        r.rewrite,
		Transport:      r,
		ModifyResponse: r.modifyResponse,
		ErrorHandler:   r.errorHandler,
		ErrorLog:       s.srv.ErrorLog,
		BufferPool:     bufferPool{},
	}
	return r
}

// checkHost is the Host header of a route's health checks: its first
// exact host, as a request would carry it ("" when it has only wildcards).
func checkHost(hosts []string) string {
	for _, h := range hosts {
		if !strings.HasPrefix(h, "*") && h != "" {
			return h
		}
	}
	return ""
}

func policyKind(lb ccv1.LoadBalancing) balance.Kind {
	switch lb {
	case ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED:
		return balance.Weighted
	case ccv1.LoadBalancing_LOAD_BALANCING_LEAST_CONN:
		return balance.LeastConn
	case ccv1.LoadBalancing_LOAD_BALANCING_IP_HASH:
		return balance.IPHash
	case ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER:
		return balance.HashHeader
	case ccv1.LoadBalancing_LOAD_BALANCING_RANDOM_TWO:
		return balance.RandomTwo
	default:
		return balance.RoundRobin
	}
}

// headerRules are header_up or header_down: set these, remove those.
type headerRules struct {
	set    [][2]string
	remove []string
}

func newHeaderRules(m map[string]string) headerRules {
	var h headerRules
	for k, v := range m {
		k = http.CanonicalHeaderKey(strings.TrimSpace(k))
		if k == "" {
			continue
		}
		if v == "" {
			h.remove = append(h.remove, k)
		} else {
			h.set = append(h.set, [2]string{k, v})
		}
	}
	slices.Sort(h.remove)
	slices.SortFunc(h.set, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return h
}

func (h headerRules) apply(hdr http.Header) {
	for _, k := range h.remove {
		hdr.Del(k)
	}
	for _, kv := range h.set {
		hdr.Set(kv[0], kv[1])
	}
}
