package auth

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TokenStore finds a stored token by id.
type TokenStore interface {
	Token(id string) (*statev1.TokenRecord, error)
}

// NodeStore finds a node by id; a removed node is not found.
type NodeStore interface {
	Node(id string) (*ccv1.Node, error)
}

// Principal is who is calling: an API token, or a node (by certificate).
type Principal struct {
	TokenID  string
	Role     ccv1.Role
	NodeID   string
	ServerID string
}

// ErrUnauthenticated is the one answer a caller gets for any bad credential,
// so that a caller cannot probe which token ids exist.
var ErrUnauthenticated = errors.New("missing or invalid API token: pass a valid token as \"Authorization: Bearer <token>\" (ccctl: --token or CC_TOKEN)")

// ServerStore finds a control-plane server's record by id.
type ServerStore interface {
	Server(id string) (*statev1.ServerRecord, error)
}

// Authenticator checks bearer tokens and node and server certificates.
type Authenticator struct {
	store   TokenStore
	nodes   NodeStore
	servers ServerStore
	now     func() time.Time
	catchUp func(context.Context) error
	fresh   func(ctx context.Context, fullMethod string) error
	watch   func() <-chan struct{}
	recheck time.Duration
	limiter *RateLimiter
	refused func(*ccv1.AuditEvent)
}

// WithRateLimiter makes the authenticator throttle the calls made with an
// API token, and failed authentications, per the limiter's rules. Calls
// from an address it cannot tell (the REST gateway's in-memory
// connection, whose calls the HTTP middleware has counted) are counted
// per token only by the middleware, not again here.
func (a *Authenticator) WithRateLimiter(l *RateLimiter) *Authenticator {
	a.limiter = l
	return a
}

// WithFreshness makes the authenticator call fresh before it checks a bearer
// token, so that the token is checked against state that has caught up with
// the cluster (a revocation acknowledged by any server is seen here). An
// error from fresh refuses the call with Unavailable. fullMethod is the gRPC
// method, or "" for a plain HTTP request.
func (a *Authenticator) WithFreshness(fresh func(ctx context.Context, fullMethod string) error) *Authenticator {
	a.fresh = fresh
	return a
}

// DefaultRecheck is how often an open stream's token is checked again even
// when the state has not changed (for expiry).
const DefaultRecheck = time.Second

// WithWatch makes the stream interceptor re-check the token of every open
// stream when the state changes (watch returns a channel closed at the next
// change) and every recheck (DefaultRecheck when <= 0); a stream whose token
// was revoked, deleted or has expired ends with Unauthenticated.
func (a *Authenticator) WithWatch(watch func() <-chan struct{}, recheck time.Duration) *Authenticator {
	if recheck <= 0 {
		recheck = DefaultRecheck
	}
	a.watch, a.recheck = watch, recheck
	return a
}

// ErrTokenGone is wrapped by the answer (Unauthenticated) on a stream whose
// token was revoked or deleted, or expired, while the stream was open.
var ErrTokenGone = errors.New("the stream was ended; use a valid token")

// tokenState says why token id may no longer be used, or "".
func (a *Authenticator) tokenState(id string) string {
	rec, err := a.store.Token(id)
	switch {
	case err != nil:
		return "deleted"
	case rec.Revoked:
		return "revoked"
	case rec.ExpiresAt != nil && !a.now().Before(rec.ExpiresAt.AsTime()):
		return "expired"
	}
	return ""
}

// WithCatchUp gives the authenticator a way to bring the local state up to
// the leader's: a node certificate of a node this server does not know yet
// (its join was committed, not yet applied here) is checked again after it.
func (a *Authenticator) WithCatchUp(fn func(context.Context) error) *Authenticator {
	a.catchUp = fn
	return a
}

// WithServers makes the authenticator refuse the certificates of servers
// removed from the cluster.
func (a *Authenticator) WithServers(s ServerStore) *Authenticator {
	a.servers = s
	return a
}

const peerServicePrefix = "/cc.v1.PeerService/"

// ErrNotAServer is the answer to a peer method called without a server
// certificate.
var ErrNotAServer = errors.New("this method is for control-plane servers: it needs a server certificate of this cluster (mutual TLS)")

