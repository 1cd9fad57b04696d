// Package edgeconfig decides what every node's edge serves: the routes with
// their endpoints resolved from the tasks' status (a task on the same node
// by its bridge address, one on another node through that node's relay),
// the sites' current bundles, and the relays a node must run for its own
// routed tasks. It also computes and applies the changes between two
// configurations. It is pure: the session reads the state and sends the
// result.
package edgeconfig

import (
	"net"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/edgediff"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Diff is the change from one node's configuration to the next, nil when
// they are equal (package edgediff, shared with the agent, which applies
// it).
func Diff(old, cur *ccv1.EdgeConfig) *ccv1.EdgeChanges { return edgediff.Diff(old, cur) }

// Apply returns cfg with the changes made (package edgediff).
func Apply(cfg *ccv1.EdgeConfig, ch *ccv1.EdgeChanges) *ccv1.EdgeConfig {
	return edgediff.Apply(cfg, ch)
}

// State is what the edge configuration is computed from.
type State struct {
	Routes   []*ccv1.Route
	Sites    []*ccv1.Site
	Services []*ccv1.Service
	// Tasks are the containers of the routed services (others are
	// ignored).
	Tasks []*ccv1.Container
	Nodes []*ccv1.Node
	// Certs are the certificates with a chain and key, Challenges the
	// pending ACME challenges, TLS the cluster's HTTPS settings: edge
	// nodes get them, other nodes do not.
	Certs      []*ccv1.EdgeCert
	Challenges []*ccv1.ACMEChallenge
	TLS        *ccv1.EdgeTLSSettings
}

// Cluster is the edge configuration of the whole cluster, resolved once;
// For cuts out one node's.
type Cluster struct {
	routes []*ccv1.EdgeRoute // by name; endpoints of every node, some without address
	sites  []*ccv1.EdgeSite  // by name
	relays map[string][]*ccv1.Relay

	certs      []*ccv1.EdgeCert      // by name
	challenges []*ccv1.ACMEChallenge // by type, host, token
	tls        *ccv1.EdgeTLSSettings
}

// Resolve computes the cluster's edge configuration.
func Resolve(s State) *Cluster {
	ix := index(s)
	c := &Cluster{relays: map[string][]*ccv1.Relay{}}
	type key struct {
		id   string
		port uint32
	}
	seen := map[key]bool{}
	for _, r := range sortedRoutes(s.Routes) {
		c.routes = append(c.routes, &ccv1.EdgeRoute{Name: r.Name, Spec: r.Spec, Version: r.Version, Endpoints: ix.endpoints(r)})
		port := r.GetSpec().GetPort()
		svc := ix.service(r.GetSpec().GetService())
		if svc == nil || port == 0 {
			continue
		}
		for _, t := range ix.tasks[svc.Id] {
			if t.NodeId == "" || t.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING || seen[key{t.Id, port}] {
				continue
			}
			seen[key{t.Id, port}] = true
			c.relays[t.NodeId] = append(c.relays[t.NodeId], &ccv1.Relay{ContainerId: t.Id, Port: port})
		}
	}
	for _, rs := range c.relays {
		sortRelays(rs)
	}
	for _, st := range s.Sites {
		if es := edgeSite(st); es != nil {
			c.sites = append(c.sites, es)
		}
	}
	sort.Slice(c.sites, func(i, j int) bool { return c.sites[i].Name < c.sites[j].Name })
	for _, ct := range s.Certs {
		if len(ct.ChainPem) > 0 && len(ct.KeyPem) > 0 {
			c.certs = append(c.certs, ct)
		}
	}
	sort.Slice(c.certs, func(i, j int) bool { return c.certs[i].Name < c.certs[j].Name })
	c.challenges = append(c.challenges, s.Challenges...)
	sort.Slice(c.challenges, func(i, j int) bool {
		a, b := c.challenges[i], c.challenges[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Token < b.Token
	})
	if s.TLS != nil && (s.TLS.Http3 || s.TLS.DefaultCert != "") {
		c.tls = s.TLS
	}
	return c
}

// For is the whole edge configuration of one node; edge says whether it
// runs the edge (and so gets certificates, keys and challenges).
func For(nodeID string, edge bool, s State) *ccv1.EdgeConfig {
	return Resolve(s).For(nodeID, edge)
}

// For is the configuration of one node: a route's endpoints are those the
// node can reach (a task without its relay yet only from its own node).
// Only a node that runs the edge gets the certificates with their keys,
// the ACME challenges and the TLS settings.
func (c *Cluster) For(nodeID string, edge bool) *ccv1.EdgeConfig {
	cfg := &ccv1.EdgeConfig{Sites: c.sites, Relays: c.relays[nodeID]}
	if edge {
		cfg.Certs, cfg.Challenges, cfg.Tls = c.certs, c.challenges, c.tls
	}
	for _, r := range c.routes {
		reach := r
		for i, ep := range r.Endpoints {
			if ep.Address != "" || ep.NodeId == nodeID {
				continue
			}
			// Copy only when an endpoint must go.
			reach = &ccv1.EdgeRoute{Name: r.Name, Spec: r.Spec, Version: r.Version, Endpoints: append([]*ccv1.Endpoint(nil), r.Endpoints[:i]...)}
			for _, e := range r.Endpoints[i+1:] {
				if e.Address != "" || e.NodeId == nodeID {
					reach.Endpoints = append(reach.Endpoints, e)
				}
			}
			break
		}
		cfg.Routes = append(cfg.Routes, reach)
	}
	return cfg
}

// Equal reports whether two resolutions give every node the same
// configuration.
func (c *Cluster) Equal(o *Cluster) bool {
	if c == nil || o == nil {
		return c == o
	}
	if len(c.routes) != len(o.routes) || len(c.sites) != len(o.sites) || len(c.relays) != len(o.relays) ||
		len(c.certs) != len(o.certs) || len(c.challenges) != len(o.challenges) || !proto.Equal(c.tls, o.tls) {
		return false
	}
	for i := range c.certs {
		if !proto.Equal(c.certs[i], o.certs[i]) {
			return false
		}
	}
	for i := range c.challenges {
		if !proto.Equal(c.challenges[i], o.challenges[i]) {
			return false
		}
	}
	for i := range c.routes {
		if !proto.Equal(c.routes[i], o.routes[i]) {
			return false
		}
	}
	for i := range c.sites {
		if !proto.Equal(c.sites[i], o.sites[i]) {
			return false
		}
	}
	for n, rs := range c.relays {
		if !relaysEqual(rs, o.relays[n]) {
			return false
		}
	}
	return true
}

// Endpoints are where a route sends requests, as the cluster sees them:
// every running, healthy task of its service (address empty while the
// task's node does not relay it yet), or its fixed upstreams.
func Endpoints(route *ccv1.Route, s State) []*ccv1.Endpoint {
	return index(s).endpoints(route)
}

type indexed struct {
	byName map[string]*ccv1.Service
	byID   map[string]*ccv1.Service
	tasks  map[string][]*ccv1.Container // service id → tasks, by id
	nodes  map[string]*ccv1.Node
}

func index(s State) *indexed {
	ix := &indexed{byName: map[string]*ccv1.Service{}, byID: map[string]*ccv1.Service{},
		tasks: map[string][]*ccv1.Container{}, nodes: map[string]*ccv1.Node{}}
	for _, svc := range s.Services {
		ix.byName[svc.Name], ix.byID[svc.Id] = svc, svc
	}
	for _, t := range s.Tasks {
		if t.ServiceId != "" {
			ix.tasks[t.ServiceId] = append(ix.tasks[t.ServiceId], t)
		}
	}
	for _, ts := range ix.tasks {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Id < ts[j].Id })
	}
	for _, n := range s.Nodes {
		ix.nodes[n.Id] = n
	}
	return ix
}

