package ctl

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fakeEdge is what the fake EdgeService holds and recorded.
type fakeEdge struct {
	route      *ccv1.Route // GetRoute
	routes     []*ccv1.Route
	create     *ccv1.CreateRouteRequest
	update     *ccv1.UpdateRouteRequest
	apply      *ccv1.ApplyRoutesRequest
	deployHdr  *ccv1.DeploySiteHeader
	deployData []byte
	site       *ccv1.Site // GetSite
	rollback   *ccv1.RollbackSiteRequest
}

func (f *fakeAPI) CreateRoute(_ context.Context, r *ccv1.CreateRouteRequest) (*ccv1.CreateRouteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edge.create = r
	return &ccv1.CreateRouteResponse{Route: &ccv1.Route{Name: r.Name, Spec: r.Spec, Version: 1}}, nil
}

func (f *fakeAPI) GetRoute(_ context.Context, r *ccv1.GetRouteRequest) (*ccv1.GetRouteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.edge.route == nil || f.edge.route.Name != r.Name {
		return nil, status.Errorf(codes.NotFound, "route %s: not found", r.Name)
	}
	return &ccv1.GetRouteResponse{Route: f.edge.route}, nil
}

func (f *fakeAPI) UpdateRoute(_ context.Context, r *ccv1.UpdateRouteRequest) (*ccv1.UpdateRouteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edge.update = r
	return &ccv1.UpdateRouteResponse{Route: &ccv1.Route{Name: r.Name, Spec: r.Spec, Version: r.Version + 1}}, nil
}

func (f *fakeAPI) ListRoutes(context.Context, *ccv1.ListRoutesRequest) (*ccv1.ListRoutesResponse, error) {
	return &ccv1.ListRoutesResponse{Routes: f.edge.routes}, nil
}

func (f *fakeAPI) ApplyRoutes(_ context.Context, r *ccv1.ApplyRoutesRequest) (*ccv1.ApplyRoutesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edge.apply = r
	resp := &ccv1.ApplyRoutesResponse{Removed: []string{"old"}}
	for _, x := range r.Routes {
		resp.Created = append(resp.Created, x.Name)
	}
	return resp, nil
}

func (f *fakeAPI) DeploySite(s grpc.ClientStreamingServer[ccv1.DeploySiteRequest, ccv1.DeploySiteResponse]) error {
	var hdr *ccv1.DeploySiteHeader
	var data []byte
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if m.GetHeader() != nil {
			hdr = m.GetHeader()
		}
		data = append(data, m.GetChunk()...)
	}
	f.mu.Lock()
	f.edge.deployHdr, f.edge.deployData = hdr, data
	f.mu.Unlock()
	return s.SendAndClose(&ccv1.DeploySiteResponse{Site: &ccv1.Site{Name: hdr.Name, Spec: hdr.Spec, Current: 2,
		Versions: []*ccv1.SiteVersion{{Version: 1}, {Version: 2, Files: 2, BundleDigest: "sha256:" + strings.Repeat("a", 64)}}}})
}

func (f *fakeAPI) GetSite(_ context.Context, r *ccv1.GetSiteRequest) (*ccv1.GetSiteResponse, error) {
	if f.edge.site == nil {
		return nil, status.Errorf(codes.NotFound, "site %s: not found", r.Name)
	}
	return &ccv1.GetSiteResponse{Site: f.edge.site}, nil
}

func (f *fakeAPI) ListSites(context.Context, *ccv1.ListSitesRequest) (*ccv1.ListSitesResponse, error) {
	return &ccv1.ListSitesResponse{Sites: []*ccv1.Site{{Name: "docs", Current: 3, Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}, PathPrefix: "/"},
		Versions: []*ccv1.SiteVersion{{Version: 2}, {Version: 3}}}}}, nil
}

func (f *fakeAPI) RollbackSite(_ context.Context, r *ccv1.RollbackSiteRequest) (*ccv1.RollbackSiteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.edge.rollback = r
	return &ccv1.RollbackSiteResponse{Site: &ccv1.Site{Name: r.Name, Current: 1}}, nil
}

