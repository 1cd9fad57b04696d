package edgeconfig

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

type taskOpt func(*ccv1.Container)

func task(id, node, ip string, opts ...taskOpt) *ccv1.Container {
	c := &ccv1.Container{Id: id, NodeId: node, ServiceId: "svc-web", Desired: ccv1.DesiredState_DESIRED_STATE_RUNNING,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, Ip: ip}}
	for _, o := range opts {
		o(c)
	}
	return c
}

func relay(cport, hport uint32) taskOpt {
	return func(c *ccv1.Container) {
		c.Status.Relays = append(c.Status.Relays, &ccv1.PortRelay{ContainerPort: cport, HostPort: hport})
	}
}

func health(h ccv1.HealthState) taskOpt { return func(c *ccv1.Container) { c.Status.Health = h } }
func desired(d ccv1.DesiredState) taskOpt {
	return func(c *ccv1.Container) { c.Desired = d }
}
func state(s ccv1.ContainerState) taskOpt { return func(c *ccv1.Container) { c.Status.State = s } }
func service(id string) taskOpt           { return func(c *ccv1.Container) { c.ServiceId = id } }

func webRoute() *ccv1.Route {
	return &ccv1.Route{Name: "web", Version: 1, Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, Service: "web", Port: 80}}
}

func baseState(tasks ...*ccv1.Container) State {
	return State{
		Routes:   []*ccv1.Route{webRoute()},
		Services: []*ccv1.Service{{Id: "svc-web", Name: "web"}, {Id: "svc-db", Name: "db"}},
		Nodes:    []*ccv1.Node{{Id: "n1", Address: "127.0.0.2"}, {Id: "n2", Address: "127.0.0.3"}},
		Tasks:    tasks,
	}
}

// describe renders endpoints as "id addr|local" for compact comparison.
func describe(eps []*ccv1.Endpoint) string {
	var parts []string
	for _, e := range eps {
		parts = append(parts, fmt.Sprintf("%s %s|%s", e.Id, e.Address, e.LocalAddress))
	}
	return strings.Join(parts, ", ")
}

func TestFor(t *testing.T) {
	cases := []struct {
		name   string
		tasks  []*ccv1.Container
		node   string
		want   string
		relays string
	}{
		{name: "both nodes, from n1", node: "n1",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2", relay(80, 40001)), task("b", "n2", "10.0.2.2", relay(80, 40002))},
			want:  "a 127.0.0.2:40001|10.0.1.2:80, b 127.0.0.3:40002|10.0.2.2:80", relays: "a:80"},
		{name: "both nodes, from n2", node: "n2",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2", relay(80, 40001)), task("b", "n2", "10.0.2.2", relay(80, 40002))},
			want:  "a 127.0.0.2:40001|10.0.1.2:80, b 127.0.0.3:40002|10.0.2.2:80", relays: "b:80"},
		{name: "no relay yet: own node only", node: "n1",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2"), task("b", "n2", "10.0.2.2")},
			want:  "a |10.0.1.2:80", relays: "a:80"},
		{name: "node without edge tasks sees relayed only", node: "n3",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2"), task("b", "n2", "10.0.2.2", relay(80, 40002))},
			want:  "b 127.0.0.3:40002|10.0.2.2:80"},
		{name: "relay of another port does not count", node: "n2",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2", relay(8080, 40001))},
			want:  ""},
		{name: "health", node: "n1",
			tasks: []*ccv1.Container{
				task("a", "n1", "10.0.1.2", health(ccv1.HealthState_HEALTH_STATE_HEALTHY)),
				task("b", "n1", "10.0.1.3", health(ccv1.HealthState_HEALTH_STATE_STARTING)),
				task("c", "n1", "10.0.1.4", health(ccv1.HealthState_HEALTH_STATE_UNHEALTHY)),
			},
			want: "a |10.0.1.2:80", relays: "a:80, b:80, c:80"},
		{name: "not running", node: "n1",
			tasks: []*ccv1.Container{
				task("a", "n1", "10.0.1.2", desired(ccv1.DesiredState_DESIRED_STATE_STOPPED)),
				task("b", "n1", "10.0.1.3", state(ccv1.ContainerState_CONTAINER_STATE_PREPARING)),
				task("c", "n1", ""),
			},
			want: "", relays: "b:80, c:80"},
		{name: "other service", node: "n1",
			tasks: []*ccv1.Container{task("a", "n1", "10.0.1.2", service("svc-db"))},
			want:  ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := For(c.node, true, baseState(c.tasks...))
			if len(cfg.Routes) != 1 {
				t.Fatalf("routes %v", cfg.Routes)
			}
			if got := describe(cfg.Routes[0].Endpoints); got != c.want {
				t.Errorf("endpoints\n got %s\nwant %s", got, c.want)
			}
			var rs []string
			for _, r := range cfg.Relays {
				rs = append(rs, fmt.Sprintf("%s:%d", r.ContainerId, r.Port))
			}
			if got := strings.Join(rs, ", "); got != c.relays {
				t.Errorf("relays %q, want %q", got, c.relays)
			}
		})
	}
}

