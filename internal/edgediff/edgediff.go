// Package edgediff computes the changes between two of a node's edge
// configurations and applies them: the control plane's sessions send the
// changes, the agent applies them. It is pure and shared by both sides.
package edgediff

import (
	"sort"

	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Diff is the change from one node's configuration to the next, nil when
// they are equal. Relays are sent whole (set_relays) when they changed.
func Diff(old, cur *ccv1.EdgeConfig) *ccv1.EdgeChanges {
	ch := &ccv1.EdgeChanges{}
	oldRoutes := map[string]*ccv1.EdgeRoute{}
	for _, r := range old.GetRoutes() {
		oldRoutes[r.Name] = r
	}
	curRoutes := map[string]bool{}
	for _, r := range cur.GetRoutes() {
		curRoutes[r.Name] = true
		if o := oldRoutes[r.Name]; o == nil || !proto.Equal(o, r) {
			ch.UpdatedRoutes = append(ch.UpdatedRoutes, r)
		}
	}
	for name := range oldRoutes {
		if !curRoutes[name] {
			ch.RemovedRoutes = append(ch.RemovedRoutes, name)
		}
	}
	oldSites := map[string]*ccv1.EdgeSite{}
	for _, s := range old.GetSites() {
		oldSites[s.Name] = s
	}
	curSites := map[string]bool{}
	for _, s := range cur.GetSites() {
		curSites[s.Name] = true
		if o := oldSites[s.Name]; o == nil || !proto.Equal(o, s) {
			ch.UpdatedSites = append(ch.UpdatedSites, s)
		}
	}
	for name := range oldSites {
		if !curSites[name] {
			ch.RemovedSites = append(ch.RemovedSites, name)
		}
	}
	if !relaysEqual(old.GetRelays(), cur.GetRelays()) {
		ch.Relays, ch.SetRelays = cur.GetRelays(), true
	}
	if len(ch.UpdatedRoutes) == 0 && len(ch.RemovedRoutes) == 0 && len(ch.UpdatedSites) == 0 && len(ch.RemovedSites) == 0 && !ch.SetRelays {
		return nil
	}
	sort.Slice(ch.UpdatedRoutes, func(i, j int) bool { return ch.UpdatedRoutes[i].Name < ch.UpdatedRoutes[j].Name })
	sort.Slice(ch.UpdatedSites, func(i, j int) bool { return ch.UpdatedSites[i].Name < ch.UpdatedSites[j].Name })
	sort.Strings(ch.RemovedRoutes)
	sort.Strings(ch.RemovedSites)
	return ch
}

// Apply returns cfg with the changes made (cfg itself is not modified).
func Apply(cfg *ccv1.EdgeConfig, ch *ccv1.EdgeChanges) *ccv1.EdgeConfig {
	routes := map[string]*ccv1.EdgeRoute{}
	for _, r := range cfg.GetRoutes() {
		routes[r.Name] = r
	}
	for _, name := range ch.GetRemovedRoutes() {
		delete(routes, name)
	}
	for _, r := range ch.GetUpdatedRoutes() {
		routes[r.Name] = r
	}
	sites := map[string]*ccv1.EdgeSite{}
	for _, s := range cfg.GetSites() {
		sites[s.Name] = s
	}
	for _, name := range ch.GetRemovedSites() {
		delete(sites, name)
	}
	for _, s := range ch.GetUpdatedSites() {
		sites[s.Name] = s
	}
	out := &ccv1.EdgeConfig{Relays: cfg.GetRelays()}
	if ch.GetSetRelays() {
		out.Relays = ch.GetRelays()
	}
	for _, r := range routes {
		out.Routes = append(out.Routes, r)
	}
	for _, s := range sites {
		out.Sites = append(out.Sites, s)
	}
	sort.Slice(out.Routes, func(i, j int) bool { return out.Routes[i].Name < out.Routes[j].Name })
	sort.Slice(out.Sites, func(i, j int) bool { return out.Sites[i].Name < out.Sites[j].Name })
	return out
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
