package fsm

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The edge's records: routes (name → cc.v1.Route) and sites (name →
// cc.v1.Site). Which route or site holds a (host, path prefix) pair is found
// by scanning both buckets: there are few, and a scan cannot go stale the
// way an index can.
var (
	bucketRoutes = []byte("routes")
	bucketSites  = []byte("sites")
)

// Edge limits.
const (
	// DefaultSiteKeep is how many versions of a site are kept when a
	// deploy does not say.
	DefaultSiteKeep = 5
	// MaxSiteKeep bounds keep.
	MaxSiteKeep = 100
	// MaxRouteRetries bounds a route's retries.
	MaxRouteRetries = 10
	// MaxUpstreamWeight bounds an upstream's weight.
	MaxUpstreamWeight = 1000
	// MaxRouteHosts bounds the hosts of one route or site.
	MaxRouteHosts = 100
)

var (
	edgeNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

// ValidEdgeName checks the name of a route or a site: 1 to 63 of a-z, 0-9
// and '-', starting with a letter or digit.
func ValidEdgeName(kind, name string) error {
	if !edgeNameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: use 1 to 63 lowercase letters, digits or '-', starting with a letter or digit", ErrInvalid, kind, name)
	}
	return nil
}

// ValidHost checks a host a route or site matches: an exact lowercase DNS
// name ("app.example.com", "localhost") or "*." and one (a wildcard of one
// label).
func ValidHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	bad := func(why string) error {
		return fmt.Errorf("%w: host %q: %s (e.g. app.example.com or *.example.com)", ErrInvalid, h, why)
	}
	switch {
	case h == "":
		return bad("empty")
	case strings.ToLower(h) != h:
		return bad("write it in lowercase")
	case strings.Contains(h, ":"):
		return bad("a host has no port: the edge listens on its own")
	case strings.Contains(name, "*"):
		return bad("a wildcard is only \"*.\" in front of a name")
	case len(name) > 253:
		return bad("longer than 253 characters")
	}
	for _, l := range strings.Split(name, ".") {
		if !dnsLabelRE.MatchString(l) {
			return bad(fmt.Sprintf("label %q is not 1 to 63 of a-z, 0-9 and '-' (not at either end)", l))
		}
	}
	return nil
}

// validPathPrefix checks a path prefix; "" is "/".
func validPathPrefix(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: path %q: start it with '/' (e.g. /api/)", ErrInvalid, p)
	case strings.ContainsAny(p, "?#\\ \t\r\n"):
		return fmt.Errorf("%w: path %q: no query, fragment, backslash or white space", ErrInvalid, p)
	case strings.Contains(p, "//"):
		return fmt.Errorf("%w: path %q: no empty segment (//)", ErrInvalid, p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: path %q: no . or .. segment", ErrInvalid, p)
		}
	}
	return nil
}

func validDuration(what string, d *durationpb.Duration) error {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
		return fmt.Errorf("%w: %s: a positive duration (or 0 for the default)", ErrInvalid, what)
	}
	return nil
}