func TestEndpointsUpstreams(t *testing.T) {
	r := &ccv1.Route{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"x"}, Upstreams: []*ccv1.Upstream{
		{Address: "10.1.1.1:80", Weight: 1}, {Address: "10.1.1.2:80", Weight: 2}, {Address: "10.1.1.3:80"}}}}
	eps := Endpoints(r, State{})
	if got := describe(eps); got != "10.1.1.1:80 10.1.1.1:80|, 10.1.1.2:80 10.1.1.2:80|, 10.1.1.3:80 10.1.1.3:80|" {
		t.Errorf("endpoints %s", got)
	}
	if eps[1].Weight != 2 || eps[2].Weight != 1 {
		t.Errorf("weights %d %d, want 2 and 1", eps[1].Weight, eps[2].Weight)
	}
}

func TestSitesAndOrder(t *testing.T) {
	s := State{
		Routes: []*ccv1.Route{{Name: "z", Spec: &ccv1.RouteSpec{}}, {Name: "a", Spec: &ccv1.RouteSpec{}}},
		Sites: []*ccv1.Site{
			{Name: "docs", Current: 2, Versions: []*ccv1.SiteVersion{{Version: 1, BundleDigest: "sha256:1"}, {Version: 2, BundleDigest: "sha256:2"}}},
			{Name: "blog", Current: 3},
		},
	}
	cfg := For("n1", true, s)
	if cfg.Routes[0].Name != "a" || cfg.Routes[1].Name != "z" {
		t.Errorf("routes not sorted: %v", cfg.Routes)
	}
	if len(cfg.Sites) != 1 || cfg.Sites[0].BundleDigest != "sha256:2" || cfg.Sites[0].Version != 2 {
		t.Errorf("sites %v, want docs at version 2", cfg.Sites)
	}
}

func TestResolveEqual(t *testing.T) {
	a := Resolve(baseState(task("a", "n1", "10.0.1.2")))
	b := Resolve(baseState(task("a", "n1", "10.0.1.2")))
	if !a.Equal(b) {
		t.Error("same state resolves differently")
	}
	c := Resolve(baseState(task("a", "n1", "10.0.1.2", relay(80, 1234))))
	if a.Equal(c) {
		t.Error("a new relay port went unnoticed")
	}
	d := Resolve(baseState(task("a", "n1", "10.0.1.2"), task("b", "n2", "", state(ccv1.ContainerState_CONTAINER_STATE_PREPARING))))
	if a.Equal(d) {
		t.Error("a new relay on n2 went unnoticed")
	}
}

// A node's config follows a task's relay through Diff and Apply.
func TestDiffApplyAcrossStates(t *testing.T) {
	before := For("n2", true, baseState(task("a", "n1", "10.0.1.2")))
	after := For("n2", true, baseState(task("a", "n1", "10.0.1.2", relay(80, 40001))))
	ch := Diff(before, after)
	if ch == nil || len(ch.UpdatedRoutes) != 1 || ch.SetRelays {
		t.Fatalf("changes %v, want the route updated and the relays (none on n2) kept", ch)
	}
	if got := Apply(before, ch); !proto.Equal(got, after) {
		t.Fatalf("applied %v, want %v", got, after)
	}
	if Diff(after, For("n2", true, baseState(task("a", "n1", "10.0.1.2", relay(80, 40001))))) != nil {
		t.Fatal("the same state gave changes")
	}
}

func TestKeysOnlyToEdgeNodes(t *testing.T) {
	st := baseState()
	st.Certs = []*ccv1.EdgeCert{{Name: "site", Hosts: []string{"a.localhost"}, ChainPem: []byte("c"), KeyPem: []byte("k")}, {Name: "pending"}}
	st.Challenges = []*ccv1.ACMEChallenge{{Type: "http-01", Host: "a.localhost", Token: "t", KeyAuthorization: "t.x"}}
	st.TLS = &ccv1.EdgeTLSSettings{Http3: true}
	edge, plain := For("n1", true, st), For("n1", false, st)
	if len(edge.Certs) != 1 || edge.Certs[0].Name != "site" || len(edge.Challenges) != 1 || !edge.Tls.GetHttp3() {
		t.Fatalf("edge node: %v", edge)
	}
	if len(plain.Certs) != 0 || len(plain.Challenges) != 0 || plain.Tls != nil {
		t.Fatalf("a node without the edge got keys: %v", plain)
	}
	if Resolve(st).Equal(Resolve(baseState())) {
		t.Fatal("a change of certificates is not a change")
	}
}