func TestRouteCreateSendsTheSpec(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "route", "create", "api", "--host", "App.Example.com", "--host", "*.example.com", "--path", "/api/",
		"--upstream", "10.0.0.5:8080=1", "--upstream", "10.0.0.6:8080=2", "--policy", "hash_header:X-User",
		"--health-path", "/health", "--health-interval", "10s", "--strip-prefix", "--timeout", "5s", "--retries", "3",
		"--max-body", "10m", "--header-up", "X-A=1", "--header-down", "Server=", "--cors-origin", "*",
		"--rate-limit", "600/m", "--rate-burst", "20")
	if r.code != 0 || r.stdout != "api\n" {
		t.Fatalf("route create: %+v", r)
	}
	want := &ccv1.RouteSpec{
		Hosts: []string{"app.example.com", "*.example.com"}, PathPrefix: "/api/",
		Upstreams:     []*ccv1.Upstream{{Address: "10.0.0.5:8080", Weight: 1}, {Address: "10.0.0.6:8080", Weight: 2}},
		LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER, HashHeader: "X-User",
		HealthCheck: &ccv1.RouteHealthCheck{Path: "/health", Interval: durationpb.New(10 * time.Second)},
		StripPrefix: true, Timeout: durationpb.New(5 * time.Second), Retries: 3, MaxBodyBytes: 10 << 20,
		HeaderUp: map[string]string{"X-A": "1"}, HeaderDown: map[string]string{"Server": ""},
		CorsOrigins: []string{"*"}, RateLimit: &ccv1.RateLimit{PerSecond: 10, Burst: 20},
	}
	f.locked(func() {
		if !proto.Equal(f.edge.create.GetSpec(), want) {
			t.Errorf("CreateRoute got\n%v\nwant\n%v", f.edge.create.GetSpec(), want)
		}
	})
	for want, args := range map[string][]string{
		"ccctl: route create needs --host":                           {"route", "create", "x", "--service", "web", "--port", "80"},
		"ccctl: route create needs --service SVC --port N, or --ups": {"route", "create", "x", "--host", "x.localhost"},
		`ccctl: --policy "fastest": use round_robin`:                 {"route", "create", "x", "--host", "a", "--upstream", "a:1", "--policy", "fastest"},
		`ccctl: --rate-limit "lots": use a rate like 100/s`:          {"route", "create", "x", "--host", "a", "--upstream", "a:1", "--rate-limit", "lots"},
		`ccctl: --upstream "a:1=x": use ADDR or ADDR=WEIGHT`:         {"route", "create", "x", "--host", "a", "--upstream", "a:1=x"},
	} {
		if r := runCtl(conn, args...); r.code != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%q: %+v; want %q", args, r, want)
		}
	}
}

func TestRouteUpdateChangesOnlyTheFlags(t *testing.T) {
	f := &fakeAPI{}
	f.edge.route = &ccv1.Route{Name: "web", Version: 4, Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, PathPrefix: "/", Service: "web", Port: 80, Set: "edge"}}
	conn := startFake(t, f)
	if r := runCtl(conn, "route", "update", "web", "--retries", "1", "--port", "8080"); r.code != 0 {
		t.Fatalf("route update: %+v", r)
	}
	want := &ccv1.UpdateRouteRequest{Name: "web", Version: 4, Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, PathPrefix: "/", Service: "web", Port: 8080, Retries: 1, Set: "edge"}}
	f.locked(func() {
		if !proto.Equal(f.edge.update, want) {
			t.Errorf("UpdateRoute got %v, want %v", f.edge.update, want)
		}
	})
	if r := runCtl(conn, "route", "update", "nope", "--retries", "1"); r.code != 1 || r.stderr != "ccctl: route nope: not found\n" {
		t.Errorf("update of a missing route: %+v", r)
	}
}

func TestRouteList(t *testing.T) {
	f := &fakeAPI{}
	f.edge.routes = []*ccv1.Route{
		{Name: "api", Version: 2, Spec: &ccv1.RouteSpec{Hosts: []string{"a.localhost"}, PathPrefix: "/api/", Upstreams: []*ccv1.Upstream{{Address: "10.0.0.1:80", Weight: 2}}, LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED, Set: "edge",
			Tls: &ccv1.EdgeTLSOptions{Cert: "auto"}}},
		{Name: "web", Version: 1, Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, PathPrefix: "/", Service: "web", Port: 80}},
	}
	conn := startFake(t, f)
	r := runCtl(conn, "route", "ls")
	want := "NAME  HOSTS          PATH   TARGET          POLICY       TLS   SET   VERSION\n" +
		"api   a.localhost    /api/  10.0.0.1:80=2   weighted     auto  edge  2\n" +
		"web   web.localhost  /      service web:80  round_robin  -     -     1\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("route ls: %+v\nwant\n%s", r, want)
	}
	if r := runCtl(conn, "route", "ls", "-q"); r.stdout != "api\nweb\n" {
		t.Errorf("route ls -q: %+v", r)
	}
}

