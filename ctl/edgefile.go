package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The edge file: the seed's format of upstreams and routes, which
// `ccctl edge apply` turns into the routes of one set and `ccctl edge
// export` writes back.
//
//	[[proxy.upstreams]]
//	name = "backend"
//	strategy = "weighted"
//	health_check = { path = "/health", interval = "10s" }
//	  [[proxy.upstreams.servers]]
//	  address = "127.0.0.1:9001"
//	  weight = 1
//
//	[[proxy.routes]]
//	host = "app.localhost"
//	path = "/api/*"
//	upstream = "backend"
//	tls = "auto"            # or the name of a certificate; left out: HTTP only
//	https_redirect = false  # serve plain HTTP too (default: redirect to HTTPS)
//	hsts = "8760h"          # Strict-Transport-Security max-age
//	hsts_subdomains = true

type edgeFile struct {
	Proxy edgeProxy `toml:"proxy"`
}

type edgeProxy struct {
	Upstreams []fileUpstream `toml:"upstreams,omitempty"`
	Routes    []fileRoute    `toml:"routes,omitempty"`
}

type fileUpstream struct {
	Name        string       `toml:"name"`
	Strategy    string       `toml:"strategy,omitempty"`
	HealthCheck *fileHealth  `toml:"health_check,inline,omitempty"`
	Servers     []fileServer `toml:"servers"`
}

type fileHealth struct {
	Path     string `toml:"path"`
	Interval string `toml:"interval,omitempty"`
	Timeout  string `toml:"timeout,omitempty"`
	Fails    uint32 `toml:"fails,omitempty"`
	Passes   uint32 `toml:"passes,omitempty"`
}

type fileServer struct {
	Address string `toml:"address,omitempty"`
	Weight  uint32 `toml:"weight,omitempty"`
	Service string `toml:"service,omitempty"`
	Port    uint32 `toml:"port,omitempty"`
}

type fileRoute struct {
	Name        string            `toml:"name,omitempty"`
	Host        string            `toml:"host,omitempty"`
	Hosts       []string          `toml:"hosts,omitempty"`
	Path        string            `toml:"path,omitempty"`
	Upstream    string            `toml:"upstream"`
	StripPrefix bool              `toml:"strip_prefix,omitempty"`
	Timeout     string            `toml:"timeout,omitempty"`
	Retries     uint32            `toml:"retries,omitempty"`
	MaxBody     string            `toml:"max_body,omitempty"`
	HeaderUp    map[string]string `toml:"header_up,omitempty"`
	HeaderDown  map[string]string `toml:"header_down,omitempty"`
	CorsOrigins []string          `toml:"cors_origins,omitempty"`
	RateLimit   string            `toml:"rate_limit,omitempty"`
	RateBurst   uint32            `toml:"rate_burst,omitempty"`
	// The HTTPS options: see fileTLS.
	TLS            string `toml:"tls,omitempty"`
	HTTPSRedirect  *bool  `toml:"https_redirect,omitempty"`
	HSTS           string `toml:"hsts,omitempty"`
	HSTSSubdomains bool   `toml:"hsts_subdomains,omitempty"`
}

// tableLines finds the line of each [[header]] of the file, in order, so
// that a problem of the n-th route names its line.
func tableLines(data []byte, header string) []int {
	re := regexp.MustCompile(`^\s*\[\[\s*` + regexp.QuoteMeta(header) + `\s*\]\]`)
	var out []int
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			out = append(out, i+1)
		}
	}
	return out
}

// fileErr prefixes a problem with the file and line (when known).
func fileErr(name string, lines []int, i int, format string, args ...any) error {
	where := name
	if i >= 0 && i < len(lines) {
		where = fmt.Sprintf("%s line %d", name, lines[i])
	}
	return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
}

