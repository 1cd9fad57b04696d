package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/testing/wstest"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// startEdge runs an edge on 127.0.0.1:0 until the test ends.
func startEdge(t *testing.T, o Options) *Server {
	t.Helper()
	o.HTTPAddr = "127.0.0.1:0"
	if o.Log == nil {
		o.Log = logging.Test(t)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// upstream is an httptest server that names itself in X-Upstream.
func upstream(t *testing.T, name string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func addr(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func mkRoute(name, host, prefix string, addrs ...string) *ccv1.EdgeRoute {
	r := &ccv1.EdgeRoute{Name: name, Spec: &ccv1.RouteSpec{Hosts: []string{host}, PathPrefix: prefix}, Version: 1}
	for _, a := range addrs {
		w := uint32(1)
		if n, wt, ok := strings.Cut(a, "="); ok {
			a = n
			fmt.Sscan(wt, &w)
		}
		r.Endpoints = append(r.Endpoints, &ccv1.Endpoint{Id: a, Address: a, Weight: w})
	}
	return r
}

var client = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// get sends a request to the edge with host and returns status, body and headers.
func do(t *testing.T, s *Server, method, host, path string, body io.Reader, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr().String()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s%s: read: %v", method, host, path, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func get(t *testing.T, s *Server, host, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	return do(t, s, "GET", host, path, nil, hdr...)
}

func TestRoutingAndSites(t *testing.T) {
	siteHandler := func(dir string, spec *ccv1.SiteSpec) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "site %s %s", dir, r.URL.Path)
		}), nil
	}
	s := startEdge(t, Options{SiteHandler: siteHandler})
	a := upstream(t, "a", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{
		mkRoute("web", "app.test", "/", addr(a)),
		mkRoute("none", "empty.test", "/"),
	}, Sites: []*ccv1.EdgeSite{
		{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"app.test"}, PathPrefix: "/docs/"}, BundleDigest: "sha256:1"},
		{Name: "missing", Spec: &ccv1.SiteSpec{Hosts: []string{"missing.test"}}, BundleDigest: "sha256:2"},
	}, SiteDirs: map[string]string{"sha256:1": "bundle1"}})

	for _, c := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"app.test", "/x", 200, "a /x"},
		{"APP.test:8080", "/docs", 200, "site bundle1 /"},
		{"app.test", "/docs/guide/a.html", 200, "site bundle1 /guide/a.html"},
		{"app.test", "/docsx", 200, "a /docsx"},
		{"app.test", "/docs/../x", 200, "a /x"},
		{"app.test", "/x/..//docs/./a", 200, "site bundle1 /a"},
		{"other.test", "/", 404, "no route or site for this host and path\n"},
		{"missing.test", "/", 503, "site not ready on this node\n"},
		{"empty.test", "/", 503, "no upstream for this route\n"},
	} {
		code, body, hdr := get(t, s, c.host, c.path)
		if code != c.code || body != c.body {
			t.Errorf("%s%s: %d %q, want %d %q", c.host, c.path, code, body, c.code, c.body)
		}
		if code == 503 && hdr.Get("Retry-After") == "" {
			t.Errorf("%s%s: 503 without Retry-After", c.host, c.path)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/": "/", "/a/b": "/a/b", "/a/../b": "/b", "/../../etc/passwd": "/etc/passwd",
		"/a//b/": "/a/b/", "/a/./": "/a/", "": "/", "a": "/a", "/.well-known/x": "/.well-known/x",
	} {
		if got, _ := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalAddressOnThisNode(t *testing.T) {
	s := startEdge(t, Options{NodeID: "n1"})
	local := upstream(t, "local", nil)
	r := &ccv1.EdgeRoute{Name: "web", Spec: &ccv1.RouteSpec{Hosts: []string{"app.test"}}, Endpoints: []*ccv1.Endpoint{
		{Id: "c1", Address: deadAddr(t), LocalAddress: addr(local), NodeId: "n1"},
	}}
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	if code, body, _ := get(t, s, "app.test", "/"); code != 200 || body != "local /" {
		t.Fatalf("%d %q", code, body)
	}
}

func TestPolicyDistribution(t *testing.T) {
	s := startEdge(t, Options{})
	a, b := upstream(t, "a", nil), upstream(t, "b", nil)
	for _, c := range []struct {
		lb     ccv1.LoadBalancing
		header string
		wantA  int
		wantB  int
		approx bool
	}{
		{ccv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN, "", 150, 150, false},
		{ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED, "", 100, 200, false},
		// sequential requests tie on zero in flight: the heavier wins the tie
		{ccv1.LoadBalancing_LOAD_BALANCING_LEAST_CONN, "", 0, 300, false},
		{ccv1.LoadBalancing_LOAD_BALANCING_RANDOM_TWO, "", 150, 150, true},
		{ccv1.LoadBalancing_LOAD_BALANCING_HASH_HEADER, "X-User", 150, 150, true},
	} {
		r := mkRoute("web", "app.test", "/", addr(a)+"=1", addr(b)+"=2")
		r.Spec.LoadBalancing = c.lb
		r.Spec.HashHeader = c.header
		s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
		n := map[string]int{}
		for i := 0; i < 300; i++ {
			_, _, h := get(t, s, "app.test", "/", "X-User", fmt.Sprintf("user-%d", i))
			n[h.Get("X-Upstream")]++
		}
		if c.approx {
			if n["a"] < 90 || n["b"] < 90 || n["a"]+n["b"] != 300 {
				t.Errorf("%v: %v", c.lb, n)
			}
		} else if n["a"] != c.wantA || n["b"] != c.wantB {
			t.Errorf("%v: %v, want a=%d b=%d", c.lb, n, c.wantA, c.wantB)
		}
	}
	// ip_hash: one client, one upstream
	r := mkRoute("web", "app.test", "/", addr(a), addr(b))
	r.Spec.LoadBalancing = ccv1.LoadBalancing_LOAD_BALANCING_IP_HASH
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	n := map[string]int{}
	for i := 0; i < 50; i++ {
		_, _, h := get(t, s, "app.test", "/")
		n[h.Get("X-Upstream")]++
	}
	if len(n) != 1 {
		t.Errorf("ip_hash spread one client: %v", n)
	}
}

// restartable is an upstream that can be killed and started again on the
// same address.
type restartable struct {
	t    *testing.T
	addr string
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

func newRestartable(t *testing.T, name string) *restartable {
	u := &restartable{t: t, name: name}
	u.start("127.0.0.1:0")
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *restartable) start(a string) {
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", a); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		u.t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			u.hits.Add(1)
		}
		w.Header().Set("X-Upstream", u.name)
		io.WriteString(w, u.name)
	}))
	u.srv.Listener.Close()
	u.srv.Listener = ln
	u.srv.Start()
}

