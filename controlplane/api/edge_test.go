package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func siteArchive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func deploySite(t *testing.T, c ccv1.EdgeServiceClient, hdr *ccv1.DeploySiteHeader, data []byte) (*ccv1.Site, error) {
	t.Helper()
	stream, err := c.DeploySite(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Header{Header: hdr}}); err == nil {
		for len(data) > 0 {
			n := min(1000, len(data))
			if stream.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Chunk{Chunk: data[:n]}}) != nil {
				break
			}
			data = data[n:]
		}
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetSite(), err
}

func TestEdgeRoutesAndSites(t *testing.T) {
	s := testcluster.Start(t)
	c := ccv1.NewEdgeServiceClient(s.Conn(""))
	ctx := ctxT(t)

	_, err := c.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web", Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, Service: "web", Port: 80}})
	wantCode(t, err, codes.NotFound, "service web not found; create it first (ccctl service create)")
	_, err = c.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "Bad_Name", Spec: &ccv1.RouteSpec{Hosts: []string{"x"}}})
	wantCode(t, err, codes.InvalidArgument, "route name")

	spec := &ccv1.RouteSpec{Hosts: []string{"Web.Localhost"}, Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9000"}}}
	resp, err := c.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web", Spec: spec})
	if err != nil || resp.Route.Spec.Hosts[0] != "web.localhost" || resp.Route.Version != 1 || resp.Route.Spec.PathPrefix != "/" {
		t.Fatalf("create: %v %v", resp, err)
	}
	_, err = c.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web2", Spec: spec})
	wantCode(t, err, codes.AlreadyExists, "host web.localhost path / is held by route web")
	_, err = c.UpdateRoute(ctx, &ccv1.UpdateRouteRequest{Name: "web", Spec: spec, Version: 7})
	wantCode(t, err, codes.Aborted, "changed meanwhile")
	// A fixed upstream is its own endpoint, weight 1 by default.
	if g, err := c.GetRoute(ctx, &ccv1.GetRouteRequest{Name: "web"}); err != nil || len(g.Route.Endpoints) != 1 ||
		g.Route.Endpoints[0].Address != "127.0.0.1:9000" || g.Route.Endpoints[0].Weight != 1 {
		t.Fatalf("get: %v %v", g, err)
	}

	set := []*ccv1.Route{{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, PathPrefix: "/api/", Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9001"}}}}}
	plan, err := c.ApplyRoutes(ctx, &ccv1.ApplyRoutesRequest{Set: "edge", Routes: set, DryRun: true})
	if err != nil || len(plan.Created) != 1 {
		t.Fatalf("dry run: %v %v", plan, err)
	}
	if _, err := c.GetRoute(ctx, &ccv1.GetRouteRequest{Name: "api"}); err == nil {
		t.Fatal("a dry run wrote the route")
	}
	if _, err := c.ApplyRoutes(ctx, &ccv1.ApplyRoutesRequest{Set: "edge", Routes: set}); err != nil {
		t.Fatal(err)
	}
	if plan, _ := c.ApplyRoutes(ctx, &ccv1.ApplyRoutesRequest{Set: "edge", Routes: set, DryRun: true}); len(plan.GetUnchanged()) != 1 {
		t.Fatalf("second dry run: %v", plan)
	}
	list, err := c.ListRoutes(ctx, &ccv1.ListRoutesRequest{})
	if err != nil || len(list.Routes) != 2 || list.Routes[0].Spec.Set != "edge" {
		t.Fatalf("list: %v %v", list, err)
	}

	// An update without a set keeps the route in its set.
	up, err := c.UpdateRoute(ctx, &ccv1.UpdateRouteRequest{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"web.localhost"}, PathPrefix: "/api/", Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9002"}}}})
	if err != nil || up.Route.Spec.Set != "edge" || up.Route.Version != 2 {
		t.Fatalf("update of a set's route: %v %v", up, err)
	}

	data := siteArchive(t, map[string]string{"index.html": "<h1>hi</h1>"})
	_, err = deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs"}, data)
	wantCode(t, err, codes.NotFound, "give its host")
	_, err = deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}, Sha256: sha([]byte("other"))}, data)
	wantCode(t, err, codes.InvalidArgument, "sha256")
	// A not-found page the site lacks would serve a bare 404: refused.
	_, err = deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}, NotFound: "404.html"}}, data)
	wantCode(t, err, codes.InvalidArgument, "the not-found page 404.html is not among the site's files")
	site, err := deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}, Size: int64(len(data)), Sha256: sha(data)}, data)
	if err != nil || site.Current != 1 || len(site.Versions) != 1 {
		t.Fatalf("deploy: %v %v", site, err)
	}
	if !blobFiles(t, s)[site.Versions[0].BundleDigest] {
		t.Fatalf("bundle %s is not in the blob store", site.Versions[0].BundleDigest)
	}
	site, err = deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs"}, siteArchive(t, map[string]string{"index.html": "v2"}))
	if err != nil || site.Current != 2 {
		t.Fatalf("deploy 2: %v %v", site, err)
	}
	rb, err := c.RollbackSite(ctx, &ccv1.RollbackSiteRequest{Name: "docs"})
	if err != nil || rb.Site.Current != 1 {
		t.Fatalf("rollback: %v %v", rb, err)
	}
	_, err = c.RollbackSite(ctx, &ccv1.RollbackSiteRequest{Name: "docs", Version: 9})
	wantCode(t, err, codes.NotFound, "kept: 1, 2")
	if _, err := c.RemoveSite(ctx, &ccv1.RemoveSiteRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	if ss, err := c.ListSites(ctx, &ccv1.ListSitesRequest{}); err != nil || len(ss.Sites) != 0 {
		t.Fatalf("sites after remove: %v %v", ss, err)
	}
	if _, err := c.RemoveRoute(ctx, &ccv1.RemoveRouteRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
}

// An agent may fetch the bundle of a kept site version; once the site is
// gone, it may not.
func TestFetchSiteBundle(t *testing.T) {
	h := newJobHarness(t)
	_, agent, _ := h.node("n1")
	c := ccv1.NewEdgeServiceClient(h.srv.Conn(""))
	site, err := deploySite(t, c, &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}}, siteArchive(t, map[string]string{"a": "b"}))
	if err != nil {
		t.Fatal(err)
	}
	digest := site.Versions[0].BundleDigest
	fetch := func() (int, error) {
		st, err := agent.FetchBlob(ctxT(t), &ccv1.FetchBlobRequest{Digest: digest})
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			m, err := st.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return n, nil
				}
				return n, err
			}
			n += len(m.Data)
		}
	}
	if n, err := fetch(); err != nil || int64(n) != site.Versions[0].BundleSize {
		t.Fatalf("fetch bundle: %d bytes, %v", n, err)
	}
	if _, err := c.RemoveSite(ctxT(t), &ccv1.RemoveSiteRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	_, err = fetch()
	wantCode(t, err, codes.NotFound, "")
}
