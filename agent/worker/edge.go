package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/agent/edge"
	"github.com/containercodes/cc/agent/relay"
	"github.com/containercodes/cc/internal/edgediff"
	"github.com/containercodes/cc/internal/sitebundle"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Edge serves a node's routes, sites and certificates (package
// agent/edge); the worker gives it every new configuration. Each
// endpoint's address is the one to dial from this node: the task's bridge
// address for this node's tasks, the other node's relay for the others.
// SiteDirs maps a bundle digest to the directory it is unpacked in (a site
// whose bundle is not there yet has no entry).
type Edge interface {
	Update(cfg edge.Config)
}

// edgeRetry is the wait before fetching a site's bundle again.
const edgeRetry = 5 * time.Second

// setEdge takes an edge update from the session; an error is a gap in the
// sequence (the session must start over for a full set).
func (w *Worker) setEdge(u *ccv1.EdgeUpdate, next *uint64) error {
	w.mu.Lock()
	switch m := u.Msg.(type) {
	case *ccv1.EdgeUpdate_Full:
		w.edgeCfg = m.Full
		*next = u.Seq + 1
	case *ccv1.EdgeUpdate_Changes:
		if u.Seq != *next || w.edgeCfg == nil {
			w.mu.Unlock()
			return fmt.Errorf("edge sequence gap: got %d, want %d; resyncing", u.Seq, *next)
		}
		w.edgeCfg = edgediff.Apply(w.edgeCfg, m.Changes)
		*next++
	}
	w.mu.Unlock()
	w.poke() // relays
	select {
	case w.edgeKick <- struct{}{}:
	default:
	}
	return nil
}

// syncRelays runs a relay for each (container, port) of the edge
// configuration whose container runs here with an address; a relay whose
// container is between runs keeps its port.
func (w *Worker) syncRelays(observed map[string]runtimeView) {
	w.mu.Lock()
	var want []*ccv1.Relay
	if w.edgeCfg != nil {
		want = w.edgeCfg.Relays
	}
	w.mu.Unlock()
	m := make(map[relay.Key]string, len(want))
	for _, r := range want {
		target := ""
		if o, ok := observed[r.ContainerId]; ok && o.running && o.ip != "" {
			target = net.JoinHostPort(o.ip, strconv.Itoa(int(r.Port)))
		}
		m[relay.Key{ContainerID: r.ContainerId, Port: r.Port}] = target
	}
	if err := w.relays.Sync(m); err != nil {
		w.log.Warn("some relays could not listen", "err", err)
	}
}

// runtimeView is what syncRelays needs of an observed container.
type runtimeView struct {
	running bool
	ip      string
}

// edgeLoop hands each new configuration to the edge, until ctx ends.
// Sites' bundles are fetched and unpacked in the background, one batch at
// a time: meanwhile the rest of the configuration (routes, certificates,
// ACME challenges, which are time-critical) goes through at once, and a
// site whose new bundle is not here yet keeps serving the version the edge
// had (a new site answers 503 until its bundle is here).
func (w *Worker) edgeLoop(ctx context.Context) {
	var (
		lastCfg   *ccv1.EdgeConfig
		lastSites []*ccv1.EdgeSite // as handed to the edge
		lastDirs  map[string]string
		fetching  bool
	)
	fetched := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.edgeKick:
		case <-fetched:
			fetching = false
		}
		w.mu.Lock()
		cfg := w.edgeCfg
		w.mu.Unlock()
		if cfg == nil || w.cfg.Edge == nil {
			continue
		}
		dirs := map[string]string{}
		var missing []*ccv1.EdgeSite
		for _, st := range cfg.Sites {
			if dir, ok := w.siteDir(st.BundleDigest); ok {
				dirs[st.BundleDigest] = dir
			} else {
				missing = append(missing, st)
			}
		}
		if len(missing) > 0 && !fetching {
			fetching = true
			go func() {
				if _, complete := w.syncSites(ctx, missing); !complete {
					t := time.NewTimer(edgeRetry)
					select {
					case <-ctx.Done():
					case <-t.C:
					}
					t.Stop()
				}
				fetched <- struct{}{}
			}()
		}
		sites := cfg.Sites
		if len(missing) > 0 {
			sites = keepServed(cfg.Sites, lastSites, lastDirs, dirs)
		}
		if lastCfg != nil && proto.Equal(lastCfg, cfg) && maps.Equal(lastDirs, dirs) && slices.Equal(lastSites, sites) {
			continue
		}
		w.cfg.Edge.Update(edge.Config{
			Routes:     reachable(cfg.Routes, w.cfg.Identity.NodeID),
			Sites:      sites,
			SiteDirs:   dirs,
			Certs:      cfg.Certs,
			Challenges: cfg.Challenges,
			TLS:        cfg.Tls,
		})
		lastCfg, lastSites, lastDirs = cfg, sites, dirs
		if len(missing) == 0 && !fetching {
			w.removeUnusedSites(cfg.Sites)
		}
	}
}