func (u *restartable) kill() {
	u.srv.CloseClientConnections()
	u.srv.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stateOf returns the health state of the route's upstream at address.
func stateOf(s *Server, name, address string) (down, usable bool) {
	for _, tg := range s.table.Load().targets {
		if tg.route != nil && tg.route.name == name {
			for i, u := range tg.route.ups {
				if u.Key == address {
					return tg.route.states[i].Down(), tg.route.states[i].Usable(time.Now())
				}
			}
		}
	}
	panic("no such upstream")
}

func checkedRoute(addrs ...string) *ccv1.EdgeRoute {
	r := mkRoute("web", "app.test", "/", addrs...)
	r.Spec.HealthCheck = &ccv1.RouteHealthCheck{Path: "/healthz", Interval: durationpb.New(20 * time.Millisecond), Timeout: durationpb.New(time.Second), Fails: 2, Passes: 2}
	return r
}

func TestActiveHealthTakesOutAndPutsBack(t *testing.T) {
	s := startEdge(t, Options{})
	a, b := newRestartable(t, "a"), newRestartable(t, "b")
	s.Update(Config{Routes: []*ccv1.EdgeRoute{checkedRoute(a.addr, b.addr)}})
	a.kill()
	waitFor(t, "a down by the active check", func() bool { d, _ := stateOf(s, "web", a.addr); return d })
	for i := 0; i < 20; i++ {
		if code, body, _ := get(t, s, "app.test", "/"); code != 200 || body != "b" {
			t.Fatalf("with a down: %d %q", code, body)
		}
	}
	// health survives ten updates with the same endpoints
	for i := 0; i < 10; i++ {
		s.Update(Config{Routes: []*ccv1.EdgeRoute{checkedRoute(a.addr, b.addr)}})
		if d, _ := stateOf(s, "web", a.addr); !d {
			t.Fatalf("update %d reset the health of a", i)
		}
	}
	a.start(a.addr)
	waitFor(t, "a up again", func() bool { d, _ := stateOf(s, "web", a.addr); return !d })
	before := a.hits.Load()
	for i := 0; i < 20; i++ {
		if code, _, _ := get(t, s, "app.test", "/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if a.hits.Load()-before != 10 {
		t.Fatalf("a got %d of 20 after coming back", a.hits.Load()-before)
	}
}

func TestPassiveEjectionAndRetries(t *testing.T) {
	s := startEdge(t, Options{})
	dead := deadAddr(t)
	b := upstream(t, "b", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", dead, addr(b))}})
	// POST is not retried: the first goes to the dead upstream (round robin from 0)
	if code, _, _ := do(t, s, "POST", "app.test", "/", strings.NewReader("x")); code != http.StatusBadGateway {
		t.Fatalf("POST to a dead upstream: %d, want 502", code)
	}
	if code, _, _ := do(t, s, "POST", "app.test", "/", strings.NewReader("x")); code != 200 {
		t.Fatalf("POST to the live upstream: %d", code)
	}
	// GETs are retried on the other upstream
	for i := 0; i < 10; i++ {
		if code, body, _ := get(t, s, "app.test", "/"); code != 200 || body != "b /" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
	}
	if _, usable := stateOf(s, "web", dead); usable {
		t.Fatal("the dead upstream is not ejected after its failures")
	}
	// all dead: 502
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web2", "dead.test", "/", deadAddr(t), deadAddr(t))}})
	if code, _, _ := get(t, s, "dead.test", "/"); code != http.StatusBadGateway {
		t.Fatalf("all dead: %d", code)
	}
}

// resetAddr is an upstream that accepts and resets every connection
// without a byte of answer, as a relay does when its task just died.
func resetAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			buf := make([]byte, 1)
			c.Read(buf) // the request arrives, then the reset
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// A GET whose connection was reset after the request went out is tried on
// another upstream (it is idempotent); a POST is not.
func TestResetAfterWriteRetriedForIdempotent(t *testing.T) {
	s := startEdge(t, Options{})
	b := upstream(t, "b", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", resetAddr(t), addr(b))}})
	if code, _, _ := do(t, s, "POST", "app.test", "/", strings.NewReader("x")); code != http.StatusBadGateway {
		t.Fatalf("POST to a resetting upstream: %d, want 502", code)
	}
	for i := 0; i < 6; i++ {
		if code, body, _ := get(t, s, "app.test", "/"); code != 200 || body != "b /" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	s := startEdge(t, Options{})
	b := upstream(t, "b", nil)
	// round robin starts at the first: three dead ones use up the default
	// two retries, the fourth is never reached
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", deadAddr(t), deadAddr(t), deadAddr(t), addr(b))}})
	if code, _, _ := get(t, s, "app.test", "/"); code != http.StatusBadGateway {
		t.Fatalf("three dead then a live one, two retries: %d, want 502", code)
	}
	r := mkRoute("web", "app.test", "/", deadAddr(t), deadAddr(t), deadAddr(t), addr(b))
	r.Spec.Retries = 3
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	if code, body, _ := get(t, s, "app.test", "/"); code != 200 || body != "b /" {
		t.Fatalf("three retries: %d %q", code, body)
	}
}

func TestTimeout(t *testing.T) {
	s := startEdge(t, Options{})
	release := make(chan struct{})
	slow := upstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	r := mkRoute("web", "app.test", "/", addr(slow))
	r.Spec.Timeout = durationpb.New(100 * time.Millisecond)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	if code, _, _ := get(t, s, "app.test", "/"); code != http.StatusGatewayTimeout {
		t.Fatalf("slow upstream: %d, want 504", code)
	}
}

func TestBodyLimit(t *testing.T) {
	s := startEdge(t, Options{})
	a := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	})
	r := mkRoute("web", "app.test", "/", addr(a))
	r.Spec.MaxBodyBytes = 10
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	if code, body, _ := do(t, s, "POST", "app.test", "/", strings.NewReader("0123456789")); code != 200 || body != "10" {
		t.Fatalf("at the limit: %d %q", code, body)
	}
	if code, _, _ := do(t, s, "POST", "app.test", "/", strings.NewReader(strings.Repeat("x", 100))); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit with a length: %d", code)
	}
	// chunked: no length known in advance
	if code, _, _ := do(t, s, "POST", "app.test", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 100)))); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit, chunked: %d", code)
	}
}

