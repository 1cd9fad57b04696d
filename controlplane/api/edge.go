package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/edgeconfig"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/session"
	"github.com/containercodes/cc/internal/sitebundle"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultMaxSiteUpload is the largest tar.gz of a site DeploySite accepts
// unless EdgeOptions says otherwise.
const DefaultMaxSiteUpload int64 = 1 << 30

// siteTempPattern names the bundles being built in the temporary directory.
const siteTempPattern = "site-bundle-*"

// EdgeService implements cc.v1.EdgeService: routes and sites as raft
// records, site bundles in the replicated blob store.
type EdgeService struct {
	ccv1.UnimplementedEdgeServiceServer

	core      *Core
	blobs     *blobs.Store
	tmpDir    string
	maxUpload int64
	log       *slog.Logger
}

// EdgeOptions are what an EdgeService needs besides the core and the blobs.
type EdgeOptions struct {
	// TempDir holds a bundle while it is built; "" is the system's. Files
	// a crash left there are removed.
	TempDir string
	// MaxUpload bounds the tar.gz of a site (0: DefaultMaxSiteUpload).
	MaxUpload int64
	Logger    *slog.Logger
}

// NewEdgeService returns the edge API over the core and the replicated
// blob store, which holds the site bundles.
func NewEdgeService(core *Core, store *blobs.Store, o EdgeOptions) (*EdgeService, error) {
	e := &EdgeService{core: core, blobs: store, tmpDir: o.TempDir, maxUpload: o.MaxUpload, log: o.Logger}
	if e.log == nil {
		e.log = core.Log
	}
	if e.maxUpload <= 0 {
		e.maxUpload = DefaultMaxSiteUpload
	}
	if err := prepareTempDir(e.tmpDir, siteTempPattern); err != nil {
		return nil, fmt.Errorf("edge temporary directory: %w", err)
	}
	return e, nil
}

// Register adds the service to a gRPC server.
func (e *EdgeService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterEdgeServiceServer(g, e)
}

// lowerHosts writes hosts in lowercase, as they are matched.
func lowerHosts(hosts []string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = strings.ToLower(strings.TrimSpace(h))
	}
	return out
}