// keepServed is sites with each one whose bundle is not here yet replaced
// by the version the edge serves (given last and lastDirs), when that
// one's bundle is here; dirs gains those bundles' directories.
func keepServed(sites, last []*ccv1.EdgeSite, lastDirs, dirs map[string]string) []*ccv1.EdgeSite {
	served := map[string]*ccv1.EdgeSite{}
	for _, st := range last {
		if lastDirs[st.BundleDigest] != "" {
			served[st.Name] = st
		}
	}
	out := make([]*ccv1.EdgeSite, 0, len(sites))
	for _, st := range sites {
		if _, ok := dirs[st.BundleDigest]; !ok {
			if old := served[st.Name]; old != nil {
				st = old
				dirs[old.BundleDigest] = lastDirs[old.BundleDigest]
			}
		}
		out = append(out, st)
	}
	return out
}

// reachable returns the routes with each endpoint's address the one to
// dial from this node.
func reachable(routes []*ccv1.EdgeRoute, nodeID string) []*ccv1.EdgeRoute {
	out := make([]*ccv1.EdgeRoute, 0, len(routes))
	for _, r := range routes {
		local := false
		for _, ep := range r.Endpoints {
			if ep.NodeId == nodeID && ep.LocalAddress != "" && ep.Address != ep.LocalAddress {
				local = true
				break
			}
		}
		if !local {
			out = append(out, r)
			continue
		}
		c := &ccv1.EdgeRoute{Name: r.Name, Spec: r.Spec, Version: r.Version, Endpoints: make([]*ccv1.Endpoint, len(r.Endpoints))}
		for i, ep := range r.Endpoints {
			if ep.NodeId == nodeID && ep.LocalAddress != "" {
				ep = proto.Clone(ep).(*ccv1.Endpoint)
				ep.Address = ep.LocalAddress
			}
			c.Endpoints[i] = ep
		}
		out = append(out, c)
	}
	return out
}

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

func (w *Worker) edgeDir(parts ...string) string {
	return filepath.Join(append([]string{w.cfg.DataDir, "edge"}, parts...)...)
}

// syncSites makes sure every site's bundle is unpacked under
// <data-dir>/edge/sites/<hex>; complete is false when some could not be.
func (w *Worker) syncSites(ctx context.Context, sites []*ccv1.EdgeSite) (dirs map[string]string, complete bool) {
	dirs, complete = map[string]string{}, true
	for _, s := range sites {
		if _, ok := dirs[s.BundleDigest]; ok {
			continue
		}
		dir, err := w.ensureSite(ctx, s.BundleDigest)
		if err != nil {
			w.log.Warn("cannot fetch a site's bundle; retrying", "site", s.Name, "digest", s.BundleDigest, "err", err, "in", edgeRetry)
			complete = false
			continue
		}
		dirs[s.BundleDigest] = dir
	}
	return dirs, complete
}

// siteDir is the directory of a bundle unpacked already.
func (w *Worker) siteDir(digest string) (string, bool) {
	m := digestRE.FindStringSubmatch(digest)
	if m == nil {
		return "", false
	}
	dir := w.edgeDir("sites", m[1])
	if _, err := os.Stat(dir); err != nil {
		return "", false
	}
	return dir, true
}

func (w *Worker) ensureSite(ctx context.Context, digest string) (string, error) {
	m := digestRE.FindStringSubmatch(digest)
	if m == nil {
		return "", fmt.Errorf("bad bundle digest %q", digest)
	}
	hexd := m[1]
	dir := w.edgeDir("sites", hexd)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	bundle := w.edgeDir("bundles", hexd+".bundle")
	if err := w.fetchBundle(ctx, digest, hexd, bundle); err != nil {
		return "", err
	}
	f, err := os.Open(bundle)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// Unpack writes beside and renames into place: a directory that
	// exists is complete.
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	if err := sitebundle.Unpack(f, dir); err != nil {
		return "", fmt.Errorf("unpack bundle %s: %w", digest, err)
	}
	return dir, nil
}

// fetchBundle downloads a bundle to path unless it is there, checking its
// digest.
func (w *Worker) fetchBundle(ctx context.Context, digest, hexd, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rc, err := w.fetchBlob(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), hexd+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch bundle %s: %w", digest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
		return fmt.Errorf("fetch bundle %s: got content with digest sha256:%s", digest, got)
	}
	return os.Rename(tmp.Name(), path)
}

// removeUnusedSites removes the bundles and directories no site refers to.
func (w *Worker) removeUnusedSites(sites []*ccv1.EdgeSite) {
	used := map[string]bool{}
	for _, s := range sites {
		if m := digestRE.FindStringSubmatch(s.BundleDigest); m != nil {
			used[m[1]] = true
		}
	}
	for _, sub := range []string{"sites", "bundles"} {
		ents, err := os.ReadDir(w.edgeDir(sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if len(name) >= 64 && used[name[:64]] && (name == name[:64] || name == name[:64]+".bundle") {
				continue
			}
			if err := os.RemoveAll(w.edgeDir(sub, name)); err != nil {
				w.log.Warn("cannot remove an unused site bundle", "path", w.edgeDir(sub, name), "err", err)
			}
		}
	}
}