// AuthenticateServer checks that the caller holds a server certificate of
// the cluster CA, of a server that was not removed, for the key its record
// pins.
func (a *Authenticator) AuthenticateServer(ctx context.Context) (string, error) {
	leaf, err := verifiedLeaf(ctx)
	if err != nil {
		return "", err
	}
	if pki.Role(leaf) != pki.RoleServer {
		return "", fmt.Errorf("certificate role %q is not server", pki.Role(leaf))
	}
	id := leaf.Subject.CommonName
	if a.servers != nil {
		rec, err := a.servers.Server(id)
		if err == nil && rec.Removed {
			return "", fmt.Errorf("server %s was removed from the cluster", id)
		}
		if err == nil {
			if err := KeyPinned(rec, leaf); err != nil {
				return "", err
			}
		}
	}
	return id, nil
}

// ErrKeyNotPinned is a server certificate for another key than the one its
// server record pins: signed by the cluster CA, but not by the server.
var ErrKeyNotPinned = errors.New("the certificate's key is not the one pinned for this server")

// KeyPinned checks that leaf is for the key rec pins. A record with no pin
// (written before servers' keys were pinned) accepts any key.
func KeyPinned(rec *statev1.ServerRecord, leaf *x509.Certificate) error {
	if len(rec.GetPublicKeySha256()) == 0 || pki.KeyMatches(rec.GetPublicKeySha256(), leaf) {
		return nil
	}
	return fmt.Errorf("server %s: %w", rec.GetId(), ErrKeyNotPinned)
}

func verifiedLeaf(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, errors.New("no verified client certificate")
	}
	return ti.State.VerifiedChains[0][0], nil
}

// NewAuthenticator returns an authenticator over the stored tokens and nodes.
func NewAuthenticator(store TokenStore, nodes NodeStore) *Authenticator {
	return &Authenticator{store: store, nodes: nodes, now: time.Now}
}

const agentServicePrefix = "/cc.v1.AgentService/"

// ErrNotANode is the answer to an agent method called without a valid node
// certificate.
var ErrNotANode = errors.New("this method is for agents: it needs a node certificate of this cluster (mutual TLS); API tokens cannot call it")

// AuthenticateNode checks the verified client certificate of a connection:
// it must be an agent certificate of the cluster CA for a node that was not
// removed.
func (a *Authenticator) AuthenticateNode(ctx context.Context) (Principal, error) {
	leaf, err := verifiedLeaf(ctx)
	if err != nil {
		return Principal{}, err
	}
	if pki.Role(leaf) != pki.RoleAgent {
		return Principal{}, fmt.Errorf("certificate role %q is not agent", pki.Role(leaf))
	}
	id := leaf.Subject.CommonName
	if _, err := a.nodes.Node(id); err != nil {
		if a.catchUp == nil || a.catchUp(ctx) != nil {
			return Principal{}, fmt.Errorf("node %s: %w (removed?)", id, err)
		}
		if _, err := a.nodes.Node(id); err != nil {
			return Principal{}, fmt.Errorf("node %s: %w (removed?)", id, err)
		}
	}
	return Principal{NodeID: id}, nil
}

// Authenticate checks an Authorization header value ("Bearer <token>").
// The returned error says why, for the server's log; callers see
// ErrUnauthenticated only.
func (a *Authenticator) Authenticate(header string) (Principal, error) {
	const scheme = "bearer "
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return Principal{}, errors.New("no bearer token")
	}
	id, secret, err := ParseToken(strings.TrimSpace(header[len(scheme):]))
	if err != nil {
		return Principal{}, err
	}
	rec, err := a.store.Token(id)
	if err != nil {
		return Principal{}, fmt.Errorf("token %s: %w", id, err)
	}
	if subtle.ConstantTimeCompare(rec.SecretSha256, HashSecret(secret)) != 1 {
		return Principal{}, fmt.Errorf("token %s: wrong secret", id)
	}
	if rec.Revoked {
		return Principal{}, fmt.Errorf("token %s: revoked", id)
	}
	if rec.ExpiresAt != nil && !a.now().Before(rec.ExpiresAt.AsTime()) {
		return Principal{}, fmt.Errorf("token %s: expired", id)
	}
	return Principal{TokenID: id, Role: ccv1.Role(rec.Role)}, nil
}