func validHeaders(what string, m map[string]string) error {
	for k, v := range m {
		if !headerNameRE.MatchString(k) {
			return fmt.Errorf("%w: %s: %q is not a header name", ErrInvalid, what, k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("%w: %s: the value of %s has a line break", ErrInvalid, what, k)
		}
	}
	return nil
}

func validHosts(hosts []string) error {
	if len(hosts) == 0 {
		return fmt.Errorf("%w: give at least one host (e.g. app.example.com)", ErrInvalid)
	}
	if len(hosts) > MaxRouteHosts {
		return fmt.Errorf("%w: at most %d hosts", ErrInvalid, MaxRouteHosts)
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if err := ValidHost(h); err != nil {
			return err
		}
		if seen[h] {
			return fmt.Errorf("%w: host %s given twice", ErrInvalid, h)
		}
		seen[h] = true
	}
	return nil
}

// validMatch checks what a route or site matches and returns its path
// prefix, "/" when it gives none.
func validMatch(hosts []string, prefix string) (string, error) {
	if prefix == "" {
		prefix = "/"
	}
	if err := validHosts(hosts); err != nil {
		return "", err
	}
	return prefix, validPathPrefix(prefix)
}

// NormalizeRouteSpec checks a route's spec and returns it with its
// defaults written in (path "/"); the input is not changed. Errors wrap
// ErrInvalid and say what to write instead.
func NormalizeRouteSpec(in *ccv1.RouteSpec) (*ccv1.RouteSpec, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: a route needs a spec", ErrInvalid)
	}
	s := proto.Clone(in).(*ccv1.RouteSpec)
	var err error
	if s.PathPrefix, err = validMatch(s.Hosts, s.PathPrefix); err != nil {
		return nil, err
	}
	switch {
	case s.Service != "" && len(s.Upstreams) > 0:
		return nil, fmt.Errorf("%w: give a service and port or upstreams, not both", ErrInvalid)
	case s.Service == "" && len(s.Upstreams) == 0:
		return nil, fmt.Errorf("%w: give a service and port (--service web --port 80) or upstream addresses (--upstream 10.0.0.5:8080)", ErrInvalid)
	case s.Service != "" && (s.Port == 0 || s.Port > 65535):
		return nil, fmt.Errorf("%w: service %s: give the container port to send to (1-65535, e.g. --port 80)", ErrInvalid, s.Service)
	case s.Service == "" && s.Port != 0:
		return nil, fmt.Errorf("%w: a port goes with a service; an upstream has its port in its address", ErrInvalid)
	}
	seen := map[string]bool{}
	for _, u := range s.Upstreams {
		host, port, err := net.SplitHostPort(u.GetAddress())
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || host == "" || perr != nil || n == 0 || strings.ContainsAny(host, " /") {
			return nil, fmt.Errorf("%w: upstream %q: use HOST:PORT (e.g. 10.0.0.5:8080 or [::1]:8080)", ErrInvalid, u.GetAddress())
		}
		if seen[u.Address] {
			return nil, fmt.Errorf("%w: upstream %s given twice", ErrInvalid, u.Address)
		}
		seen[u.Address] = true
		if u.Weight > MaxUpstreamWeight {
			return nil, fmt.Errorf("%w: upstream %s: weight %d, at most %d", ErrInvalid, u.Address, u.Weight, MaxUpstreamWeight)
		}
	}
	switch s.LoadBalancing {
	case ccv1.LoadBalancing_LOAD_BALANCING_UNSPECIFIED, ccv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN, ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED,
		ccv1.LoadBalancing_LOAD_BALANCING_LEAST_CONN, ccv1.LoadBalancing_LOAD_BALANCING_IP_HASH, ccv1.LoadBalancing_LOAD_BALANCING_RANDOM_TWO:
		if s.HashHeader != "" {
			return nil, fmt.Errorf("%w: hash_header goes with the hash_header policy (hash_header:NAME)", ErrInvalid)
		}
	case ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER:
		if !headerNameRE.MatchString(s.HashHeader) {
			return nil, fmt.Errorf("%w: the hash_header policy needs the header to hash (e.g. hash_header:X-User)", ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("%w: unknown load balancing policy %d", ErrInvalid, s.LoadBalancing)
	}
	if hc := s.HealthCheck; hc != nil {
		if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
			return nil, fmt.Errorf("%w: health check path %q: start it with '/'", ErrInvalid, hc.Path)
		}
		if err := validDuration("health check interval", hc.Interval); err != nil {
			return nil, err
		}
		if err := validDuration("health check timeout", hc.Timeout); err != nil {
			return nil, err
		}
		if hc.Fails > 100 || hc.Passes > 100 {
			return nil, fmt.Errorf("%w: health check fails and passes: at most 100", ErrInvalid)
		}
	}
	if err := validDuration("timeout", s.Timeout); err != nil {
		return nil, err
	}
	if s.Retries > MaxRouteRetries {
		return nil, fmt.Errorf("%w: retries: at most %d", ErrInvalid, MaxRouteRetries)
	}
	if s.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: max body size: 0 (no limit) or more", ErrInvalid)
	}
	if err := validHeaders("header_up", s.HeaderUp); err != nil {
		return nil, err
	}
	if err := validHeaders("header_down", s.HeaderDown); err != nil {
		return nil, err
	}
	for _, o := range s.CorsOrigins {
		if o == "" || strings.ContainsAny(o, " \t\r\n,") {
			return nil, fmt.Errorf("%w: CORS origin %q: one origin like https://app.example.com, or *", ErrInvalid, o)
		}
	}
	if rl := s.RateLimit; rl != nil {
		if !(rl.PerSecond > 0) || math.IsInf(rl.PerSecond, 0) {
			return nil, fmt.Errorf("%w: rate limit: more than 0 per second (e.g. 100/s)", ErrInvalid)
		}
	}
	if s.Set != "" {
		if err := ValidEdgeName("set", s.Set); err != nil {
			return nil, err
		}
	}
	if s.Tls, err = normalizeTLS(s.Tls, s.Hosts); err != nil {
		return nil, err
	}
	return s, nil
}