const seedEdgeFile = `# The seed's example.
[[proxy.upstreams]]
name = "backend"
health_check = { path = "/health", interval = "10s" }

  [[proxy.upstreams.servers]]
  address = "127.0.0.1:9001"
  weight = 1

  [[proxy.upstreams.servers]]
  address = "127.0.0.1:9002"
  weight = 2

[[proxy.routes]]
host = "localhost"
path = "/api/*"
upstream = "backend"
`

func TestEdgeApply(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	file := filepath.Join(t.TempDir(), "edge.toml")
	os.WriteFile(file, []byte(seedEdgeFile), 0o600)
	r := runCtl(conn, "edge", "apply", file, "--dry-run")
	if r.code != 0 || r.stdout != "+ route backend-api\n- route old\nset edge: 1 would be created, 0 would be updated, 1 would be removed, 0 unchanged\n" {
		t.Fatalf("edge apply: %+v", r)
	}
	want := &ccv1.ApplyRoutesRequest{Set: "edge", DryRun: true, Routes: []*ccv1.Route{{Name: "backend-api", Spec: &ccv1.RouteSpec{
		Hosts: []string{"localhost"}, PathPrefix: "/api/",
		Upstreams:     []*ccv1.Upstream{{Address: "127.0.0.1:9001", Weight: 1}, {Address: "127.0.0.1:9002", Weight: 2}},
		LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED,
		HealthCheck:   &ccv1.RouteHealthCheck{Path: "/health", Interval: durationpb.New(10 * time.Second)},
	}}}}
	f.locked(func() {
		if !proto.Equal(f.edge.apply, want) {
			t.Errorf("ApplyRoutes got\n%v\nwant\n%v", f.edge.apply, want)
		}
	})
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(seedEdgeFile, `upstream = "backend"`, `upstream = "nope"`, 1)), 0o600)
	if r := runCtl(conn, "edge", "apply", bad); r.code != 1 || !strings.Contains(r.stderr, "bad.toml line 14: upstream \"nope\" is not defined") {
		t.Errorf("apply of an unknown upstream: %+v", r)
	}
}