func TestRewriteAndHeaders(t *testing.T) {
	s := startEdge(t, Options{})
	var seen atomic.Pointer[http.Request]
	a := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r)
		w.Header().Set("Server", "leaky/1.0")
		w.Header().Set("X-Request-Id", "upstream-made-this")
		fmt.Fprint(w, r.URL.Path)
	})
	r := mkRoute("api", "app.test", "/api/", addr(a))
	r.Spec.StripPrefix = true
	r.Spec.HeaderUp = map[string]string{"X-Added": "up", "user-agent": ""}
	r.Spec.HeaderDown = map[string]string{"Server": "", "X-Down": "down"}
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})

	for path, want := range map[string]string{"/api/x/y": "/x/y", "/api": "/", "/api/": "/"} {
		if code, body, _ := get(t, s, "app.test", path); code != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", path, code, body, want)
		}
	}
	code, _, hdr := get(t, s, "app.test", "/api/q", "X-Forwarded-For", "203.0.113.7", "Forwarded", "for=203.0.113.7", "X-Request-Id", "req-42", "User-Agent", "curl")
	up := seen.Load()
	if code != 200 {
		t.Fatal(code)
	}
	for k, want := range map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Host":  "app.test",
		"X-Forwarded-Proto": "http",
		"Forwarded":         `for=203.0.113.7, for=127.0.0.1;host="app.test";proto=http`,
		"X-Request-Id":      "req-42",
		"X-Added":           "up",
		"User-Agent":        "",
	} {
		if got := strings.Join(up.Header.Values(k), ", "); got != want {
			t.Errorf("upstream saw %s %q, want %q", k, got, want)
		}
	}
	if up.Host != "app.test" {
		t.Errorf("upstream Host %q", up.Host)
	}
	if hdr.Get("Server") != "" || hdr.Get("X-Down") != "down" || strings.Join(hdr.Values("X-Request-Id"), ",") != "req-42" {
		t.Errorf("response headers %v", hdr)
	}
	// a malformed request id is replaced
	_, _, hdr = get(t, s, "app.test", "/api/q", "X-Request-Id", "bad id\twith spaces")
	if id := hdr.Get("X-Request-Id"); len(id) != 32 || seen.Load().Header.Get("X-Request-Id") != id {
		t.Errorf("generated request id %q, upstream saw %q", id, seen.Load().Header.Get("X-Request-Id"))
	}
}

