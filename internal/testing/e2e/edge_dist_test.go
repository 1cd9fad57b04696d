package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/edge"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// edgeRecorder stands in for an agent's edge server: it keeps the last
// routes the worker handed over.
type edgeRecorder struct {
	mu     sync.Mutex
	routes map[string]*ccv1.EdgeRoute
}

func (r *edgeRecorder) Update(cfg edge.Config) {
	m := map[string]*ccv1.EdgeRoute{}
	for _, rt := range cfg.Routes {
		m[rt.Name] = rt
	}
	r.mu.Lock()
	r.routes = m
	r.mu.Unlock()
}

// updated reports whether the worker handed over a configuration.
func (r *edgeRecorder) updated() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes != nil
}

func (r *edgeRecorder) route(name string) *ccv1.EdgeRoute {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes[name]
}

// TestEdgeDistribution: a route to a service with a task on each of two
// agents whose advertise addresses differ. Each agent's edge gets both
// endpoints, its own task by bridge address and the other's through the
// other node's relay, and the relays reach the tasks.
func TestEdgeDistribution(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	recA, recB := &edgeRecorder{}, &edgeRecorder{}
	a := srv.StartAgent("edge-a", testcluster.WithAdvertiseAddr("127.0.0.2"), testcluster.WithEdge(recA))
	b := srv.StartAgent("edge-b", testcluster.WithAdvertiseAddr("127.0.0.3"), testcluster.WithEdge(recB))
	edge := ccv1.NewEdgeServiceClient(srv.Conn(srv.Token))
	// Every session carries an edge configuration, empty as it is.
	if !waitFor(30*time.Second, func() bool { return recA.updated() && recB.updated() }) {
		t.Fatal("the agents' edges never got a configuration")
	}

	loadDemoImage(t, cl)
	createService(t, cl, "web", &ccv1.ServiceSpec{
		Replicas: 2,
		Task: &ccv1.ContainerSpec{Image: demoImage, StopGracePeriod: durationpb.New(time.Second),
			Command: []string{"/bin/busybox", "sh", "-c",
				"mkdir -p /www && cat /proc/sys/kernel/random/uuid > /www/index.html && exec /bin/busybox httpd -f -p 80 -h /www"}},
	})
	waitTasks(t, cl, "web", "a running task on each node", func(ts []*ccv1.Container) bool {
		per, ok := runningOn(ts)
		return ok && len(ts) == 2 && per[a.ID.NodeID] == 1 && per[b.ID.NodeID] == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	spec := &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, Service: "web", Port: 80}
	if _, err := edge.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web", Spec: spec}); err != nil {
		t.Fatalf("create route: %v", err)
	}

	type view struct {
		rec   *edgeRecorder
		agent *testcluster.Agent
		other *testcluster.Agent
	}
	answers := map[string]string{} // endpoint id → body
	for _, v := range []view{{recA, a, b}, {recB, b, a}} {
		var eps []*ccv1.Endpoint
		if !waitFor(60*time.Second, func() bool {
			r := v.rec.route("web")
			if r == nil || len(r.Endpoints) != 2 {
				return false
			}
			eps = r.Endpoints
			for _, ep := range eps {
				if ep.NodeId == v.agent.ID.NodeID && (ep.LocalAddress == "" || ep.Address != ep.LocalAddress) {
					return false
				}
				if ep.NodeId == v.other.ID.NodeID && !strings.HasPrefix(ep.Address, v.other.Address()+":") {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("agent %s: the route's endpoints never were its own task by bridge address and the other's by relay: %v",
				v.agent.Name, v.rec.route("web").GetEndpoints())
		}
		for _, ep := range eps {
			if ep.NodeId != v.other.ID.NodeID {
				continue
			}
			// The other node's relay reaches its task.
			body := relayGet(t, ep.Address)
			if body == "" {
				t.Fatalf("relay %s of task %s answered nothing", ep.Address, ep.Id)
			}
			answers[ep.Id] = body
			// And the relay is what the task's status says.
			host, _, _ := net.SplitHostPort(ep.Address)
			if host != v.other.Address() {
				t.Errorf("relay on %s, want the node's address %s", host, v.other.Address())
			}
		}
	}
	if len(answers) != 2 {
		t.Fatalf("answers from %d tasks, want 2: %v", len(answers), answers)
	}
	var bodies []string
	for _, b := range answers {
		bodies = append(bodies, b)
	}
	if bodies[0] == bodies[1] {
		t.Errorf("both relays reached the same task: %q", bodies[0])
	}

	// A restarted agent relays its task again (on a new port, which its
	// status tells the control plane), and the other edge follows.
	before := ""
	for _, ep := range recB.route("web").GetEndpoints() {
		if ep.NodeId == a.ID.NodeID {
			before = ep.Address
		}
	}
	a.Restart()
	var after *ccv1.Endpoint
	if !waitFor(60*time.Second, func() bool {
		for _, ep := range recB.route("web").GetEndpoints() {
			if ep.NodeId == a.ID.NodeID && ep.Address != "" && ep.Address != before {
				after = ep
				return true
			}
		}
		return false
	}) {
		t.Fatalf("after agent %s restarted, %s never got its new relay (was %s): %v", a.Name, b.Name, before, recB.route("web").GetEndpoints())
	}
	if got := relayGet(t, after.Address); got != answers[after.Id] {
		t.Errorf("the new relay %s answered %q, want %q", after.Address, got, answers[after.Id])
	}
}

// relayGet fetches / from addr, retrying briefly while the relay or the
// task's server starts.
func relayGet(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for i := 0; i < 50; i++ {
		resp, err := client.Get(fmt.Sprintf("http://%s/", addr))
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return strings.TrimSpace(string(b))
			}
			last = fmt.Errorf("status %d, %v", resp.StatusCode, rerr)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/: %v", addr, last)
	return ""
}