// NormalizeSiteSpec checks a site's spec and fills its defaults.
func NormalizeSiteSpec(in *ccv1.SiteSpec) (*ccv1.SiteSpec, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: a site needs a spec", ErrInvalid)
	}
	s := proto.Clone(in).(*ccv1.SiteSpec)
	var err error
	if s.PathPrefix, err = validMatch(s.Hosts, s.PathPrefix); err != nil {
		return nil, err
	}
	if strings.ContainsAny(s.CacheControl, "\r\n\x00") {
		return nil, fmt.Errorf("%w: cache control: one line", ErrInvalid)
	}
	if nf := s.NotFound; nf != "" {
		if strings.HasPrefix(nf, "/") || strings.Contains(nf, "\\") || strings.ContainsRune(nf, 0) {
			return nil, fmt.Errorf("%w: not found page %q: a file of the site, relative to its root (e.g. 404.html)", ErrInvalid, nf)
		}
		for _, seg := range strings.Split(nf, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("%w: not found page %q: a file of the site, relative to its root (e.g. 404.html)", ErrInvalid, nf)
			}
		}
	}
	if s.Tls, err = normalizeTLS(s.Tls, s.Hosts); err != nil {
		return nil, err
	}
	return s, nil
}

// edgeKey is what a route or site holds: a host and a path prefix. An
// exact host and a wildcard are different keys.
type edgeKey struct{ host, path string }

// holders maps every (host, path) pair to the route or site holding it:
// "route web", "site docs".
type holders map[edgeKey]string

func readHolders(tx *bolt.Tx, skip func(kind, name string) bool) (holders, error) {
	h := holders{}
	err := each(tx, bucketRoutes, func() *ccv1.Route { return &ccv1.Route{} }, func(r *ccv1.Route) {
		if skip("route", r.Name) {
			return
		}
		for _, host := range r.GetSpec().GetHosts() {
			h[edgeKey{host, r.GetSpec().GetPathPrefix()}] = "route " + r.Name
		}
	})
	if err != nil {
		return nil, err
	}
	err = each(tx, bucketSites, func() *ccv1.Site { return &ccv1.Site{} }, func(s *ccv1.Site) {
		if skip("site", s.Name) {
			return
		}
		for _, host := range s.GetSpec().GetHosts() {
			h[edgeKey{host, s.GetSpec().GetPathPrefix()}] = "site " + s.Name
		}
	})
	return h, err
}

// claim takes the keys of hosts and path for holder, or names the first
// one another holds.
func (h holders) claim(holder string, hosts []string, path string) error {
	for _, host := range hosts {
		if other, ok := h[edgeKey{host, path}]; ok && other != holder {
			return fmt.Errorf("host %s path %s is held by %s: remove it or change its host or path: %w", host, path, other, ErrExists)
		}
	}
	for _, host := range hosts {
		h[edgeKey{host, path}] = holder
	}
	return nil
}

