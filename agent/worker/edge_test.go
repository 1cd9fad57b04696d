package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/containercodes/cc/agent/relay"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/sitebundle"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func edgeWorker(t *testing.T) *Worker {
	log := logging.Test(t)
	w := &Worker{cfg: Config{DataDir: t.TempDir(), Logger: log}, log: log, kick: make(chan struct{}, 1),
		edgeKick: make(chan struct{}, 1), relays: relay.New("127.0.0.1", log)}
	t.Cleanup(w.relays.Close)
	return w
}

func TestSetEdgeSequence(t *testing.T) {
	w := edgeWorker(t)
	var next uint64
	route := func(v uint64) *ccv1.EdgeRoute { return &ccv1.EdgeRoute{Name: "web", Version: v} }
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 2, Msg: &ccv1.EdgeUpdate_Changes{Changes: &ccv1.EdgeChanges{}}}, &next); err == nil {
		t.Fatal("changes before a full set were taken")
	}
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 1, Msg: &ccv1.EdgeUpdate_Full{Full: &ccv1.EdgeConfig{Routes: []*ccv1.EdgeRoute{route(1)}}}}, &next); err != nil {
		t.Fatal(err)
	}
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 2, Msg: &ccv1.EdgeUpdate_Changes{Changes: &ccv1.EdgeChanges{UpdatedRoutes: []*ccv1.EdgeRoute{route(2)},
		Relays: []*ccv1.Relay{{ContainerId: "c", Port: 80}}, SetRelays: true}}}, &next); err != nil {
		t.Fatal(err)
	}
	if w.edgeCfg.Routes[0].Version != 2 || len(w.edgeCfg.Relays) != 1 {
		t.Fatalf("config after changes: %v", w.edgeCfg)
	}
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 4, Msg: &ccv1.EdgeUpdate_Changes{Changes: &ccv1.EdgeChanges{}}}, &next); err == nil {
		t.Fatal("a gap went unnoticed")
	}
}

func TestSyncRelaysKeepsPortBetweenRuns(t *testing.T) {
	w := edgeWorker(t)
	w.edgeCfg = &ccv1.EdgeConfig{Relays: []*ccv1.Relay{{ContainerId: "c", Port: 80}, {ContainerId: "d", Port: 80}}}
	w.syncRelays(map[string]runtimeView{"c": {running: true, ip: "10.0.0.2"}, "d": {running: false}})
	ps := w.relays.Ports("c")
	if len(ps) != 1 || ps[0].ContainerPort != 80 || ps[0].HostPort == 0 {
		t.Fatalf("relays of c: %v", ps)
	}
	if len(w.relays.Ports("d")) != 0 {
		t.Fatal("a relay opened for a container without an address")
	}
	// Between runs, the relay stays where it is.
	w.syncRelays(map[string]runtimeView{})
	if got := w.relays.Ports("c"); len(got) != 1 || got[0].HostPort != ps[0].HostPort {
		t.Fatalf("relay of a restarting container: %v, want port %d", got, ps[0].HostPort)
	}
	w.edgeCfg = &ccv1.EdgeConfig{}
	w.syncRelays(map[string]runtimeView{"c": {running: true, ip: "10.0.0.2"}})
	if len(w.relays.Ports("c")) != 0 {
		t.Fatal("a relay no route wants is still open")
	}
}

func TestReachable(t *testing.T) {
	r := &ccv1.EdgeRoute{Name: "web", Endpoints: []*ccv1.Endpoint{
		{Id: "a", NodeId: "n1", LocalAddress: "10.0.1.2:80"},
		{Id: "b", NodeId: "n2", Address: "127.0.0.3:4000", LocalAddress: "10.0.2.2:80"},
		{Id: "up", Address: "192.0.2.1:80"},
	}}
	got := reachable([]*ccv1.EdgeRoute{r}, "n1")[0].Endpoints
	want := []string{"10.0.1.2:80", "127.0.0.3:4000", "192.0.2.1:80"}
	for i, ep := range got {
		if ep.Address != want[i] {
			t.Errorf("endpoint %s: address %q, want %q", ep.Id, ep.Address, want[i])
		}
	}
	if r.Endpoints[0].Address != "" {
		t.Error("the session's config was modified")
	}
}

func TestSitesUnpackedAndRemoved(t *testing.T) {
	w := edgeWorker(t)
	// A bundle as the control plane builds it from a site's tar.gz.
	var src bytes.Buffer
	zw := gzip.NewWriter(&src)
	tw := tar.NewWriter(zw)
	body := []byte("<h1>hi</h1>")
	tw.WriteHeader(&tar.Header{Name: "index.html", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	zw.Close()
	var buf bytes.Buffer
	if _, err := sitebundle.Build(context.Background(), &src, &buf, sitebundle.Limits{}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	hexd := hex.EncodeToString(sum[:])
	digest := "sha256:" + hexd
	// Already fetched: no control plane needed.
	if err := os.MkdirAll(w.edgeDir("bundles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.edgeDir("bundles", hexd+".bundle"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sites := []*ccv1.EdgeSite{{Name: "docs", BundleDigest: digest}, {Name: "bad", BundleDigest: "md5:x"}}
	dirs, complete := w.syncSites(context.Background(), sites)
	if complete {
		t.Error("a bad digest counted as fetched")
	}
	dir := dirs[digest]
	if b, err := os.ReadFile(filepath.Join(dir, sitebundle.FilesPrefix+"index.html")); err != nil || string(b) != string(body) {
		t.Fatalf("unpacked site: %q, %v", b, err)
	}
	w.removeUnusedSites(sites)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a used site was removed: %v", err)
	}
	w.removeUnusedSites(nil)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("an unused site is still there: %v", err)
	}
	if _, err := os.Stat(w.edgeDir("bundles", hexd+".bundle")); !os.IsNotExist(err) {
		t.Fatalf("an unused bundle is still there: %v", err)
	}
}
