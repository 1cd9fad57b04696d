package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	"github.com/containercodes/cc/internal/testing/wstest"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// edgeClient sends requests to an agent's edge, with keep-alives and no
// proxy from the environment; it does not follow redirects (a TLS route
// answers plain HTTP with 308).
var edgeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// edgeResp is what one request through the edge got.
type edgeResp struct {
	status int
	body   string
	header http.Header
	err    error
}

// edgeDo sends method path with Host host to the edge at addr.
func edgeDo(addr, method, host, path string, hdr map[string]string) edgeResp {
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return edgeResp{err: err}
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := edgeClient.Do(req)
	if err != nil {
		return edgeResp{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return edgeResp{status: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header, err: err}
}

func edgeGet(addr, host, path string) edgeResp { return edgeDo(addr, http.MethodGet, host, path, nil) }

// waitEdge polls GET host path on the edge at addr until cond holds.
func waitEdge(t *testing.T, addr, host, path, what string, cond func(edgeResp) bool) edgeResp {
	t.Helper()
	var last edgeResp
	if !waitFor(60*time.Second, func() bool {
		last = edgeGet(addr, host, path)
		return last.err == nil && cond(last)
	}) {
		t.Fatalf("edge %s, GET %s%s: %s never happened; last: status %d body %q err %v", addr, host, path, what, last.status, last.body, last.err)
	}
	return last
}

// namedUpstream is an HTTP server on 127.0.0.1 that answers every path with
// its name (and 200 on /health).
func namedUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(nameHandler(name))
	t.Cleanup(s.Close)
	return s
}

func nameHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, name)
	})
}

func hostPort(s *httptest.Server) string { return s.Listener.Addr().String() }

func edgeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// countBodies sends n requests and counts the answers by body; any status
// but 200 or error fails the test.
func countBodies(t *testing.T, addr, method, host, path string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		r := edgeDo(addr, method, host, path, nil)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s %s%s #%d: status %d body %q err %v", method, host, path, i, r.status, r.body, r.err)
		}
		got[r.body]++
	}
	return got
}