// service finds a route's service by name, or by id.
func (ix *indexed) service(ref string) *ccv1.Service {
	if ref == "" {
		return nil
	}
	if svc := ix.byName[ref]; svc != nil {
		return svc
	}
	return ix.byID[ref]
}

func (ix *indexed) endpoints(r *ccv1.Route) []*ccv1.Endpoint {
	spec := r.GetSpec()
	var out []*ccv1.Endpoint
	for _, u := range spec.GetUpstreams() {
		if u.GetAddress() == "" {
			continue
		}
		out = append(out, &ccv1.Endpoint{Id: u.Address, Address: u.Address, Weight: max(u.Weight, 1)})
	}
	svc := ix.service(spec.GetService())
	if svc == nil || spec.GetPort() == 0 {
		return out
	}
	port := strconv.Itoa(int(spec.GetPort()))
	for _, t := range ix.tasks[svc.Id] {
		if !Serving(t) {
			continue
		}
		st := t.Status
		ep := &ccv1.Endpoint{Id: t.Id, LocalAddress: net.JoinHostPort(st.Ip, port), NodeId: t.NodeId, Weight: 1}
		if n := ix.nodes[t.NodeId]; n != nil && n.Address != "" {
			for _, pr := range st.Relays {
				if pr.ContainerPort == spec.GetPort() && pr.HostPort != 0 {
					ep.Address = net.JoinHostPort(n.Address, strconv.Itoa(int(pr.HostPort)))
					break
				}
			}
		}
		out = append(out, ep)
	}
	return out
}

// Serving reports whether a task takes requests: desired and reported
// running, healthy or without a health check, with a bridge address.
func Serving(t *ccv1.Container) bool {
	st := t.GetStatus()
	if t.GetDesired() != ccv1.DesiredState_DESIRED_STATE_RUNNING || st.GetState() != ccv1.ContainerState_CONTAINER_STATE_RUNNING || st.GetIp() == "" || t.GetNodeId() == "" {
		return false
	}
	switch st.GetHealth() {
	case ccv1.HealthState_HEALTH_STATE_UNSPECIFIED, ccv1.HealthState_HEALTH_STATE_HEALTHY:
		return true
	}
	return false
}

// edgeSite is a site's current version, nil when it has none.
func edgeSite(s *ccv1.Site) *ccv1.EdgeSite {
	for _, v := range s.GetVersions() {
		if v.GetVersion() == s.GetCurrent() && v.GetBundleDigest() != "" {
			return &ccv1.EdgeSite{Name: s.Name, Spec: s.Spec, Version: v.Version, BundleDigest: v.BundleDigest}
		}
	}
	return nil
}

func sortedRoutes(rs []*ccv1.Route) []*ccv1.Route {
	out := append([]*ccv1.Route(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortRelays(rs []*ccv1.Relay) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].ContainerId != rs[j].ContainerId {
			return rs[i].ContainerId < rs[j].ContainerId
		}
		return rs[i].Port < rs[j].Port
	})
}

func relaysEqual(a, b []*ccv1.Relay) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ContainerId != b[i].ContainerId || a[i].Port != b[i].Port {
			return false
		}
	}
	return true
}