// authenticateFrom is Authenticate for a caller at ip (invalid when not
// known), under the limiter's failed-authentication budget. Its error is
// the status to answer: Unauthenticated, or ResourceExhausted for an
// address that failed too often.
func (a *Authenticator) authenticateFrom(header string, ip netip.Addr) (Principal, error) {
	failed := func() {}
	if a.limiter != nil && ip.IsValid() {
		var err error
		if failed, err = a.limiter.AuthBudget(ip); err != nil {
			return Principal{}, err
		}
	}
	p, err := a.Authenticate(header)
	if err != nil {
		failed()
		return Principal{}, status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())
	}
	return p, nil
}

// viewerMethods may be called by viewer tokens; every other method needs an
// admin token. A new method is therefore admin-only until listed here.
var viewerMethods = map[string]bool{
	ccv1.ClusterService_GetStatus_FullMethodName:         true,
	ccv1.ClusterService_WatchStatus_FullMethodName:       true,
	ccv1.NodeService_ListNodes_FullMethodName:            true,
	ccv1.NodeService_GetNode_FullMethodName:              true,
	ccv1.NodeService_WatchNodes_FullMethodName:           true,
	ccv1.ContainerService_WatchContainers_FullMethodName: true,
	ccv1.ServiceService_WatchServices_FullMethodName:     true,
	ccv1.TokenService_ListTokens_FullMethodName:          true,
	ccv1.ContainerService_ListContainers_FullMethodName:  true,
	ccv1.ContainerService_GetContainer_FullMethodName:    true,
	ccv1.ContainerService_ContainerLogs_FullMethodName:   true,
	ccv1.StatsService_ContainerStats_FullMethodName:      true,
	ccv1.ImageService_ListImages_FullMethodName:          true,
	ccv1.ClusterService_ListServers_FullMethodName:       true,
	ccv1.ServiceService_ListServices_FullMethodName:      true,
	ccv1.ServiceService_GetService_FullMethodName:        true,
	ccv1.ServiceService_ListServiceTasks_FullMethodName:  true,
	ccv1.ServiceService_ServiceLogs_FullMethodName:       true,
	ccv1.JobService_ListJobs_FullMethodName:              true,
	ccv1.JobService_GetJob_FullMethodName:                true,
	ccv1.JobService_WatchJobs_FullMethodName:             true,
	ccv1.JobService_ListQueues_FullMethodName:            true,
	ccv1.JobService_WatchQueues_FullMethodName:           true,
	ccv1.EdgeService_ListRoutes_FullMethodName:           true,
	ccv1.EdgeService_GetRoute_FullMethodName:             true,
	ccv1.EdgeService_ListSites_FullMethodName:            true,
	ccv1.EdgeService_GetSite_FullMethodName:              true,
	ccv1.CertService_ListCerts_FullMethodName:            true,
	ccv1.CertService_GetCert_FullMethodName:              true,
	ccv1.TrustService_GetTrust_FullMethodName:            true,
	ccv1.TrustService_GetCAStatus_FullMethodName:         true,
	ccv1.VolumeService_ListVolumes_FullMethodName:        true,
	ccv1.VolumeService_GetVolume_FullMethodName:          true,
}

// jobsMethods may be called by tokens of role jobs: every job method but
// SetQueue, and the cluster status. Which jobs such a token may cancel or
// read the logs and output of (its own) is the job service's check.
var jobsMethods = map[string]bool{
	ccv1.ClusterService_GetStatus_FullMethodName:   true,
	ccv1.ClusterService_WatchStatus_FullMethodName: true,
	ccv1.JobService_SubmitJob_FullMethodName:       true,
	ccv1.JobService_UploadInput_FullMethodName:     true,
	ccv1.JobService_ListJobs_FullMethodName:        true,
	ccv1.JobService_GetJob_FullMethodName:          true,
	ccv1.JobService_CancelJob_FullMethodName:       true,
	ccv1.JobService_JobLogs_FullMethodName:         true,
	ccv1.JobService_JobOutput_FullMethodName:       true,
	ccv1.JobService_WatchJobs_FullMethodName:       true,
	ccv1.JobService_ListQueues_FullMethodName:      true,
	ccv1.JobService_WatchQueues_FullMethodName:     true,
	ccv1.TrustService_GetTrust_FullMethodName:      true,
}