func TestCORS(t *testing.T) {
	s := startEdge(t, Options{})
	a := upstream(t, "a", nil)
	r := mkRoute("web", "app.test", "/", addr(a))
	r.Spec.CorsOrigins = []string{"https://good.example"}
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	code, _, hdr := do(t, s, "OPTIONS", "app.test", "/x", nil, "Origin", "https://good.example",
		"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-type, x-token")
	if code != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://good.example" ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "PUT") ||
		hdr.Get("Access-Control-Allow-Headers") != "content-type, x-token" || hdr.Get("Access-Control-Max-Age") == "" || hdr.Get("X-Upstream") != "" {
		t.Fatalf("preflight: %d %v", code, hdr)
	}
	if code, _, _ := do(t, s, "OPTIONS", "app.test", "/x", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "PUT"); code != 403 {
		t.Fatalf("preflight from another origin: %d", code)
	}
	_, _, hdr = get(t, s, "app.test", "/", "Origin", "https://good.example")
	if hdr.Get("Access-Control-Allow-Origin") != "https://good.example" || hdr.Get("X-Upstream") != "a" {
		t.Fatalf("simple request: %v", hdr)
	}
	_, _, hdr = get(t, s, "app.test", "/", "Origin", "https://evil.example")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("simple request from another origin: %v", hdr)
	}
}