// parseEdgeFile reads an edge file into the routes it describes, sorted by
// name. Errors name the file, the line and what to write instead.
func parseEdgeFile(name string, data []byte) ([]*ccv1.Route, error) {
	var f edgeFile
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&f)
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case err == nil:
	case errors.As(err, &strict) && len(strict.Errors) > 0:
		e := &strict.Errors[0]
		line, _ := e.Position()
		key := strings.Join(e.Key(), ".")
		return nil, fmt.Errorf("%s line %d: unknown key %s: [[proxy.upstreams]] takes name, strategy, health_check and [[proxy.upstreams.servers]] (address and weight, or service and port); [[proxy.routes]] takes name, host (or hosts), path, upstream, strip_prefix, timeout, retries, max_body, header_up, header_down, cors_origins, rate_limit, rate_burst, tls, https_redirect, hsts, hsts_subdomains", name, line, key)
	case errors.As(err, &de):
		line, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if key != "" {
			return nil, fmt.Errorf("%s line %d: %s: %s (strings go in quotes, numbers without)", name, line, key, msg)
		}
		return nil, fmt.Errorf("%s line %d: invalid TOML: %s", name, line, msg)
	default:
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	upLines := tableLines(data, "proxy.upstreams")
	routeLines := tableLines(data, "proxy.routes")
	if len(upLines) != len(f.Proxy.Upstreams) {
		upLines = nil
	}
	if len(routeLines) != len(f.Proxy.Routes) {
		routeLines = nil
	}

	ups := map[string]*ccv1.RouteSpec{}
	for i, u := range f.Proxy.Upstreams {
		bad := func(format string, args ...any) error { return fileErr(name, upLines, i, format, args...) }
		if u.Name == "" {
			return nil, bad(`an upstream needs a name: name = "backend"`)
		}
		if ups[u.Name] != nil {
			return nil, bad("upstream %s is defined twice; rename one", u.Name)
		}
		spec, err := fileUpstreamSpec(u)
		if err != nil {
			return nil, bad("upstream %s: %v", u.Name, err)
		}
		ups[u.Name] = spec
	}

	var routes []*ccv1.Route
	names := map[string]bool{}
	for i, r := range f.Proxy.Routes {
		bad := func(format string, args ...any) error { return fileErr(name, routeLines, i, format, args...) }
		up := ups[r.Upstream]
		switch {
		case r.Upstream == "":
			return nil, bad(`a route needs an upstream: upstream = "NAME" of a [[proxy.upstreams]]`)
		case up == nil:
			return nil, bad("upstream %q is not defined: add a [[proxy.upstreams]] with name = %q", r.Upstream, r.Upstream)
		}
		hosts := r.Hosts
		if r.Host != "" {
			hosts = append([]string{r.Host}, hosts...)
		}
		if len(hosts) == 0 {
			return nil, bad(`a route needs a host: host = "app.example.com" (or *.example.com)`)
		}
		path, err := filePath(r.Path)
		if err != nil {
			return nil, bad("%v", err)
		}
		spec := cloneRouteSpec(up)
		spec.Hosts = lowerHosts(hosts)
		spec.PathPrefix = path
		spec.StripPrefix = r.StripPrefix
		spec.Retries = r.Retries
		spec.HeaderUp, spec.HeaderDown, spec.CorsOrigins = r.HeaderUp, r.HeaderDown, r.CorsOrigins
		if r.Timeout != "" {
			d, err := parseDuration("timeout", r.Timeout, true)
			if err != nil {
				return nil, bad(`timeout = %q: use a duration like "30s"`, r.Timeout)
			}
			spec.Timeout = durationpb.New(d)
		}
		if r.MaxBody != "" {
			n, err := parseSize("max_body", r.MaxBody)
			if err != nil {
				return nil, bad(`max_body = %q: use a size like "10m"`, r.MaxBody)
			}
			spec.MaxBodyBytes = n
		}
		if r.RateLimit != "" || r.RateBurst != 0 {
			rl, err := parseRate(r.RateLimit, r.RateBurst)
			if err != nil {
				return nil, bad(`rate_limit = %q: use a rate like "100/s" (and rate_burst = 200)`, r.RateLimit)
			}
			spec.RateLimit = rl
		}
		if spec.Tls, err = fileTLS(r); err != nil {
			return nil, bad("%v", err)
		}
		n := r.Name
		if n == "" {
			n = deriveRouteName(r.Upstream, path, names)
		}
		if names[n] {
			return nil, bad("route %s is defined twice; give one another name = \"...\"", n)
		}
		names[n] = true
		routes = append(routes, &ccv1.Route{Name: n, Spec: spec})
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Name < routes[j].Name })
	return routes, nil
}