// MetricsMethod names a scrape of GET /metrics on the API port where a
// method is asked for (freshness checks, audit records of refusals).
const MetricsMethod = "GET /metrics"

// MayReadMetrics reports whether role may read the metrics: metrics
// tokens (which may do nothing else), viewers and admins.
func MayReadMetrics(role ccv1.Role) bool {
	switch role {
	case ccv1.Role_ROLE_METRICS, ccv1.Role_ROLE_VIEWER, ccv1.Role_ROLE_ADMIN:
		return true
	}
	return false
}

// anyTokenMethods may be called with a token of any role: gRPC server
// reflection, which describes the API (grpcurl, Postman) and reads no
// state. Without a token it is refused like every other call.
var anyTokenMethods = map[string]bool{
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      true,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: true,
}

// ReadOnly reports whether a method only reads state (viewer tokens may
// call it, and it is served after a linearizable read barrier).
func ReadOnly(fullMethod string) bool {
	return viewerMethods[fullMethod] || anyTokenMethods[fullMethod]
}

// Allowed reports whether role may call the gRPC method fullMethod.
func Allowed(role ccv1.Role, fullMethod string) bool {
	if anyTokenMethods[fullMethod] && role != ccv1.Role_ROLE_UNSPECIFIED {
		return true
	}
	switch role {
	case ccv1.Role_ROLE_ADMIN:
		return true
	case ccv1.Role_ROLE_VIEWER:
		return viewerMethods[fullMethod]
	case ccv1.Role_ROLE_JOBS:
		return jobsMethods[fullMethod]
	default:
		return false
	}
}

type principalKey struct{}

// FromContext returns the caller authenticated by the interceptors.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

