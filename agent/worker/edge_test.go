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
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/containercodes/cc/agent/edge"
	"github.com/containercodes/cc/agent/identity"

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

// stuckFetch is a control plane whose blob downloads never end.
type stuckFetch struct {
	ccv1.AgentServiceClient
	started chan string
}

func (f *stuckFetch) FetchBlob(ctx context.Context, in *ccv1.FetchBlobRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ccv1.FetchBlobResponse], error) {
	f.started <- in.Digest
	<-ctx.Done()
	return nil, ctx.Err()
}

// edgeRecorder keeps the configurations the worker hands to the edge.
type edgeRecorder struct{ got chan edge.Config }

func (r *edgeRecorder) Update(cfg edge.Config) { r.got <- cfg }

// A site's bundle that takes its time delays neither the certificates
// nor the ACME challenges, nor the routes.
func TestEdgeLoopDoesNotWaitForBundles(t *testing.T) {
	w := edgeWorker(t)
	fetch := &stuckFetch{started: make(chan string, 4)}
	rec := &edgeRecorder{got: make(chan edge.Config, 16)}
	w.client = fetch
	w.cfg.Edge = rec
	w.cfg.Identity = &identity.Identity{NodeID: "n1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.edgeLoop(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	digest := "sha256:" + strings.Repeat("ab", 32)
	var next uint64
	full := &ccv1.EdgeConfig{
		Routes: []*ccv1.EdgeRoute{{Name: "web"}},
		Sites:  []*ccv1.EdgeSite{{Name: "docs", BundleDigest: digest}},
		Certs:  []*ccv1.EdgeCert{{Name: "c1", Version: 1}},
	}
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 1, Msg: &ccv1.EdgeUpdate_Full{Full: full}}, &next); err != nil {
		t.Fatal(err)
	}
	if d := <-fetch.started; d != digest {
		t.Fatalf("fetching %s", d)
	}
	cfg := <-rec.got
	if len(cfg.Routes) != 1 || len(cfg.Certs) != 1 || len(cfg.Sites) != 1 || cfg.SiteDirs[digest] != "" {
		t.Fatalf("first configuration: %+v", cfg)
	}
	// A challenge arrives while the bundle is still on its way.
	ch := &ccv1.ACMEChallenge{Type: "http-01", Host: "a.example", Token: "tok", KeyAuthorization: "tok.k"}
	if err := w.setEdge(&ccv1.EdgeUpdate{Seq: 2, Msg: &ccv1.EdgeUpdate_Changes{Changes: &ccv1.EdgeChanges{
		Challenges: []*ccv1.ACMEChallenge{ch}, SetChallenges: true,
		UpdatedCerts: []*ccv1.EdgeCert{{Name: "c1", Version: 2}},
		Tls:          &ccv1.EdgeTLSSettings{Http3: true},
	}}}, &next); err != nil {
		t.Fatal(err)
	}
	cfg = <-rec.got
	if len(cfg.Challenges) != 1 || cfg.Challenges[0].Token != "tok" || cfg.Certs[0].Version != 2 || !cfg.TLS.GetHttp3() {
		t.Fatalf("the challenge waited for the bundle: %+v", cfg)
	}
}

// A site whose new bundle is not here yet keeps the version served.
func TestKeepServed(t *testing.T) {
	old := &ccv1.EdgeSite{Name: "docs", Version: 1, BundleDigest: "sha256:old"}
	cur := &ccv1.EdgeSite{Name: "docs", Version: 2, BundleDigest: "sha256:new"}
	fresh := &ccv1.EdgeSite{Name: "blog", Version: 1, BundleDigest: "sha256:blog"}
	dirs := map[string]string{}
	got := keepServed([]*ccv1.EdgeSite{cur, fresh}, []*ccv1.EdgeSite{old}, map[string]string{"sha256:old": "/d/old"}, dirs)
	if got[0] != old || got[1] != fresh || dirs["sha256:old"] != "/d/old" || len(dirs) != 1 {
		t.Fatalf("got %v, dirs %v", got, dirs)
	}
}