// routeSpec checks a route as the state machine will and that its service
// exists, so that the caller hears of a mistake before anything is written.
func (e *EdgeService) routeSpec(name string, in *ccv1.RouteSpec) (*ccv1.RouteSpec, error) {
	if err := fsm.ValidEdgeName("route", name); err != nil {
		return nil, err
	}
	if in == nil {
		return nil, fmt.Errorf("%w: route %s: spec is required (hosts, and a service and port or upstreams)", ErrInvalidArgument, name)
	}
	in = proto.Clone(in).(*ccv1.RouteSpec)
	in.Hosts = lowerHosts(in.Hosts)
	spec, err := fsm.NormalizeRouteSpec(in)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", name, err)
	}
	if spec.Service != "" {
		if _, err := e.core.FSM.ServiceIDByName(spec.Service); errors.Is(err, fsm.ErrNotFound) {
			return nil, fmt.Errorf("route %s: service %s not found; create it first (ccctl service create): %w", name, spec.Service, fsm.ErrNotFound)
		} else if err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// CreateRoute implements EdgeService.
func (e *EdgeService) CreateRoute(ctx context.Context, req *ccv1.CreateRouteRequest) (*ccv1.CreateRouteResponse, error) {
	spec, err := e.routeSpec(req.GetName(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_ROUTE, &statev1.PutRoute{
		Route: &ccv1.Route{Name: req.Name, Spec: spec}, Create: true}); err != nil {
		return nil, err
	}
	r, err := e.core.FSM.Route(req.Name)
	if err != nil {
		return nil, err
	}
	e.log.Info("route created", "route", r.Name, "hosts", r.Spec.Hosts, "path", r.Spec.PathPrefix)
	return &ccv1.CreateRouteResponse{Route: r}, nil
}

// UpdateRoute implements EdgeService.
func (e *EdgeService) UpdateRoute(ctx context.Context, req *ccv1.UpdateRouteRequest) (*ccv1.UpdateRouteResponse, error) {
	spec, err := e.routeSpec(req.GetName(), req.GetSpec())
	if err != nil {
		return nil, err
	}
	// A spec without a set stays in the route's set: the set is who
	// manages the route, not a setting a caller is expected to repeat.
	if spec.Set == "" {
		if cur, err := e.core.FSM.Route(req.Name); err == nil {
			spec.Set = cur.GetSpec().GetSet()
		}
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_ROUTE, &statev1.PutRoute{
		Route: &ccv1.Route{Name: req.Name, Spec: spec}, ExpectVersion: req.Version}); err != nil {
		return nil, err
	}
	r, err := e.core.FSM.Route(req.Name)
	if err != nil {
		return nil, err
	}
	e.log.Info("route updated", "route", r.Name, "version", r.Version)
	return &ccv1.UpdateRouteResponse{Route: r}, nil
}

// GetRoute implements EdgeService: the route and its endpoints, resolved
// as the sessions resolve them for the edge nodes.
func (e *EdgeService) GetRoute(ctx context.Context, req *ccv1.GetRouteRequest) (*ccv1.GetRouteResponse, error) {
	r, err := e.core.FSM.Route(req.GetName())
	if err != nil {
		return nil, err
	}
	st, err := session.EdgeState(e.core.FSM)
	if err != nil {
		return nil, err
	}
	r.Endpoints = edgeconfig.Endpoints(r, st)
	return &ccv1.GetRouteResponse{Route: r}, nil
}

// ListRoutes implements EdgeService.
func (e *EdgeService) ListRoutes(ctx context.Context, _ *ccv1.ListRoutesRequest) (*ccv1.ListRoutesResponse, error) {
	rs, err := e.core.FSM.Routes()
	if err != nil {
		return nil, err
	}
	return &ccv1.ListRoutesResponse{Routes: rs}, nil
}

// RemoveRoute implements EdgeService.
func (e *EdgeService) RemoveRoute(ctx context.Context, req *ccv1.RemoveRouteRequest) (*ccv1.RemoveRouteResponse, error) {
	if _, err := e.core.FSM.Route(req.GetName()); err != nil {
		return nil, err
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_ROUTE, &statev1.RemoveRoute{Name: req.Name}); err != nil {
		return nil, err
	}
	e.log.Info("route removed", "route", req.Name)
	return &ccv1.RemoveRouteResponse{}, nil
}

// ApplyRoutes implements EdgeService. The difference is worked out from
// the state as this server has it; the write checks it all again.
func (e *EdgeService) ApplyRoutes(ctx context.Context, req *ccv1.ApplyRoutesRequest) (*ccv1.ApplyRoutesResponse, error) {
	if err := fsm.ValidEdgeName("set", req.GetSet()); err != nil {
		return nil, err
	}
	routes := make([]*ccv1.Route, 0, len(req.Routes))
	for _, r := range req.Routes {
		in := proto.Clone(r.GetSpec()).(*ccv1.RouteSpec)
		if in == nil {
			in = &ccv1.RouteSpec{}
		}
		in.Set = req.Set
		spec, err := e.routeSpec(r.GetName(), in)
		if err != nil {
			return nil, err
		}
		routes = append(routes, &ccv1.Route{Name: r.Name, Spec: spec})
	}
	plan, err := e.core.FSM.PlanApplyRoutes(req.Set, routes, e.core.now())
	if err != nil {
		return nil, err
	}
	resp := &ccv1.ApplyRoutesResponse{Created: plan.Created, Updated: plan.Updated, Removed: plan.Removed, Unchanged: plan.Unchanged}
	if req.DryRun {
		return resp, nil
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_APPLY_ROUTES, &statev1.ApplyRoutes{Set: req.Set, Routes: routes}); err != nil {
		return nil, err
	}
	e.log.Info("routes applied", "set", req.Set, "created", len(plan.Created), "updated", len(plan.Updated), "removed", len(plan.Removed))
	return resp, nil
}

// siteSpec checks a deploy's spec; nil (keep the site's spec) stays nil.
func siteSpec(name string, in *ccv1.SiteSpec) (*ccv1.SiteSpec, error) {
	if in == nil {
		return nil, nil
	}
	in = proto.Clone(in).(*ccv1.SiteSpec)
	in.Hosts = lowerHosts(in.Hosts)
	spec, err := fsm.NormalizeSiteSpec(in)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", name, err)
	}
	return spec, nil
}

// DeploySite implements EdgeService: the tar.gz streams into the bundle
// builder, the bundle into a temporary file, from there into the
// replicated blob store (on a majority of servers before the deploy is
// written), then DEPLOY_SITE makes it the current version.
func (e *EdgeService) DeploySite(stream ccv1.EdgeService_DeploySiteServer) error {
	if err := e.core.Disk.Check(); err != nil {
		return err
	}
	ctx := stream.Context()
	hdr, err := uploadHeader[*ccv1.DeploySiteRequest, *ccv1.DeploySiteHeader](stream.Recv)
	if err != nil {
		return err
	}
	if err := fsm.ValidEdgeName("site", hdr.Name); err != nil {
		return err
	}
	spec, err := siteSpec(hdr.Name, hdr.Spec)
	if err != nil {
		return err
	}
	if spec == nil {
		if _, err := e.core.FSM.Site(hdr.Name); err != nil {
			return fmt.Errorf("%w: give its host to create it (ccctl site deploy %s DIR --host HOST)", err, hdr.Name)
		}
	}
	sum := strings.TrimPrefix(hdr.Sha256, "sha256:")
	switch {
	case hdr.Size < 0:
		return invalidArg("header: size %d is negative", hdr.Size)
	case hdr.Size > e.maxUpload:
		return invalidArg("the site's archive is %d bytes, more than this server's limit of %d", hdr.Size, e.maxUpload)
	case sum != "" && !blobs.IsHex64(sum):
		return invalidArg("header: sha256 %q is not 64 lowercase hex digits", hdr.Sha256)
	}

	tmp, err := os.CreateTemp(e.tmpDir, siteTempPattern)
	if err != nil {
		return fmt.Errorf("site bundle: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	body := &checkedUpload{r: uploadBody(stream.Recv), limit: e.maxUpload, h: sha256.New()}
	info, err := sitebundle.Build(ctx, body, tmp, sitebundle.Limits{})
	if body.err != nil {
		return body.err
	}
	if err != nil {
		if errors.Is(err, sitebundle.ErrInvalid) {
			return invalidArg("site %s: %v", hdr.Name, err)
		}
		return fmt.Errorf("site %s: build the bundle: %w", hdr.Name, err)
	}
	notFound := spec.GetNotFound()
	if spec == nil {
		if cur, err := e.core.FSM.Site(hdr.Name); err == nil {
			notFound = cur.GetSpec().GetNotFound()
		}
	}
	if nf := strings.Trim(notFound, "/"); nf != "" && info.Manifest.Lookup(path.Clean(nf)) == nil {
		return invalidArg("site %s: the not-found page %s is not among the site's files; add it to the directory or change --not-found", hdr.Name, notFound)
	}
	// The builder may stop before the end (the tar's end marker); what
	// follows still counts for the size and digest.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return err
	}
	if hdr.Size > 0 && body.n != hdr.Size {
		return invalidArg("the upload was %d bytes; its header gave %d", body.n, hdr.Size)
	}
	if got := hex.EncodeToString(body.h.Sum(nil)); sum != "" && got != sum {
		return invalidArg("the upload does not match the header's sha256 (got %s)", got)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	digest, size, _, _, err := e.blobs.StoreReplicated(ctx, tmp, blobs.Upload{What: "the site bundle", Size: size, Limit: size})
	if err != nil {
		return err
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_DEPLOY_SITE, &statev1.DeploySite{
		Name: hdr.Name, Spec: spec,
		Version: &ccv1.SiteVersion{BundleDigest: digest, BundleSize: size, Files: info.Files, ContentBytes: info.ContentBytes},
	}); err != nil {
		return err
	}
	site, err := e.core.FSM.Site(hdr.Name)
	if err != nil {
		return err
	}
	e.log.Info("site deployed", "site", site.Name, "version", site.Current, "digest", digest, "files", info.Files)
	return stream.SendAndClose(&ccv1.DeploySiteResponse{Site: site})
}

// checkedUpload counts and hashes the bytes of an upload and stops at
// limit; err is the upload's own failure (as opposed to the reader's).
type checkedUpload struct {
	r     io.Reader
	n     int64
	limit int64
	h     hash.Hash
	err   error
}

func (c *checkedUpload) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if c.n > c.limit {
		c.err = invalidArg("the site's archive is larger than this server's limit of %d bytes", c.limit)
		return n, c.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// GetSite implements EdgeService.
func (e *EdgeService) GetSite(ctx context.Context, req *ccv1.GetSiteRequest) (*ccv1.GetSiteResponse, error) {
	s, err := e.core.FSM.Site(req.GetName())
	if err != nil {
		return nil, err
	}
	return &ccv1.GetSiteResponse{Site: s}, nil
}

// ListSites implements EdgeService.
func (e *EdgeService) ListSites(ctx context.Context, _ *ccv1.ListSitesRequest) (*ccv1.ListSitesResponse, error) {
	ss, err := e.core.FSM.Sites()
	if err != nil {
		return nil, err
	}
	return &ccv1.ListSitesResponse{Sites: ss}, nil
}

// RollbackSite implements EdgeService.
func (e *EdgeService) RollbackSite(ctx context.Context, req *ccv1.RollbackSiteRequest) (*ccv1.RollbackSiteResponse, error) {
	if _, err := e.core.FSM.Site(req.GetName()); err != nil {
		return nil, err
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ROLLBACK_SITE, &statev1.RollbackSite{Name: req.Name, Version: req.Version}); err != nil {
		return nil, err
	}
	s, err := e.core.FSM.Site(req.Name)
	if err != nil {
		return nil, err
	}
	e.log.Info("site rolled back", "site", s.Name, "version", s.Current)
	return &ccv1.RollbackSiteResponse{Site: s}, nil
}

// RemoveSite implements EdgeService. The bundles go with the blob
// collection, once no record refers to them.
func (e *EdgeService) RemoveSite(ctx context.Context, req *ccv1.RemoveSiteRequest) (*ccv1.RemoveSiteResponse, error) {
	if _, err := e.core.FSM.Site(req.GetName()); err != nil {
		return nil, err
	}
	if err := e.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_SITE, &statev1.RemoveSite{Name: req.Name}); err != nil {
		return nil, err
	}
	e.log.Info("site removed", "site", req.Name)
	return &ccv1.RemoveSiteResponse{}, nil
}
