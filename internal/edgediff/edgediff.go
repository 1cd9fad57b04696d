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
// they are equal. Routes, sites and certificates go by name (updated or
// removed); relays and ACME challenges are sent whole (set_relays,
// set_challenges) when they changed, and the TLS settings (tls) when they
// changed (empty settings when the new configuration has none).
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
	oldCerts := map[string]*ccv1.EdgeCert{}
	for _, c := range old.GetCerts() {
		oldCerts[c.Name] = c
	}
	curCerts := map[string]bool{}
	for _, c := range cur.GetCerts() {
		curCerts[c.Name] = true
		if o := oldCerts[c.Name]; o == nil || !proto.Equal(o, c) {
			ch.UpdatedCerts = append(ch.UpdatedCerts, c)
		}
	}
	for name := range oldCerts {
		if !curCerts[name] {
			ch.RemovedCerts = append(ch.RemovedCerts, name)
		}
	}
	if !challengesEqual(old.GetChallenges(), cur.GetChallenges()) {
		ch.Challenges, ch.SetChallenges = cur.GetChallenges(), true
	}
	if !settingsEqual(old.GetTls(), cur.GetTls()) {
		ch.Tls = cur.GetTls()
		if ch.Tls == nil {
			ch.Tls = &ccv1.EdgeTLSSettings{}
		}
	}
	if len(ch.UpdatedRoutes) == 0 && len(ch.RemovedRoutes) == 0 && len(ch.UpdatedSites) == 0 && len(ch.RemovedSites) == 0 && !ch.SetRelays &&
		len(ch.UpdatedCerts) == 0 && len(ch.RemovedCerts) == 0 && !ch.SetChallenges && ch.Tls == nil {
		return nil
	}
	sort.Slice(ch.UpdatedCerts, func(i, j int) bool { return ch.UpdatedCerts[i].Name < ch.UpdatedCerts[j].Name })
	sort.Strings(ch.RemovedCerts)
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
	certs := map[string]*ccv1.EdgeCert{}
	for _, c := range cfg.GetCerts() {
		certs[c.Name] = c
	}
	for _, name := range ch.GetRemovedCerts() {
		delete(certs, name)
	}
	for _, c := range ch.GetUpdatedCerts() {
		certs[c.Name] = c
	}
	out := &ccv1.EdgeConfig{Relays: cfg.GetRelays(), Challenges: cfg.GetChallenges(), Tls: cfg.GetTls()}
	if ch.GetSetRelays() {
		out.Relays = ch.GetRelays()
	}
	if ch.GetSetChallenges() {
		out.Challenges = ch.GetChallenges()
	}
	if t := ch.GetTls(); t != nil {
		out.Tls = t
		if proto.Size(t) == 0 {
			out.Tls = nil // no settings, as Diff sends them
		}
	}
	for _, c := range certs {
		out.Certs = append(out.Certs, c)
	}
	sort.Slice(out.Certs, func(i, j int) bool { return out.Certs[i].Name < out.Certs[j].Name })
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

func challengesEqual(a, b []*ccv1.ACMEChallenge) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// settingsEqual compares TLS settings, no settings being empty ones.
func settingsEqual(a, b *ccv1.EdgeTLSSettings) bool {
	if proto.Size(a) == 0 && proto.Size(b) == 0 {
		return true
	}
	return proto.Equal(a, b)
}