func TestRateLimit(t *testing.T) {
	s := startEdge(t, Options{})
	a := upstream(t, "a", nil)
	r := mkRoute("web", "app.test", "/", addr(a))
	r.Spec.RateLimit = &ccv1.RateLimit{PerSecond: 0.5, Burst: 2}
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	for i := 0; i < 2; i++ {
		if code, _, _ := get(t, s, "app.test", "/"); code != 200 {
			t.Fatalf("request %d within the burst: %d", i, code)
		}
	}
	// the bucket survives an update of the same limit
	s.Update(Config{Routes: []*ccv1.EdgeRoute{r}})
	code, _, hdr := get(t, s, "app.test", "/")
	if code != http.StatusTooManyRequests || (hdr.Get("Retry-After") != "1" && hdr.Get("Retry-After") != "2") {
		t.Fatalf("over the limit: %d, Retry-After %q", code, hdr.Get("Retry-After"))
	}
}

func TestStreamingIsNotBuffered(t *testing.T) {
	s := startEdge(t, Options{})
	release := make(chan struct{})
	a := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		<-release
		fmt.Fprint(w, "data: end\n\n")
	})
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(a))}})
	req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/events", nil)
	req.Host = "app.test"
	req.Header.Set("Accept-Encoding", "gzip, br")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v (encoding %q)", i, line, err, resp.Header.Get("Content-Encoding"))
		}
		br.ReadString('\n')
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "data: end\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

func TestCompression(t *testing.T) {
	s := startEdge(t, Options{})
	big := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 100)
	a := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "small")
		case "/encoded":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, big) // not really gzip: the edge must not touch it
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, big)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, big)
		}
	})
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(a))}})
	for _, c := range []struct{ path, accept, want string }{
		{"/", "gzip, deflate, br, zstd", "br"},
		{"/", "br;q=0.5, zstd;q=0.9, gzip;q=0.1", "zstd"},
		{"/", "gzip", "gzip"},
		{"/", "", ""},
		{"/small", "br", ""},
		{"/encoded", "br", "gzip"},
		{"/png", "br", ""},
	} {
		_, body, hdr := get(t, s, "app.test", c.path, "Accept-Encoding", c.accept)
		if got := hdr.Get("Content-Encoding"); got != c.want {
			t.Errorf("%s with %q: encoding %q, want %q", c.path, c.accept, got, c.want)
		}
		if c.want == "br" || c.want == "zstd" || (c.want == "gzip" && c.path == "/") {
			if len(body) >= len(big) || hdr.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%s with %q: %d bytes, Vary %q", c.path, c.accept, len(body), hdr.Get("Vary"))
			}
		}
	}
}

func TestH2C(t *testing.T) {
	s := startEdge(t, Options{})
	a := upstream(t, "a", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(a))}})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/h2", nil)
	req.Host = "app.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(b) != "a /h2" {
		t.Fatalf("%s %q", resp.Proto, b)
	}
}