func (a *Authenticator) check(ctx context.Context, fullMethod string) (context.Context, error) {
	source := SourceOf(ctx)
	ctx = WithCall(ctx, Call{Method: fullMethod, Source: source})
	if strings.HasPrefix(fullMethod, peerServicePrefix) {
		if fullMethod == ccv1.PeerService_JoinServer_FullMethodName {
			return ctx, nil // authenticated by the server join token it carries
		}
		id, err := a.AuthenticateServer(ctx)
		if err != nil {
			a.refuse(fullMethod, source, OutcomeUnauthenticated, err.Error(), Principal{})
			return nil, status.Error(codes.Unauthenticated, ErrNotAServer.Error())
		}
		return context.WithValue(ctx, principalKey{}, Principal{ServerID: id}), nil
	}
	if strings.HasPrefix(fullMethod, agentServicePrefix) {
		if fullMethod == ccv1.AgentService_Join_FullMethodName {
			return ctx, nil // authenticated by the join token it carries
		}
		p, err := a.AuthenticateNode(ctx)
		if err != nil {
			a.refuse(fullMethod, source, OutcomeUnauthenticated, err.Error(), Principal{})
			return nil, status.Error(codes.Unauthenticated, ErrNotANode.Error())
		}
		return context.WithValue(ctx, principalKey{}, p), nil
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	if a.fresh != nil {
		if err := a.fresh(ctx, fullMethod); err != nil {
			return nil, status.Errorf(codes.Unavailable, "cannot check the token against the cluster's latest state now (%v); retry shortly", err)
		}
	}
	var ip netip.Addr
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		ip, _ = ParseAddr(pr.Addr.String())
	}
	if leaf, err := verifiedLeaf(ctx); err == nil && pki.Role(leaf) == pki.RoleServer {
		// A server forwarding a caller's call (to the leader): the token
		// counts, the server's address does not.
		ip = netip.Addr{}
	}
	p, err := a.authenticateFrom(header, ip)
	if err != nil {
		a.refuse(fullMethod, source, OutcomeUnauthenticated, status.Convert(err).Message(), Principal{})
		return nil, err
	}
	if a.limiter != nil && ip.IsValid() {
		if err := a.limiter.Allow(p, ip); err != nil {
			return nil, err
		}
	}
	if !Allowed(p.Role, fullMethod) {
		err := status.Errorf(codes.PermissionDenied, "token %s (role %s) may not call %s; use an admin token", p.TokenID, roleName(p.Role), fullMethod)
		a.refuse(fullMethod, source, OutcomePermissionDenied, status.Convert(err).Message(), p)
		return nil, err
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// UnaryInterceptor authenticates and authorizes every unary call.
func (a *Authenticator) UnaryInterceptor(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// StreamInterceptor authenticates and authorizes every streaming call.
func (a *Authenticator) StreamInterceptor(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	p, _ := FromContext(ctx)
	if p.TokenID == "" || a.watch == nil {
		return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go a.watchToken(ctx, cancel, p.TokenID)
	err = handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	if cause := context.Cause(ctx); errors.Is(cause, ErrTokenGone) {
		return status.Error(codes.Unauthenticated, cause.Error())
	}
	return err
}

// watchToken cancels ctx, with ErrTokenGone as the cause, once token id is
// revoked, deleted or expired; it returns when ctx ends.
func (a *Authenticator) watchToken(ctx context.Context, cancel context.CancelCauseFunc, id string) {
	t := time.NewTicker(a.recheck)
	defer t.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		changed := a.watch() // taken before the check, so no change is missed
		if why := a.tokenState(id); why != "" {
			cancel(fmt.Errorf("token %s %s: %w", id, why, ErrTokenGone))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// A busy cluster changes its state many times a second: check
			// at most once per recheckGap, so many open streams cost little.
			gap.Reset(recheckGap)
			select {
			case <-ctx.Done():
				return
			case <-gap.C:
			}
		case <-t.C:
		}
	}
}

// recheckGap is the shortest time between two checks of an open stream's
// token after state changes.
const recheckGap = 200 * time.Millisecond

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// Middleware refuses HTTP requests without a valid token. onError writes the
// refusal (the gateway's error writer, so bodies look alike everywhere). The
// caller is in the request's context for plain handlers (FromContext); a
// handler checks the role itself, with Allowed.
func (a *Authenticator) Middleware(next http.Handler, onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return a.middleware(next, onError, true, "")
}

// MetricsMiddleware is Middleware for GET /metrics: the freshness check
// is asked for MetricsMethod, and only roles that MayReadMetrics pass
// (others get PermissionDenied).
func (a *Authenticator) MetricsMiddleware(next http.Handler, onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return a.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		if !MayReadMetrics(p.Role) {
			err := status.Errorf(codes.PermissionDenied, "token %s (role %s) may not read the metrics; use a metrics, viewer or admin token", p.TokenID, roleName(p.Role))
			a.refuse(httpMethod(r), hostOf(r.RemoteAddr), OutcomePermissionDenied, status.Convert(err).Message(), p)
			onError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	}), onError, true, MetricsMethod)
}

// GatewayMiddleware is Middleware for a handler that calls the gRPC server
// with the caller's Authorization header (the REST gateway): the
// interceptors check the token again there, after catching up with the
// cluster as the method requires, so this check reads the local state
// without waiting.
func (a *Authenticator) GatewayMiddleware(next http.Handler, onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return a.middleware(next, onError, false, "")
}

// middleware authenticates; with catchUp, after the freshness check for
// method ("" for a plain HTTP request).
func (a *Authenticator) middleware(next http.Handler, onError func(w http.ResponseWriter, r *http.Request, err error), catchUp bool, method string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if catchUp && a.fresh != nil {
			if err := a.fresh(r.Context(), method); err != nil {
				onError(w, r, status.Errorf(codes.Unavailable, "cannot check the token against the cluster's latest state now (%v); retry shortly", err))
				return
			}
		}
		ip, _ := ParseAddr(r.RemoteAddr)
		p, err := a.authenticateFrom(r.Header.Get("Authorization"), ip)
		if err != nil {
			a.refuse(httpMethod(r), hostOf(r.RemoteAddr), OutcomeUnauthenticated, status.Convert(err).Message(), Principal{})
			onError(w, r, err)
			return
		}
		if a.limiter != nil {
			if err := a.limiter.Allow(p, ip); err != nil {
				onError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// RoleName is a role as users type it: "admin", "viewer", "jobs",
// "metrics".
func RoleName(r ccv1.Role) string { return roleName(r) }

func roleName(r ccv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}