func applyPutRoute(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.PutRoute)
	r := m.GetRoute()
	if r == nil {
		return fmt.Errorf("%w: no route", ErrInvalid)
	}
	if err := ValidEdgeName("route", r.Name); err != nil {
		return err
	}
	spec, err := NormalizeRouteSpec(r.Spec)
	if err != nil {
		return fmt.Errorf("route %s: %w", r.Name, err)
	}
	b := tx.Bucket(bucketRoutes)
	old := &ccv1.Route{}
	err = get(b, r.Name, old)
	switch {
	case err != nil && err != ErrNotFound:
		return err
	case m.Create && err == nil:
		return fmt.Errorf("route %s %w: update it (ccctl route update %s) or choose another name", r.Name, ErrExists, r.Name)
	case !m.Create && err == ErrNotFound:
		return fmt.Errorf("route %s: %w (create it with ccctl route create)", r.Name, ErrNotFound)
	case !m.Create && m.ExpectVersion != 0 && m.ExpectVersion != old.Version:
		return fmt.Errorf("%w: route %s changed meanwhile (version %d, the update was made from version %d): read it again and retry", ErrConflict, r.Name, old.Version, m.ExpectVersion)
	}
	h, err := readHolders(tx.Tx, func(kind, name string) bool { return kind == "route" && name == r.Name })
	if err != nil {
		return err
	}
	if err := h.claim("route "+r.Name, spec.Hosts, spec.PathPrefix); err != nil {
		return err
	}
	if err := checkTLSCert(tx.Tx, "route "+r.Name, spec.Hosts, spec.Tls); err != nil {
		return err
	}
	rec := &ccv1.Route{Name: r.Name, Spec: spec, Version: 1, CreatedAt: ts(at), UpdatedAt: ts(at)}
	if !m.Create {
		rec.Version, rec.CreatedAt = old.Version+1, old.CreatedAt
	}
	return put(b, rec.Name, rec)
}

func applyRemoveRoute(tx *txn, _ time.Time, msg proto.Message) error {
	name := msg.(*statev1.RemoveRoute).GetName()
	b := tx.Bucket(bucketRoutes)
	if b.Get([]byte(name)) == nil {
		return fmt.Errorf("route %s: %w", name, ErrNotFound)
	}
	return b.Delete([]byte(name))
}

// RoutePlan is what applying a set's routes does: the names created,
// updated, removed and left as they are, each sorted.
type RoutePlan struct {
	Created, Updated, Removed, Unchanged []string

	put []*ccv1.Route
}

// planApplyRoutes checks an ApplyRoutes and works out what it changes,
// without writing.
func planApplyRoutes(tx *bolt.Tx, at time.Time, m *statev1.ApplyRoutes) (*RoutePlan, error) {
	if err := ValidEdgeName("set", m.Set); err != nil {
		return nil, err
	}
	current := map[string]*ccv1.Route{}
	err := each(tx, bucketRoutes, func() *ccv1.Route { return &ccv1.Route{} }, func(r *ccv1.Route) { current[r.Name] = r })
	if err != nil {
		return nil, err
	}
	h, err := readHolders(tx, func(kind, name string) bool {
		return kind == "route" && current[name].GetSpec().GetSet() == m.Set
	})
	if err != nil {
		return nil, err
	}
	plan := &RoutePlan{}
	listed := map[string]bool{}
	for _, r := range m.Routes {
		if err := ValidEdgeName("route", r.GetName()); err != nil {
			return nil, err
		}
		if listed[r.Name] {
			return nil, fmt.Errorf("%w: route %s is listed twice in set %s", ErrInvalid, r.Name, m.Set)
		}
		listed[r.Name] = true
		in := proto.Clone(r.GetSpec()).(*ccv1.RouteSpec)
		if in == nil {
			in = &ccv1.RouteSpec{}
		}
		in.Set = m.Set
		spec, err := NormalizeRouteSpec(in)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		old := current[r.Name]
		if old != nil && old.GetSpec().GetSet() != m.Set {
			by := "by hand"
			if s := old.GetSpec().GetSet(); s != "" {
				by = "by set " + s
			}
			return nil, fmt.Errorf("route %s exists, made %s: remove it or rename this one in set %s: %w", r.Name, by, m.Set, ErrExists)
		}
		if err := h.claim("route "+r.Name, spec.Hosts, spec.PathPrefix); err != nil {
			return nil, fmt.Errorf("route %s of set %s: %w", r.Name, m.Set, err)
		}
		if err := checkTLSCert(tx, "route "+r.Name, spec.Hosts, spec.Tls); err != nil {
			return nil, err
		}
		switch {
		case old == nil:
			plan.Created = append(plan.Created, r.Name)
			plan.put = append(plan.put, &ccv1.Route{Name: r.Name, Spec: spec, Version: 1, CreatedAt: ts(at), UpdatedAt: ts(at)})
		case proto.Equal(old.Spec, spec):
			plan.Unchanged = append(plan.Unchanged, r.Name)
		default:
			plan.Updated = append(plan.Updated, r.Name)
			plan.put = append(plan.put, &ccv1.Route{Name: r.Name, Spec: spec, Version: old.Version + 1, CreatedAt: old.CreatedAt, UpdatedAt: ts(at)})
		}
	}
	for name, r := range current {
		if r.GetSpec().GetSet() == m.Set && !listed[name] {
			plan.Removed = append(plan.Removed, name)
		}
	}
	for _, l := range [][]string{plan.Created, plan.Updated, plan.Removed, plan.Unchanged} {
		sort.Strings(l)
	}
	return plan, nil
}

