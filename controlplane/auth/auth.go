package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TokenStore finds a stored token by id.
type TokenStore interface {
	Token(id string) (*statev1.TokenRecord, error)
}

// Principal is who is calling.
type Principal struct {
	TokenID string
	Role    ccv1.Role
}

// ErrUnauthenticated is the one answer a caller gets for any bad credential,
// so that a caller cannot probe which token ids exist.
var ErrUnauthenticated = errors.New("missing or invalid API token: pass a valid token as \"Authorization: Bearer <token>\" (ccctl: --token or CC_TOKEN)")

// Authenticator checks bearer tokens against the store.
type Authenticator struct {
	store TokenStore
	now   func() time.Time
}

// NewAuthenticator returns an authenticator over store.
func NewAuthenticator(store TokenStore) *Authenticator {
	return &Authenticator{store: store, now: time.Now}
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

// viewerMethods may be called by viewer tokens; every other method needs an
// admin token. A new method is therefore admin-only until listed here.
var viewerMethods = map[string]bool{
	ccv1.ClusterService_GetStatus_FullMethodName: true,
	ccv1.NodeService_ListNodes_FullMethodName:    true,
	ccv1.TokenService_ListTokens_FullMethodName:  true,
}

// Allowed reports whether role may call the gRPC method fullMethod.
func Allowed(role ccv1.Role, fullMethod string) bool {
	switch role {
	case ccv1.Role_ROLE_ADMIN:
		return true
	case ccv1.Role_ROLE_VIEWER:
		return viewerMethods[fullMethod]
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
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	p, err := a.Authenticate(header)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())
	}
	if !Allowed(p.Role, fullMethod) {
		return nil, status.Errorf(codes.PermissionDenied, "token %s (role %s) may not call %s; use an admin token", p.TokenID, roleName(p.Role), fullMethod)
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
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// Middleware refuses HTTP requests without a valid token. onError writes the
// refusal (the gateway's error writer, so bodies look alike everywhere).
func (a *Authenticator) Middleware(next http.Handler, onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.Authenticate(r.Header.Get("Authorization")); err != nil {
			onError(w, r, status.Error(codes.Unauthenticated, ErrUnauthenticated.Error()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func roleName(r ccv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}