func cloneRouteSpec(s *ccv1.RouteSpec) *ccv1.RouteSpec {
	out := &ccv1.RouteSpec{Service: s.Service, Port: s.Port, LoadBalancing: s.LoadBalancing, HashHeader: s.HashHeader, HealthCheck: s.HealthCheck}
	for _, u := range s.Upstreams {
		out.Upstreams = append(out.Upstreams, &ccv1.Upstream{Address: u.Address, Weight: u.Weight})
	}
	return out
}

// fileTLS reads the HTTPS options of a route: tls = "auto", "CERT" or
// "off" (the default), https_redirect = false, hsts = "8760h" and
// hsts_subdomains = true. HTTP only is nil.
func fileTLS(r fileRoute) (*ccv1.EdgeTLSOptions, error) {
	cert := ""
	if r.TLS != "" {
		var err error
		if cert, err = parseTLSCert("tls =", r.TLS); err != nil {
			return nil, err
		}
	}
	var hsts uint32
	if r.HSTS != "" {
		var err error
		if hsts, err = parseHSTS("hsts =", r.HSTS); err != nil {
			return nil, err
		}
	}
	if cert == "" {
		for _, k := range []struct {
			key   string
			given bool
		}{{"https_redirect", r.HTTPSRedirect != nil}, {"hsts", hsts > 0}, {"hsts_subdomains", r.HSTSSubdomains}} {
			if k.given {
				return nil, fmt.Errorf(`%s goes with HTTPS: add tls = "auto" (or the name of a certificate), or remove it`, k.key)
			}
		}
		return nil, nil
	}
	if r.HSTSSubdomains && hsts == 0 {
		return nil, errors.New(`hsts_subdomains goes with hsts: add hsts = "8760h"`)
	}
	return &ccv1.EdgeTLSOptions{Cert: cert, NoRedirect: r.HTTPSRedirect != nil && !*r.HTTPSRedirect,
		HstsMaxAgeSeconds: hsts, HstsIncludeSubdomains: r.HSTSSubdomains}, nil
}

// fileUpstreamSpec is the part of a route an upstream gives: where to,
// how to choose and how to check.
func fileUpstreamSpec(u fileUpstream) (*ccv1.RouteSpec, error) {
	spec := &ccv1.RouteSpec{}
	if len(u.Servers) == 0 {
		return nil, errors.New("no servers: add [[proxy.upstreams.servers]] with address = \"HOST:PORT\" (or service = \"web\" and port = 80)")
	}
	weighted := false
	for _, s := range u.Servers {
		switch {
		case s.Service != "" && s.Address != "":
			return nil, errors.New("a server has an address or a service and port, not both")
		case s.Service != "":
			if len(u.Servers) > 1 {
				return nil, errors.New("a service server is the upstream's only server (the service's tasks are its servers)")
			}
			if s.Port == 0 {
				return nil, fmt.Errorf("service %s: give the container port: port = 80", s.Service)
			}
			spec.Service, spec.Port = s.Service, s.Port
		case s.Address == "":
			return nil, errors.New(`a server needs address = "HOST:PORT" (or service = "web" and port = 80)`)
		case s.Port != 0:
			return nil, fmt.Errorf("server %s: the port goes in the address; remove port", s.Address)
		default:
			spec.Upstreams = append(spec.Upstreams, &ccv1.Upstream{Address: s.Address, Weight: s.Weight})
			weighted = weighted || s.Weight > 1
		}
	}
	lb, header, err := parsePolicy("strategy", u.Strategy)
	if err != nil {
		return nil, err
	}
	if u.Strategy == "" && weighted {
		lb = ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED
	}
	spec.LoadBalancing, spec.HashHeader = lb, header
	if h := u.HealthCheck; h != nil {
		hc := &ccv1.RouteHealthCheck{Path: h.Path, Fails: h.Fails, Passes: h.Passes}
		if h.Path == "" {
			return nil, errors.New(`health_check needs a path: health_check = { path = "/health", interval = "10s" }`)
		}
		for _, d := range []struct {
			key, v string
			to     **durationpb.Duration
		}{{"interval", h.Interval, &hc.Interval}, {"timeout", h.Timeout, &hc.Timeout}} {
			if d.v == "" {
				continue
			}
			dur, err := parseDuration(d.key, d.v, true)
			if err != nil {
				return nil, fmt.Errorf(`health_check %s = %q: use a duration like "10s"`, d.key, d.v)
			}
			*d.to = durationpb.New(dur)
		}
		spec.HealthCheck = hc
	}
	return spec, nil
}