func applyApplyRoutes(tx *txn, at time.Time, msg proto.Message) error {
	plan, err := planApplyRoutes(tx.Tx, at, msg.(*statev1.ApplyRoutes))
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketRoutes)
	for _, name := range plan.Removed {
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
	}
	for _, r := range plan.put {
		if err := put(b, r.Name, r); err != nil {
			return err
		}
	}
	return nil
}

// PlanApplyRoutes says what an ApplyRoutes of these routes would do now,
// or why it would be refused, without writing.
func (f *FSM) PlanApplyRoutes(set string, routes []*ccv1.Route, at time.Time) (*RoutePlan, error) {
	var plan *RoutePlan
	err := f.View(func(tx *bolt.Tx) error {
		var err error
		plan, err = planApplyRoutes(tx, at, &statev1.ApplyRoutes{Set: set, Routes: routes})
		return err
	})
	return plan, err
}

// ValidDigest checks a blob digest: sha256:<64 lowercase hex digits>.
func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func applyDeploySite(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.DeploySite)
	if err := ValidEdgeName("site", m.Name); err != nil {
		return err
	}
	v := m.GetVersion()
	switch {
	case v == nil || !validDigest(v.BundleDigest):
		return fmt.Errorf("%w: site %s: a deploy needs the bundle's digest (sha256:<hex>)", ErrInvalid, m.Name)
	case v.BundleSize <= 0 || v.ContentBytes < 0:
		return fmt.Errorf("%w: site %s: the bundle's size must be positive", ErrInvalid, m.Name)
	case m.Keep > MaxSiteKeep:
		return fmt.Errorf("%w: site %s: keep at most %d versions", ErrInvalid, m.Name, MaxSiteKeep)
	}
	keep := int(m.Keep)
	if keep == 0 {
		keep = DefaultSiteKeep
	}
	b := tx.Bucket(bucketSites)
	site := &ccv1.Site{}
	err := get(b, m.Name, site)
	switch {
	case err == ErrNotFound && m.Spec == nil:
		return fmt.Errorf("site %s: %w: give its host to create it (ccctl site deploy %s DIR --host HOST)", m.Name, ErrNotFound, m.Name)
	case err == ErrNotFound:
		site = &ccv1.Site{Name: m.Name, CreatedAt: ts(at)}
	case err != nil:
		return err
	}
	if m.Spec != nil {
		spec, err := NormalizeSiteSpec(m.Spec)
		if err != nil {
			return fmt.Errorf("site %s: %w", m.Name, err)
		}
		h, err := readHolders(tx.Tx, func(kind, name string) bool { return kind == "site" && name == m.Name })
		if err != nil {
			return err
		}
		if err := h.claim("site "+m.Name, spec.Hosts, spec.PathPrefix); err != nil {
			return err
		}
		if err := checkTLSCert(tx.Tx, "site "+m.Name, spec.Hosts, spec.Tls); err != nil {
			return err
		}
		site.Spec = spec
	}
	var next uint32 = 1
	for _, old := range site.Versions {
		next = max(next, old.Version+1)
	}
	nv := proto.Clone(v).(*ccv1.SiteVersion)
	nv.Version, nv.DeployedAt = next, ts(at)
	site.Versions = append(site.Versions, nv)
	sort.Slice(site.Versions, func(i, j int) bool { return site.Versions[i].Version < site.Versions[j].Version })
	if n := len(site.Versions); n > keep {
		site.Versions = site.Versions[n-keep:]
	}
	site.Current = next
	site.UpdatedAt = ts(at)
	return put(b, site.Name, site)
}