func TestEdgeFileErrors(t *testing.T) {
	cases := map[string]string{
		"[[proxy.routes]]\nhost = \"a\"\nupstream = \"x\"\n":                                                       `f.toml line 1: upstream "x" is not defined`,
		"[[proxy.upstreams]]\nname = \"x\"\n":                                                                      "f.toml line 1: upstream x: no servers",
		"[[proxy.upstreams]]\nname = \"x\"\nstrategy = \"best\"\n[[proxy.upstreams.servers]]\naddress = \"a:1\"\n": `f.toml line 1: upstream x: --strategy "best": use round_robin`,
		"[proxy]\nroutes = 3\n":                         "f.toml line 2:",
		"[[proxy.routes]]\nhots = \"a\"\n":              "f.toml line 2: unknown key proxy.routes.hots",
		"[[proxy.routes]]\nhost = \"a\"\nupstream = \n": "f.toml line 3: invalid TOML",
		"[[proxy.upstreams]]\nname = \"x\"\n[[proxy.upstreams.servers]]\naddress = \"a:1\"\n[[proxy.routes]]\nupstream = \"x\"\n":                                  `f.toml line 5: a route needs a host: host = "app.example.com"`,
		"[[proxy.upstreams]]\nname = \"x\"\n[[proxy.upstreams.servers]]\naddress = \"a:1\"\n[[proxy.routes]]\nhost = \"a\"\npath = \"/a/*/b\"\nupstream = \"x\"\n": `f.toml line 5: path = "/a/*/b": '*' only at the end`,
	}
	for in, want := range cases {
		if _, err := parseEdgeFile("f.toml", []byte(in)); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestEdgeExportRoundTrip(t *testing.T) {
	routes, err := parseEdgeFile("edge.toml", []byte(seedEdgeFile+`
[[proxy.upstreams]]
name = "web"
strategy = "hash_header:X-User"
  [[proxy.upstreams.servers]]
  service = "web"
  port = 80

[[proxy.routes]]
name = "site"
hosts = ["web.localhost", "*.web.localhost"]
upstream = "web"
strip_prefix = true
timeout = "5s"
max_body = "1m"
rate_limit = "10/s"
rate_burst = 5
header_up = { X-A = "1" }
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exportEdgeFile(routes)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseEdgeFile("export.toml", out)
	if err != nil {
		t.Fatalf("export does not parse: %v\n%s", err, out)
	}
	if len(again) != len(routes) {
		t.Fatalf("round trip: %v, want %v", again, routes)
	}
	for i := range routes {
		if !proto.Equal(routes[i], again[i]) {
			t.Errorf("round trip:\n%v\nwant\n%v\nfile:\n%s", again[i], routes[i], out)
		}
	}
}

func FuzzEdgeFile(f *testing.F) {
	f.Add([]byte(seedEdgeFile))
	f.Add([]byte("[[proxy.routes]]\nhost = \"a\"\npath = \"/*\"\nupstream = \"x\"\n"))
	f.Add([]byte(tlsEdgeFile))
	f.Fuzz(func(t *testing.T, data []byte) {
		routes, err := parseEdgeFile("f.toml", data)
		if err != nil {
			return
		}
		out, err := exportEdgeFile(routes)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		again, err := parseEdgeFile("f.toml", out)
		if err != nil {
			t.Fatalf("export of %q does not parse: %v\n%s", data, err, out)
		}
		if len(again) != len(routes) {
			t.Fatalf("round trip lost routes")
		}
	})
}

// untar lists the names of a tar.gz, with the content of the files.
func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func TestSiteDeploy(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "css"), 0o755)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	os.WriteFile(filepath.Join(dir, "css", "a.css"), []byte("body{}"), 0o644)
	os.Symlink("index.html", filepath.Join(dir, "home.html"))
	r := runCtl(conn, "site", "deploy", "docs", dir, "--host", "Docs.localhost", "--spa", "--not-found", "404.html")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Deployed site docs version 2: 2 files") {
		t.Fatalf("site deploy: %+v", r)
	}
	f.locked(func() {
		want := &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}, Spa: true, NotFound: "404.html"}}
		if !proto.Equal(f.edge.deployHdr, want) {
			t.Errorf("header %v, want %v", f.edge.deployHdr, want)
		}
		got := untar(t, f.edge.deployData)
		var names []string
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		if strings.Join(names, " ") != "css/ css/a.css home.html index.html" || got["home.html"] != "<h1>hi</h1>" {
			t.Errorf("archive: %v", got)
		}
	})
	// Without flags no spec is sent: the site keeps its settings.
	if r := runCtl(conn, "site", "deploy", "docs", dir, "-q"); r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("site deploy -q: %+v", r)
	}
	f.locked(func() {
		if f.edge.deployHdr.Spec != nil {
			t.Errorf("a deploy without flags sent a spec: %v", f.edge.deployHdr)
		}
	})
	// A link leaving the directory is refused before anything is sent.
	os.Symlink("/etc/passwd", filepath.Join(dir, "passwd"))
	if r := runCtl(conn, "site", "deploy", "docs", dir); r.code != 1 || !strings.Contains(r.stderr, "links outside") {
		t.Errorf("deploy with an escaping link: %+v", r)
	}
}

func TestSiteListAndRollback(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "site", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "docs  docs.localhost  /     -    3        2,3") {
		t.Fatalf("site ls: %+v", r)
	}
	if r := runCtl(conn, "site", "rollback", "docs", "--to", "1"); r.code != 0 || r.stdout != "Site docs now serves version 1\n" {
		t.Fatalf("site rollback: %+v", r)
	}
	f.locked(func() {
		if f.edge.rollback.GetVersion() != 1 {
			t.Errorf("rollback %v", f.edge.rollback)
		}
	})
	if r := runCtl(conn, "site", "rollback", "docs", "--to", "x"); r.code != 1 || !strings.Contains(r.stderr, "--to \"x\"") {
		t.Errorf("rollback --to x: %+v", r)
	}
}

func TestEdgeExport(t *testing.T) {
	f := &fakeAPI{}
	f.edge.routes = []*ccv1.Route{{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"localhost"}, PathPrefix: "/api/",
		Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9001", Weight: 1}, {Address: "127.0.0.1:9002", Weight: 2}}, LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED}}}
	conn := startFake(t, f)
	r := runCtl(conn, "edge", "export")
	if r.code != 0 || !strings.Contains(r.stdout, `path = '/api/*'`) || !strings.Contains(r.stdout, `strategy = 'weighted'`) {
		t.Fatalf("edge export: %+v", r)
	}
	file := filepath.Join(t.TempDir(), "out.toml")
	if r := runCtl(conn, "edge", "export", "-o", file); r.code != 0 || r.stdout != "" {
		t.Fatalf("edge export -o: %+v", r)
	}
	data, _ := os.ReadFile(file)
	routes, err := parseEdgeFile(file, data)
	if err != nil || len(routes) != 1 || !proto.Equal(routes[0], f.edge.routes[0]) {
		t.Fatalf("exported file: %v %v\n%s", routes, err, data)
	}
}