// filePath reads a route's path: "/api/*" is the prefix /api/, "/" or ""
// is everything.
func filePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	prefix := strings.TrimSuffix(p, "*")
	switch {
	case !strings.HasPrefix(prefix, "/"):
		return "", fmt.Errorf(`path = %q: start it with '/' (e.g. path = "/api/*")`, p)
	case strings.Contains(prefix, "*"):
		return "", fmt.Errorf(`path = %q: '*' only at the end, as in path = "/api/*"`, p)
	case prefix == "":
		return "/", nil
	}
	return prefix, nil
}

var nameJunk = regexp.MustCompile(`[^a-z0-9]+`)

// deriveRouteName names a route without one after its upstream and path:
// "backend-api"; a name taken gets -2, -3 ….
func deriveRouteName(upstream, path string, taken map[string]bool) string {
	base := strings.Trim(nameJunk.ReplaceAllString(strings.ToLower(upstream+"-"+path), "-"), "-")
	if base == "" {
		base = "route"
	}
	if len(base) > 58 {
		base = strings.Trim(base[:58], "-")
	}
	n := base
	for i := 2; taken[n]; i++ {
		n = fmt.Sprintf("%s-%d", base, i)
	}
	return n
}

// setName is the set a file's routes belong to: its base name without
// the extension, lowercase, other characters as '-'.
func setName(file string) (string, error) {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	s := strings.Trim(nameJunk.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if s == "" || len(s) > 63 {
		return "", fmt.Errorf("%s: cannot name a set after this file; give one with --set NAME", file)
	}
	return s, nil
}

// exportEdgeFile writes routes in the edge file format: an upstream per
// route, named after it.
func exportEdgeFile(routes []*ccv1.Route) ([]byte, error) {
	var f edgeFile
	for _, r := range routes {
		s := r.GetSpec()
		u := fileUpstream{Name: r.Name, Strategy: formatPolicy(s.LoadBalancing, s.HashHeader)}
		if s.Service != "" {
			u.Servers = []fileServer{{Service: s.Service, Port: s.Port}}
		}
		for _, up := range s.Upstreams {
			u.Servers = append(u.Servers, fileServer{Address: up.Address, Weight: up.Weight})
		}
		if hc := s.HealthCheck; hc != nil && hc.Path != "" {
			u.HealthCheck = &fileHealth{Path: hc.Path, Fails: hc.Fails, Passes: hc.Passes}
			if hc.Interval != nil {
				u.HealthCheck.Interval = hc.Interval.AsDuration().String()
			}
			if hc.Timeout != nil {
				u.HealthCheck.Timeout = hc.Timeout.AsDuration().String()
			}
		}
		fr := fileRoute{Name: r.Name, Upstream: r.Name, StripPrefix: s.StripPrefix, Retries: s.Retries,
			HeaderUp: s.HeaderUp, HeaderDown: s.HeaderDown, CorsOrigins: s.CorsOrigins}
		if len(s.Hosts) == 1 {
			fr.Host = s.Hosts[0]
		} else {
			fr.Hosts = s.Hosts
		}
		fr.Path = s.PathPrefix
		if strings.HasSuffix(fr.Path, "/") && fr.Path != "/" {
			fr.Path += "*"
		}
		if s.Timeout != nil {
			fr.Timeout = s.Timeout.AsDuration().String()
		}
		if s.MaxBodyBytes > 0 {
			fr.MaxBody = fmt.Sprint(s.MaxBodyBytes)
		}
		if rl := s.RateLimit; rl != nil {
			fr.RateLimit, fr.RateBurst = formatRate(rl.PerSecond), rl.Burst
		}
		if t := s.GetTls(); t.GetCert() != "" && t.GetCert() != "off" {
			fr.TLS, fr.HSTSSubdomains = t.Cert, t.HstsIncludeSubdomains
			if t.NoRedirect {
				fr.HTTPSRedirect = new(bool)
			}
			if t.HstsMaxAgeSeconds > 0 {
				fr.HSTS = formatHSTS(t.HstsMaxAgeSeconds)
			}
		}
		f.Proxy.Upstreams = append(f.Proxy.Upstreams, u)
		f.Proxy.Routes = append(f.Proxy.Routes, fr)
	}
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parsePolicy reads a load balancing policy: round_robin, weighted,
// least_conn, ip_hash, hash_header:NAME or random_two ('-' for '_' too).
func parsePolicy(flag, s string) (ccv1.LoadBalancing, string, error) {
	v := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	if name, ok := strings.CutPrefix(v, "hash_header:"); ok {
		name = strings.TrimSpace(s[strings.IndexByte(s, ':')+1:])
		if name == "" {
			return 0, "", fmt.Errorf("--%s %q: name the header, as in hash_header:X-User", flag, s)
		}
		return ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER, name, nil
	}
	switch v {
	case "":
		return ccv1.LoadBalancing_LOAD_BALANCING_UNSPECIFIED, "", nil
	case "round_robin":
		return ccv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN, "", nil
	case "weighted", "weighted_round_robin":
		return ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED, "", nil
	case "least_conn":
		return ccv1.LoadBalancing_LOAD_BALANCING_LEAST_CONN, "", nil
	case "ip_hash":
		return ccv1.LoadBalancing_LOAD_BALANCING_IP_HASH, "", nil
	case "random_two":
		return ccv1.LoadBalancing_LOAD_BALANCING_RANDOM_TWO, "", nil
	}
	return 0, "", fmt.Errorf("--%s %q: use round_robin, weighted, least_conn, ip_hash, hash_header:NAME or random_two", flag, s)
}

// formatPolicy is parsePolicy's inverse ("" for the default).
func formatPolicy(lb ccv1.LoadBalancing, header string) string {
	switch lb {
	case ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER:
		return "hash_header:" + header
	case ccv1.LoadBalancing_LOAD_BALANCING_UNSPECIFIED:
		return ""
	}
	return enumWord(lb.String(), "LOAD_BALANCING_")
}

// parseRate reads a rate limit: "100/s", "6000/m", "10/h" or a number per
// second; burst 0 is the server's default.
func parseRate(s string, burst uint32) (*ccv1.RateLimit, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	per := map[string]float64{"": 1, "s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[strings.ToLower(unit)]
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || per == 0 || !(n > 0) || n > 1e9 {
		return nil, fmt.Errorf("--rate-limit %q: use a rate like 100/s, 600/m or 10/h", s)
	}
	return &ccv1.RateLimit{PerSecond: n / per, Burst: burst}, nil
}

func formatRate(perSecond float64) string {
	return fmt.Sprintf("%g/s", perSecond)
}

// lowerHosts writes hosts in lowercase, as the edge matches them.
func lowerHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, strings.ToLower(strings.TrimSpace(h)))
	}
	return out
}

// durationString prints a duration of a spec for tables ("-" when unset).
func durationString(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().Round(time.Millisecond).String()
}
