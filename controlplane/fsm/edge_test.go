package fsm_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func upstreamSpec(host, path string, addrs ...string) *ccv1.RouteSpec {
	s := &ccv1.RouteSpec{Hosts: []string{host}, PathPrefix: path}
	for _, a := range addrs {
		s.Upstreams = append(s.Upstreams, &ccv1.Upstream{Address: a})
	}
	return s
}

func putRoute(name string, spec *ccv1.RouteSpec, create bool) *statev1.PutRoute {
	return &statev1.PutRoute{Route: &ccv1.Route{Name: name, Spec: spec}, Create: create}
}

const (
	putRouteT     = statev1.CommandType_COMMAND_TYPE_PUT_ROUTE
	removeRouteT  = statev1.CommandType_COMMAND_TYPE_REMOVE_ROUTE
	applyRoutesT  = statev1.CommandType_COMMAND_TYPE_APPLY_ROUTES
	deploySiteT   = statev1.CommandType_COMMAND_TYPE_DEPLOY_SITE
	rollbackSiteT = statev1.CommandType_COMMAND_TYPE_ROLLBACK_SITE
	removeSiteT   = statev1.CommandType_COMMAND_TYPE_REMOVE_SITE
)

func TestRouteSpecValidation(t *testing.T) {
	ok := func(mod func(s *ccv1.RouteSpec)) *ccv1.RouteSpec {
		s := upstreamSpec("web.localhost", "/", "10.0.0.1:80")
		mod(s)
		return s
	}
	cases := []struct {
		name string
		spec *ccv1.RouteSpec
		want string // "" is valid
	}{
		{"plain", ok(func(*ccv1.RouteSpec) {}), ""},
		{"service", &ccv1.RouteSpec{Hosts: []string{"a.b"}, Service: "web", Port: 80}, ""},
		{"wildcard", ok(func(s *ccv1.RouteSpec) { s.Hosts = []string{"*.example.com"} }), ""},
		{"upper host", ok(func(s *ccv1.RouteSpec) { s.Hosts = []string{"Web.localhost"} }), "lowercase"},
		{"host port", ok(func(s *ccv1.RouteSpec) { s.Hosts = []string{"web:80"} }), "no port"},
		{"bad wildcard", ok(func(s *ccv1.RouteSpec) { s.Hosts = []string{"a.*.com"} }), "wildcard"},
		{"no host", ok(func(s *ccv1.RouteSpec) { s.Hosts = nil }), "at least one host"},
		{"bad label", ok(func(s *ccv1.RouteSpec) { s.Hosts = []string{"-a.com"} }), "label"},
		{"path", ok(func(s *ccv1.RouteSpec) { s.PathPrefix = "api" }), "start it with '/'"},
		{"dotdot", ok(func(s *ccv1.RouteSpec) { s.PathPrefix = "/a/../b" }), ".."},
		{"both", ok(func(s *ccv1.RouteSpec) { s.Service, s.Port = "web", 80 }), "not both"},
		{"neither", ok(func(s *ccv1.RouteSpec) { s.Upstreams = nil }), "give a service"},
		{"no port", &ccv1.RouteSpec{Hosts: []string{"a.b"}, Service: "web"}, "container port"},
		{"bad upstream", ok(func(s *ccv1.RouteSpec) { s.Upstreams[0].Address = "10.0.0.1" }), "HOST:PORT"},
		{"dup upstream", ok(func(s *ccv1.RouteSpec) { s.Upstreams = append(s.Upstreams, &ccv1.Upstream{Address: "10.0.0.1:80"}) }), "twice"},
		{"weight", ok(func(s *ccv1.RouteSpec) { s.Upstreams[0].Weight = 5000 }), "weight"},
		{"hash header", ok(func(s *ccv1.RouteSpec) { s.LoadBalancing = ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER }), "header to hash"},
		{"hash header ok", ok(func(s *ccv1.RouteSpec) {
			s.LoadBalancing, s.HashHeader = ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER, "X-User"
		}), ""},
		{"negative timeout", ok(func(s *ccv1.RouteSpec) { s.Timeout = durationpb.New(-1) }), "positive duration"},
		{"rate", ok(func(s *ccv1.RouteSpec) { s.RateLimit = &ccv1.RateLimit{} }), "rate limit"},
		{"header", ok(func(s *ccv1.RouteSpec) { s.HeaderUp = map[string]string{"X A": "1"} }), "header name"},
		{"retries", ok(func(s *ccv1.RouteSpec) { s.Retries = 99 }), "retries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fsm.NormalizeRouteSpec(tc.spec)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && out.PathPrefix == "":
				t.Fatalf("no default path: %v", out)
			case tc.want != "" && (err == nil || !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an invalid error saying %q", err, tc.want)
			}
		})
	}
	for _, n := range []string{"", "Web", "a_b", "-a", strings.Repeat("a", 64)} {
		if fsm.ValidEdgeName("route", n) == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

func TestRoutes(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	x.must(putRouteT, putRoute("web", upstreamSpec("web.localhost", "", "10.0.0.1:80"), true))
	r, err := x.f.Route("web")
	if err != nil || r.Version != 1 || r.Spec.PathPrefix != "/" || r.CreatedAt == nil {
		t.Fatalf("created: %v %v", r, err)
	}
	// A second create of the name, and an update of a missing route.
	if err := x.apply(putRouteT, putRoute("web", upstreamSpec("x.localhost", "/", "10.0.0.1:80"), true)); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("create twice: %v", err)
	}
	if err := x.apply(putRouteT, putRoute("nope", upstreamSpec("x.localhost", "/", "10.0.0.1:80"), false)); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	// Conflicts name the holder; a wildcard and another path are other keys.
	err = x.apply(putRouteT, putRoute("web2", upstreamSpec("web.localhost", "/", "10.0.0.2:80"), true))
	if !errors.Is(err, fsm.ErrExists) || !strings.Contains(err.Error(), "host web.localhost path / is held by route web") {
		t.Fatalf("conflict: %v", err)
	}
	x.must(putRouteT, putRoute("wild", upstreamSpec("*.localhost", "/", "10.0.0.2:80"), true))
	x.must(putRouteT, putRoute("api", upstreamSpec("web.localhost", "/api/", "10.0.0.3:80"), true))
	// Updates bump the version; a stale expected version is a conflict.
	up := putRoute("web", upstreamSpec("web.localhost", "/", "10.0.0.9:80"), false)
	up.ExpectVersion = 1
	x.must(putRouteT, up)
	if err := x.apply(putRouteT, up); !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if r, _ := x.f.Route("web"); r.Version != 2 || r.Spec.Upstreams[0].Address != "10.0.0.9:80" {
		t.Fatalf("after update: %v", r)
	}
	// An update may keep its own keys.
	x.must(putRouteT, putRoute("web", upstreamSpec("web.localhost", "/", "10.0.0.9:81"), false))
	x.must(removeRouteT, &statev1.RemoveRoute{Name: "web"})
	if err := x.apply(removeRouteT, &statev1.RemoveRoute{Name: "web"}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	x.must(putRouteT, putRoute("web2", upstreamSpec("web.localhost", "/", "10.0.0.2:80"), true))
	rs, _ := x.f.Routes()
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "api,web2,wild" {
		t.Fatalf("routes: %v", names)
	}
}

func TestApplyRoutes(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	x.must(putRouteT, putRoute("hand", upstreamSpec("hand.localhost", "/", "10.0.0.1:80"), true))
	route := func(name, host, path, addr string) *ccv1.Route {
		return &ccv1.Route{Name: name, Spec: upstreamSpec(host, path, addr)}
	}
	apply := &statev1.ApplyRoutes{Set: "edge", Routes: []*ccv1.Route{
		route("a", "a.localhost", "/", "10.0.0.1:80"),
		route("b", "b.localhost", "/api/", "10.0.0.2:80"),
	}}
	plan, err := x.f.PlanApplyRoutes(apply.Set, apply.Routes, t0)
	if err != nil || strings.Join(plan.Created, ",") != "a,b" || len(plan.Removed)+len(plan.Updated)+len(plan.Unchanged) != 0 {
		t.Fatalf("plan: %+v %v", plan, err)
	}
	x.must(applyRoutesT, apply)
	if r, _ := x.f.Route("a"); r.GetSpec().GetSet() != "edge" || r.Version != 1 {
		t.Fatalf("a: %v", r)
	}
	// Same again: unchanged, versions kept.
	x.must(applyRoutesT, apply)
	if r, _ := x.f.Route("a"); r.Version != 1 {
		t.Fatalf("a re-applied: %v", r)
	}
	// b changes, a goes, c comes.
	next := &statev1.ApplyRoutes{Set: "edge", Routes: []*ccv1.Route{
		route("b", "b.localhost", "/api/", "10.0.0.3:80"),
		route("c", "c.localhost", "/", "10.0.0.4:80"),
	}}
	plan, err = x.f.PlanApplyRoutes(next.Set, next.Routes, t0)
	if err != nil || strings.Join(plan.Created, ",") != "c" || strings.Join(plan.Updated, ",") != "b" || strings.Join(plan.Removed, ",") != "a" {
		t.Fatalf("plan 2: %+v %v", plan, err)
	}
	x.must(applyRoutesT, next)
	if _, err := x.f.Route("a"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("a not removed: %v", err)
	}
	if r, _ := x.f.Route("b"); r.Version != 2 {
		t.Fatalf("b: %v", r)
	}
	// A conflict with a route outside the set refuses the whole apply.
	bad := &statev1.ApplyRoutes{Set: "edge", Routes: []*ccv1.Route{
		route("d", "d.localhost", "/", "10.0.0.5:80"),
		route("e", "hand.localhost", "/", "10.0.0.5:80"),
	}}
	err = x.apply(applyRoutesT, bad)
	if !errors.Is(err, fsm.ErrExists) || !strings.Contains(err.Error(), "held by route hand") {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := x.f.Route("d"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("a refused apply wrote d: %v", err)
	}
	// A route of another owner is not taken over.
	err = x.apply(applyRoutesT, &statev1.ApplyRoutes{Set: "edge", Routes: []*ccv1.Route{route("hand", "z.localhost", "/", "10.0.0.5:80")}})
	if !errors.Is(err, fsm.ErrExists) || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("take over: %v", err)
	}
	// Within the set, keys may move between routes.
	x.must(applyRoutesT, &statev1.ApplyRoutes{Set: "edge", Routes: []*ccv1.Route{route("c2", "c.localhost", "/", "10.0.0.4:80")}})
	// An empty apply empties the set only.
	x.must(applyRoutesT, &statev1.ApplyRoutes{Set: "edge"})
	if rs, _ := x.f.Routes(); len(rs) != 1 || rs[0].Name != "hand" {
		t.Fatalf("after empty apply: %v", rs)
	}
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func deploy(name string, spec *ccv1.SiteSpec, d string, keep uint32) *statev1.DeploySite {
	return &statev1.DeploySite{Name: name, Spec: spec, Keep: keep, Version: &ccv1.SiteVersion{BundleDigest: d, BundleSize: 10, Files: 1, ContentBytes: 5}}
}

func TestSites(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	spec := &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}
	if err := x.apply(deploySiteT, deploy("docs", nil, digest('a'), 0)); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("deploy of a new site without a spec: %v", err)
	}
	if err := x.apply(deploySiteT, deploy("docs", spec, "sha256:x", 0)); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("bad digest: %v", err)
	}
	x.must(deploySiteT, deploy("docs", spec, digest('1'), 3))
	for _, c := range []byte("2345") {
		x.must(deploySiteT, deploy("docs", nil, digest(c), 3))
	}
	s, err := x.f.Site("docs")
	if err != nil || s.Current != 5 || len(s.Versions) != 3 || s.Versions[0].Version != 3 || s.Spec.PathPrefix != "/" {
		t.Fatalf("after 5 deploys keeping 3: %v %v", s, err)
	}
	used, _ := x.f.BlobsInUse()
	if !used[digest('3')] || !used[digest('5')] || used[digest('2')] {
		t.Fatalf("blobs in use: %v", used)
	}
	// Rollback: to the one before, then a named one, an unknown one.
	x.must(rollbackSiteT, &statev1.RollbackSite{Name: "docs"})
	if s, _ := x.f.Site("docs"); s.Current != 4 {
		t.Fatalf("rollback: current %d", s.Current)
	}
	x.must(rollbackSiteT, &statev1.RollbackSite{Name: "docs", Version: 3})
	if err := x.apply(rollbackSiteT, &statev1.RollbackSite{Name: "docs"}); !errors.Is(err, fsm.ErrFailedPrecondition) {
		t.Fatalf("rollback before the oldest: %v", err)
	}
	err = x.apply(rollbackSiteT, &statev1.RollbackSite{Name: "docs", Version: 1})
	if !errors.Is(err, fsm.ErrNotFound) || !strings.Contains(err.Error(), "kept: 3, 4, 5") {
		t.Fatalf("rollback to a dropped version: %v", err)
	}
	// A deploy after a rollback numbers on from the newest.
	x.must(deploySiteT, deploy("docs", nil, digest('6'), 3))
	if s, _ := x.f.Site("docs"); s.Current != 6 || s.Versions[0].Version != 4 {
		t.Fatalf("deploy after rollback: %v", s)
	}
	// Sites and routes share the (host, path) keys.
	err = x.apply(putRouteT, putRoute("r", upstreamSpec("docs.localhost", "/", "10.0.0.1:80"), true))
	if !errors.Is(err, fsm.ErrExists) || !strings.Contains(err.Error(), "held by site docs") {
		t.Fatalf("route on a site's key: %v", err)
	}
	x.must(putRouteT, putRoute("r", upstreamSpec("r.localhost", "/", "10.0.0.1:80"), true))
	err = x.apply(deploySiteT, deploy("other", &ccv1.SiteSpec{Hosts: []string{"r.localhost"}}, digest('7'), 0))
	if !errors.Is(err, fsm.ErrExists) || !strings.Contains(err.Error(), "held by route r") {
		t.Fatalf("site on a route's key: %v", err)
	}
	// A deploy with a spec replaces it.
	x.must(deploySiteT, deploy("docs", &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}, Spa: true}, digest('8'), 0))
	if s, _ := x.f.Site("docs"); !s.Spec.Spa || len(s.Versions) != 4 {
		t.Fatalf("deploy with a new spec: %v", s)
	}
	x.must(removeSiteT, &statev1.RemoveSite{Name: "docs"})
	if err := x.apply(removeSiteT, &statev1.RemoveSite{Name: "docs"}); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if ss, _ := x.f.Sites(); len(ss) != 0 {
		t.Fatalf("sites after remove: %v", ss)
	}
	if err := x.apply(deploySiteT, deploy("x", &ccv1.SiteSpec{Hosts: []string{"x.localhost"}, NotFound: "../etc/passwd"}, digest('9'), 0)); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("not found page outside: %v", err)
	}
}