func TestWebSocketSurvivesUpdates(t *testing.T) {
	s := startEdge(t, Options{})
	ws := upstream(t, "ws", wstest.Echo)
	other := upstream(t, "other", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("ws", "app.test", "/", addr(ws))}})

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br, err := wstest.Handshake(conn, "app.test", "/chat")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		// every update changes the route: other endpoints, other policy, other prefix
		r := mkRoute("ws", "app.test", fmt.Sprintf("/v%d/", i), addr(other))
		r.Spec.LoadBalancing = ccv1.LoadBalancing(i % 6)
		s.Update(Config{Routes: []*ccv1.EdgeRoute{r, mkRoute("extra", fmt.Sprintf("x%d.test", i), "/", addr(other))}})
		msg := fmt.Sprintf("message %d after update %d", i, i+1)
		if err := wstest.WriteFrame(conn, wstest.OpText, []byte(msg), []byte{1, 2, 3, 4}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		op, p, err := wstest.ReadFrame(br)
		if err != nil || op != wstest.OpText || string(p) != msg {
			t.Fatalf("echo %d: %x %q %v", i, op, p, err)
		}
	}
	wstest.WriteFrame(conn, wstest.OpClose, nil, []byte{1, 2, 3, 4})
}

func TestShutdownClosesUpgradedConnections(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", Log: logging.Test(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.shutdownTimeout = 200 * time.Millisecond
	ws := upstream(t, "ws", wstest.Echo)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("ws", "app.test", "/", addr(ws))}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br, err := wstest.Handshake(conn, "app.test", "/")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return with a WebSocket open")
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := wstest.ReadFrame(br); err == nil {
		t.Fatal("the upgraded connection is still open after shutdown")
	}
}

func TestNoFailedGETDuringSwap(t *testing.T) {
	s := startEdge(t, Options{})
	slowish := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		io.WriteString(w, "ok")
	}
	oldUp := httptest.NewServer(http.HandlerFunc(slowish))
	defer oldUp.Close()
	var newHits atomic.Int64
	newUp := upstream(t, "new", func(w http.ResponseWriter, r *http.Request) {
		newHits.Add(1)
		slowish(w, r)
	})
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(oldUp))}})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/", nil)
				req.Host = "app.test"
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint(err, resp))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(oldUp), addr(newUp))}}) // new one added
	time.Sleep(100 * time.Millisecond)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(newUp))}}) // old one removed
	oldUp.Close()                                                                             // drained: waits for its requests in flight
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d GETs failed during the swap; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if newHits.Load() == 0 || ok.Load() < 10 {
		t.Fatalf("ok %d, new upstream %d", ok.Load(), newHits.Load())
	}
}

func TestGracefulShutdown(t *testing.T) {
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", Log: logging.Test(t)})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	a := upstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "finished")
	})
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(a))}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/", nil)
		req.Host = "app.test"
		resp, err := client.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	if b := <-got; b != "finished" {
		t.Fatalf("request in flight at shutdown: %q", b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer for a logger written from the server's
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// One JSON line per request, with the request id the client got.
func TestAccessLog(t *testing.T) {
	var out syncBuffer
	s := startEdge(t, Options{AccessLog: slog.New(slog.NewJSONHandler(&out, nil))})
	a := upstream(t, "a", nil)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(a))}})
	code, _, hdr := get(t, s, "app.test", "/x")
	if code != 200 {
		t.Fatalf("GET: %d", code)
	}
	get(t, s, "nothing.test", "/")
	// A line is written once its response went out: wait for both.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(out.String(), "\n") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("access log: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines for 2 requests: %v", len(lines), lines)
	}
	l := lines[0]
	if l["route"] != "web" || l["upstream"] != addr(a) || l["status"] != float64(200) || l["request_id"] != hdr.Get("X-Request-Id") ||
		l["method"] != "GET" || l["host"] != "app.test" || l["path"] != "/x" {
		t.Errorf("line: %v", l)
	}
	if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms: %v", l["duration_ms"])
	}
	if lines[1]["status"] != float64(404) || lines[1]["route"] != "" {
		t.Errorf("unmatched request's line: %v", lines[1])
	}
}