// keptVersions lists a site's kept version numbers: "1, 2, 3".
func keptVersions(s *ccv1.Site) string {
	var out []string
	for _, v := range s.Versions {
		out = append(out, strconv.FormatUint(uint64(v.Version), 10))
	}
	return strings.Join(out, ", ")
}

func applyRollbackSite(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.RollbackSite)
	b := tx.Bucket(bucketSites)
	site := &ccv1.Site{}
	if err := get(b, m.Name, site); err != nil {
		return fmt.Errorf("site %s: %w", m.Name, err)
	}
	to := m.Version
	if to == 0 {
		for _, v := range site.Versions {
			if v.Version < site.Current {
				to = max(to, v.Version)
			}
		}
		if to == 0 {
			return fmt.Errorf("%w: site %s has no kept version before %d to roll back to (kept: %s)", ErrFailedPrecondition, m.Name, site.Current, keptVersions(site))
		}
	}
	found := false
	for _, v := range site.Versions {
		found = found || v.Version == to
	}
	if !found {
		return fmt.Errorf("site %s version %d: %w (kept: %s)", m.Name, to, ErrNotFound, keptVersions(site))
	}
	site.Current = to
	site.UpdatedAt = ts(at)
	return put(b, site.Name, site)
}

func applyRemoveSite(tx *txn, _ time.Time, msg proto.Message) error {
	name := msg.(*statev1.RemoveSite).GetName()
	b := tx.Bucket(bucketSites)
	if b.Get([]byte(name)) == nil {
		return fmt.Errorf("site %s: %w", name, ErrNotFound)
	}
	return b.Delete([]byte(name))
}

// Route returns one route.
func (f *FSM) Route(name string) (*ccv1.Route, error) {
	return one(f, bucketRoutes, "route", name, &ccv1.Route{})
}

// Routes returns every route, by name.
func (f *FSM) Routes() ([]*ccv1.Route, error) {
	return list(f, bucketRoutes, func() *ccv1.Route { return &ccv1.Route{} })
}

// Site returns one site.
func (f *FSM) Site(name string) (*ccv1.Site, error) {
	return one(f, bucketSites, "site", name, &ccv1.Site{})
}

// Sites returns every site, by name.
func (f *FSM) Sites() ([]*ccv1.Site, error) {
	return list(f, bucketSites, func() *ccv1.Site { return &ccv1.Site{} })
}

// SiteBundleInUse says whether digest is the bundle of a kept version of
// some site (agents may fetch those).
func (f *FSM) SiteBundleInUse(digest string) (bool, error) {
	used := map[string]bool{}
	err := f.View(func(tx *bolt.Tx) error { return siteBlobs(tx, used) })
	return used[digest], err
}

// siteBlobs adds the bundles of every kept site version to used.
func siteBlobs(tx *bolt.Tx, used map[string]bool) error {
	return each(tx, bucketSites, func() *ccv1.Site { return &ccv1.Site{} }, func(s *ccv1.Site) {
		for _, v := range s.Versions {
			if v.BundleDigest != "" {
				used[v.BundleDigest] = true
			}
		}
	})
}