// TestEdgeServiceRoutes: a route to a service with a replica on each of two
// agents whose advertise addresses differ. Through either agent's edge the
// requests go to both replicas in turn, the remote one through its node's
// relay; and a rolling update of the service shows no error to clients.
func TestEdgeServiceRoutes(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	a := srv.StartAgent("edge-a", testcluster.WithAdvertiseAddr("127.0.0.2"), testcluster.WithEdgeHTTPAddr("127.0.0.2:0"))
	b := srv.StartAgent("edge-b", testcluster.WithAdvertiseAddr("127.0.0.3"), testcluster.WithEdgeHTTPAddr("127.0.0.3:0"))
	loadDemoImage(t, cl)

	spec := &ccv1.ServiceSpec{
		Replicas: 2,
		Task: &ccv1.ContainerSpec{Image: demoImage, StopGracePeriod: durationpb.New(2 * time.Second),
			Env: []string{"GEN=1"},
			Command: []string{"/bin/busybox", "sh", "-c",
				"mkdir -p /www && cat /proc/sys/kernel/random/uuid > /www/index.html && exec /bin/busybox httpd -f -p 80 -h /www"}},
		Update: &ccv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Second)},
	}
	createService(t, cl, "web", spec)
	waitTasks(t, cl, "web", "a running task on each node", func(ts []*ccv1.Container) bool {
		per, ok := runningOn(ts)
		return ok && len(ts) == 2 && per[a.ID.NodeID] == 1 && per[b.ID.NodeID] == 1
	})
	if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "web",
		Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, Service: "web", Port: 80}}); err != nil {
		t.Fatalf("create route: %v", err)
	}

	// bothReplicas waits until the edge at addr answers from two tasks in
	// turn, and returns the two answers.
	bothReplicas := func(t *testing.T, agent *testcluster.Agent) map[string]bool {
		t.Helper()
		var seen map[string]bool
		if !waitFor(60*time.Second, func() bool {
			seen = map[string]bool{}
			for i := 0; i < 4; i++ {
				r := edgeGet(agent.EdgeAddr, "web.localhost", "/")
				if r.err != nil || r.status != http.StatusOK {
					return false
				}
				seen[r.body] = true
			}
			return len(seen) == 2
		}) {
			t.Fatalf("edge of %s never answered from both replicas: %v", agent.Name, seen)
		}
		// Round robin: every answer differs from the one before.
		prev := ""
		for i := 0; i < 12; i++ {
			r := edgeGet(agent.EdgeAddr, "web.localhost", "/")
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("edge of %s, GET #%d: status %d err %v", agent.Name, i, r.status, r.err)
			}
			if !seen[r.body] {
				t.Fatalf("edge of %s answered from a third task %q (known %v)", agent.Name, r.body, seen)
			}
			if r.body == prev {
				t.Errorf("edge of %s: GET #%d answered by %q again; want both replicas in turn", agent.Name, i, r.body)
			}
			prev = r.body
		}
		return seen
	}

	t.Run("both replicas through each node's edge", func(t *testing.T) {
		// The cluster reaches each task through its node's relay, on the
		// node's advertise address.
		var eps []*ccv1.Endpoint
		if !waitFor(60*time.Second, func() bool {
			r, err := cl.Edge.GetRoute(edgeCtx(t), &ccv1.GetRouteRequest{Name: "web"})
			if err != nil || len(r.Route.Endpoints) != 2 {
				return false
			}
			eps = r.Route.Endpoints
			for _, ep := range eps {
				node := map[string]*testcluster.Agent{a.ID.NodeID: a, b.ID.NodeID: b}[ep.NodeId]
				if node == nil || !strings.HasPrefix(ep.Address, node.Address()+":") {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("the route's endpoints are not the tasks' relays on their nodes' addresses: %v", eps)
		}
		fromA := bothReplicas(t, a)
		fromB := bothReplicas(t, b)
		t.Logf("answers through %s: %v, through %s: %v", a.Name, fromA, b.Name, fromB)
		for body := range fromA {
			if !fromB[body] {
				t.Errorf("edge of %s reached task %q, edge of %s did not (%v)", a.Name, body, b.Name, fromB)
			}
		}
	})

	t.Run("a killed task is taken out and put back", func(t *testing.T) {
		before := bothReplicas(t, a)
		ts := serviceTasks(t, cl, "web", false)
		victim := ts[0]
		agent := map[string]*testcluster.Agent{a.ID.NodeID: a, b.ID.NodeID: b}[victim.NodeId]
		ctx := namespaces.WithNamespace(edgeCtx(t), agent.Runtime.Namespace())
		ctr, err := agent.Runtime.Client().LoadContainer(ctx, victim.Id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// GETs through both edges while the task is down and restarted:
		// every one is answered, and both edges reach the restarted task
		// (a new answer: it wrote a new file) again.
		statuses := map[int]int{}
		var fails []string
		if !waitFor(60*time.Second, func() bool {
			back := true
			for _, ag := range []*testcluster.Agent{a, b} {
				seen := map[string]bool{}
				for i := 0; i < 4; i++ {
					r := edgeGet(ag.EdgeAddr, "web.localhost", "/")
					if r.err != nil {
						statuses[-1]++
						fails = append(fails, r.err.Error())
						continue
					}
					statuses[r.status]++
					if r.status != http.StatusOK {
						fails = append(fails, fmt.Sprintf("%s: %d %q", ag.Name, r.status, r.body))
					}
					seen[r.body] = true
				}
				fresh := 0
				for body := range seen {
					if !before[body] {
						fresh++
					}
				}
				back = back && len(seen) == 2 && fresh == 1
			}
			return back
		}) {
			t.Fatalf("the killed task never answered through both edges again; tasks:\n%s", describeTasks(serviceTasks(t, cl, "web", false)))
		}
		t.Logf("statuses while the task was killed and restarted: %v", statuses)
		if len(fails) > 0 {
			t.Errorf("%d requests failed while a task was killed: %q", len(fails), fails[:min(len(fails), 10)])
		}
	})

	t.Run("no error during a rolling update", func(t *testing.T) {
		before := getService(t, cl, "web")
		old := bothReplicas(t, a)
		newSpec := before.Spec
		newSpec.Task.Env = []string{"GEN=2"}

		var (
			mu       sync.Mutex
			statuses = map[int]int{}
			errs     []string
			bodies   = map[string]int{}
		)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		deadline := time.Now().Add(90 * time.Second)
		// Half the clients through each node's edge: each sees its own
		// task by bridge address and the other's through the relay.
		for g := 0; g < 8; g++ {
			wg.Add(1)
			addr := []string{a.EdgeAddr, b.EdgeAddr}[g%2]
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					select {
					case <-stop:
						return
					default:
					}
					r := edgeGet(addr, "web.localhost", "/")
					mu.Lock()
					if r.err != nil {
						if len(errs) < 10 {
							errs = append(errs, r.err.Error())
						}
						statuses[-1]++
					} else {
						statuses[r.status]++
						if r.status != http.StatusOK && len(errs) < 10 {
							errs = append(errs, fmt.Sprintf("status %d: %q", r.status, r.body))
						}
						bodies[r.body]++
					}
					mu.Unlock()
				}
			}()
		}
		ctx := edgeCtx(t)
		if _, err := cl.Services.UpdateService(ctx, &ccv1.UpdateServiceRequest{Id: "web", Spec: newSpec, Version: before.Version}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("update service: %v", err)
		}
		var svc *ccv1.Service
		done := waitFor(90*time.Second, func() bool {
			svc = getService(t, cl, "web")
			if svc.GetUpdate().GetState() != ccv1.UpdateState_UPDATE_STATE_COMPLETED {
				return false
			}
			ts := serviceTasks(t, cl, "web", false)
			_, ok := runningOn(ts)
			if !ok || len(ts) != 2 {
				return false
			}
			for _, c := range ts {
				if c.ServiceVersion != svc.Version {
					return false
				}
			}
			return true
		})
		close(stop)
		wg.Wait()
		if !done {
			t.Fatalf("the update did not complete: %v; tasks:\n%s", svc.GetUpdate(), describeTasks(serviceTasks(t, cl, "web", true)))
		}
		total := 0
		for _, n := range statuses {
			total += n
		}
		t.Logf("%d requests during the update: statuses %v", total, statuses)
		if statuses[http.StatusOK] != total {
			t.Errorf("not every response was 200: %v; first failures: %q", statuses, errs)
		}
		if total < 16 {
			t.Errorf("only %d requests during the update", total)
		}
		// The route follows the new tasks.
		now := bothReplicas(t, a)
		for body := range now {
			if old[body] {
				t.Errorf("after the update the edge still answers from an old task %q", body)
			}
		}
	})
}

// TestEdgeFixedUpstreams: routes to fixed upstreams (HTTP servers of the
// test) and a static site, through an agent's edge.
func TestEdgeFixedUpstreams(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	a := srv.StartAgent("edge-a", testcluster.WithAdvertiseAddr("127.0.0.2"), testcluster.WithEdgeHTTPAddr("127.0.0.2:0"))
	edge := a.EdgeAddr

	t.Run("weighted and ip_hash", func(t *testing.T) {
		u1, u2 := namedUpstream(t, "one"), namedUpstream(t, "two")
		spec := &ccv1.RouteSpec{Hosts: []string{"pol.localhost"},
			Upstreams:     []*ccv1.Upstream{{Address: hostPort(u1), Weight: 1}, {Address: hostPort(u2), Weight: 2}},
			LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED}
		if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "pol", Spec: spec}); err != nil {
			t.Fatalf("create route: %v", err)
		}
		waitEdge(t, edge, "pol.localhost", "/", "an answer", func(r edgeResp) bool { return r.status == http.StatusOK })
		got := countBodies(t, edge, http.MethodGet, "pol.localhost", "/", 30)
		t.Logf("weighted: %v", got)
		if got["one"] < 8 || got["one"] > 12 || got["two"] < 18 || got["two"] > 22 {
			t.Errorf("weights 1 and 2 over 30 requests: %v, want about 10 and 20", got)
		}

		spec.LoadBalancing = ccv1.LoadBalancing_LOAD_BALANCING_IP_HASH
		spec.HeaderDown = map[string]string{"X-Policy": "ip_hash"}
		if _, err := cl.Edge.UpdateRoute(edgeCtx(t), &ccv1.UpdateRouteRequest{Name: "pol", Spec: spec}); err != nil {
			t.Fatalf("update route: %v", err)
		}
		waitEdge(t, edge, "pol.localhost", "/", "the ip_hash route", func(r edgeResp) bool { return r.header.Get("X-Policy") == "ip_hash" })
		got = countBodies(t, edge, http.MethodGet, "pol.localhost", "/", 30)
		t.Logf("ip_hash: %v", got)
		if len(got) != 1 {
			t.Errorf("ip_hash sent one client to %v, want one upstream", got)
		}
	})

	t.Run("active health check takes an upstream out and puts it back", func(t *testing.T) {
		up := namedUpstream(t, "up")
		// flaky answers requests always and its health check as sick says.
		var (
			mu     sync.Mutex
			sick   bool
			checks int
		)
		flakyHandler := http.NewServeMux()
		flakyHandler.Handle("/", nameHandler("flaky"))
		flakyHandler.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			checks++
			if sick {
				http.Error(w, "sick", http.StatusServiceUnavailable)
			}
		})
		flaky := httptest.NewServer(flakyHandler)
		flakyAddr := hostPort(flaky)
		t.Cleanup(func() { flaky.Close() })
		checksNow := func() int { mu.Lock(); defer mu.Unlock(); return checks }
		setSick := func(v bool) { mu.Lock(); sick = v; mu.Unlock() }

		spec := &ccv1.RouteSpec{Hosts: []string{"hc.localhost"},
			Upstreams: []*ccv1.Upstream{{Address: hostPort(up)}, {Address: flakyAddr}},
			HealthCheck: &ccv1.RouteHealthCheck{Path: "/health", Interval: durationpb.New(time.Second),
				Timeout: durationpb.New(time.Second), Fails: 1, Passes: 1}}
		if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "hc", Spec: spec}); err != nil {
			t.Fatalf("create route: %v", err)
		}
		both := func(what string) {
			t.Helper()
			var got map[string]int
			if !waitFor(60*time.Second, func() bool {
				got = map[string]int{}
				for i := 0; i < 4; i++ {
					r := edgeGet(edge, "hc.localhost", "/")
					if r.err != nil || r.status != http.StatusOK {
						return false
					}
					got[r.body]++
				}
				return got["up"] > 0 && got["flaky"] > 0
			}) {
				t.Fatalf("%s: the route never answered from both upstreams: %v", what, got)
			}
		}
		// onlyUp: POSTs, which are not retried on another upstream, all
		// answered by up with 200.
		onlyUp := func(what string) {
			t.Helper()
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				if got := countBodies(t, edge, method, "hc.localhost", "/", 20); got["up"] != 20 {
					t.Errorf("%s: %s went to %v, want all to up", what, method, got)
				}
			}
		}
		both("at first")

		// The check fails: once it has run (twice, so that the first
		// answer has surely been taken in), flaky gets nothing.
		setSick(true)
		n := checksNow()
		if !waitFor(30*time.Second, func() bool { return checksNow() >= n+2 }) {
			t.Fatal("the edge does not check the upstream's health")
		}
		onlyUp("health endpoint failing")
		setSick(false)
		both("health endpoint passing again")

		// The upstream stops (its listener closed): once the check has
		// marked it down, no request fails.
		flaky.Close()
		if !waitFor(30*time.Second, func() bool {
			for i := 0; i < 6; i++ {
				r := edgeDo(edge, http.MethodPost, "hc.localhost", "/", nil)
				if r.err != nil || r.status != http.StatusOK || r.body != "up" {
					return false
				}
			}
			return true
		}) {
			t.Fatal("the stopped upstream was never taken out")
		}
		onlyUp("upstream stopped")

		// Started again on the same address, it gets traffic again.
		ln, err := net.Listen("tcp", flakyAddr)
		if err != nil {
			t.Fatalf("listen again on %s: %v", flakyAddr, err)
		}
		flaky = &httptest.Server{Listener: ln, Config: &http.Server{Handler: flakyHandler}}
		flaky.Start()
		both("upstream started again")
	})

	t.Run("a WebSocket survives ten route changes", func(t *testing.T) {
		ws := httptest.NewServer(http.HandlerFunc(wstest.Echo))
		t.Cleanup(ws.Close)
		spec := &ccv1.RouteSpec{Hosts: []string{"ws.localhost"}, Upstreams: []*ccv1.Upstream{{Address: hostPort(ws)}}}
		if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "ws", Spec: spec}); err != nil {
			t.Fatalf("create route: %v", err)
		}
		waitEdge(t, edge, "ws.localhost", "/", "the upstream's refusal of plain HTTP", func(r edgeResp) bool { return r.status == http.StatusBadRequest && r.body == "websocket only" })

		conn, err := net.DialTimeout("tcp", edge, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		br, err := wstest.Handshake(conn, "ws.localhost", "/chat")
		if err != nil {
			t.Fatal(err)
		}
		echo := func(msg string) {
			t.Helper()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := wstest.WriteFrame(conn, wstest.OpText, []byte(msg), []byte{1, 2, 3, 4}); err != nil {
				t.Fatalf("send %q: %v", msg, err)
			}
			op, p, err := wstest.ReadFrame(br)
			if err != nil || op != wstest.OpText || string(p) != msg {
				t.Fatalf("echo of %q: op %d %q %v", msg, op, p, err)
			}
		}
		echo("hello")
		for i := 1; i <= 10; i++ {
			spec.HeaderDown = map[string]string{"X-Gen": fmt.Sprint(i)}
			if _, err := cl.Edge.UpdateRoute(edgeCtx(t), &ccv1.UpdateRouteRequest{Name: "ws", Spec: spec}); err != nil {
				t.Fatalf("update route #%d: %v", i, err)
			}
			// The edge serves the change before the next echo.
			waitEdge(t, edge, "ws.localhost", "/", fmt.Sprintf("change #%d", i), func(r edgeResp) bool { return r.header.Get("X-Gen") == fmt.Sprint(i) })
			echo(fmt.Sprintf("message %d", i))
		}
	})

	t.Run("the seed's example applied", func(t *testing.T) {
		u1, u2 := namedUpstream(t, "9001"), namedUpstream(t, "9002")
		// docs/edge.md's edge.toml, its addresses those of the test's
		// servers, as `ccctl edge apply edge.toml` sends it.
		routes := []*ccv1.Route{{Name: "backend-api", Spec: &ccv1.RouteSpec{
			Hosts: []string{"localhost"}, PathPrefix: "/api/",
			Upstreams:     []*ccv1.Upstream{{Address: hostPort(u1), Weight: 1}, {Address: hostPort(u2), Weight: 2}},
			LoadBalancing: ccv1.LoadBalancing_LOAD_BALANCING_WEIGHTED,
			HealthCheck:   &ccv1.RouteHealthCheck{Path: "/health", Interval: durationpb.New(10 * time.Second)},
		}}}
		r, err := cl.Edge.ApplyRoutes(edgeCtx(t), &ccv1.ApplyRoutesRequest{Set: "edge", Routes: routes})
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if len(r.Created) != 1 || r.Created[0] != "backend-api" {
			t.Fatalf("apply created %v, want [backend-api]", r.Created)
		}
		waitEdge(t, edge, "localhost", "/api/x", "an answer", func(r edgeResp) bool { return r.status == http.StatusOK })
		got := countBodies(t, edge, http.MethodGet, "localhost", "/api/x", 30)
		t.Logf("seed's example: %v", got)
		if got["9001"] < 8 || got["9001"] > 12 || got["9002"] < 18 || got["9002"] > 22 {
			t.Errorf("weights 1 and 2 over 30 requests: %v, want about 10 and 20", got)
		}
		if r := edgeGet(edge, "localhost", "/other"); r.status != http.StatusNotFound {
			t.Errorf("GET /other outside the route: %d %q, want 404", r.status, r.body)
		}

		r, err = cl.Edge.ApplyRoutes(edgeCtx(t), &ccv1.ApplyRoutesRequest{Set: "edge"})
		if err != nil {
			t.Fatalf("apply without the route: %v", err)
		}
		if len(r.Removed) != 1 || r.Removed[0] != "backend-api" {
			t.Fatalf("apply removed %v, want [backend-api]", r.Removed)
		}
		waitEdge(t, edge, "localhost", "/api/x", "404 once the route is removed", func(r edgeResp) bool { return r.status == http.StatusNotFound })
	})

	t.Run("a site deployed and rolled back", func(t *testing.T) {
		deploy := func(content string) *ccv1.Site {
			t.Helper()
			bundle := siteTarGz(t, map[string]string{"index.html": content})
			st, err := cl.Edge.DeploySite(edgeCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Header{Header: &ccv1.DeploySiteHeader{
				Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}, Size: int64(len(bundle))}}}); err != nil {
				t.Fatal(err)
			}
			for len(bundle) > 0 {
				n := min(len(bundle), 100)
				if err := st.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Chunk{Chunk: bundle[:n]}}); err != nil {
					t.Fatal(err)
				}
				bundle = bundle[n:]
			}
			r, err := st.CloseAndRecv()
			if err != nil {
				t.Fatalf("deploy %q: %v", content, err)
			}
			return r.Site
		}
		isBody := func(want string) func(edgeResp) bool {
			return func(r edgeResp) bool { return r.status == http.StatusOK && r.body == want }
		}

		s1 := deploy("v1")
		r1 := waitEdge(t, edge, "docs.localhost", "/", "v1", isBody("v1"))
		etag := r1.header.Get("ETag")
		if etag == "" {
			t.Fatalf("no ETag: %v", r1.header)
		}
		if r := edgeDo(edge, http.MethodGet, "docs.localhost", "/", map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified {
			t.Errorf("If-None-Match %s: status %d, want 304", etag, r.status)
		}

		s2 := deploy("v2")
		if s2.Current == s1.Current {
			t.Fatalf("the second deploy is version %d again", s2.Current)
		}
		r2 := waitEdge(t, edge, "docs.localhost", "/", "v2", isBody("v2"))
		if r2.header.Get("ETag") == etag {
			t.Errorf("v1 and v2 have the same ETag %s", etag)
		}
		if r := edgeDo(edge, http.MethodGet, "docs.localhost", "/", map[string]string{"If-None-Match": etag}); r.status != http.StatusOK || r.body != "v2" {
			t.Errorf("If-None-Match of v1's ETag on v2: status %d %q, want 200 v2", r.status, r.body)
		}

		rb, err := cl.Edge.RollbackSite(edgeCtx(t), &ccv1.RollbackSiteRequest{Name: "docs"})
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if rb.Site.Current != s1.Current {
			t.Errorf("rollback made version %d current, want %d", rb.Site.Current, s1.Current)
		}
		r3 := waitEdge(t, edge, "docs.localhost", "/", "v1 after the rollback", isBody("v1"))
		if r3.header.Get("ETag") != etag {
			t.Errorf("v1's ETag after the rollback is %s, was %s", r3.header.Get("ETag"), etag)
		}

		for _, target := range []string{"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/a/../../../etc/passwd"} {
			code, body := rawGet(t, edge, "docs.localhost", target)
			if code != http.StatusBadRequest && code != http.StatusNotFound {
				t.Errorf("GET %s: status %d, want 400 or 404", target, code)
			}
			if strings.Contains(body, "root:") {
				t.Errorf("GET %s served /etc/passwd", target)
			}
		}
	})
}

// siteTarGz is the tar.gz of files, as `ccctl site deploy` packs a
// directory.
func siteTarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Now().Truncate(time.Second)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawGet sends target as written, uncleaned, and returns the status and
// body.
func rawGet(t *testing.T, addr, host, target string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
