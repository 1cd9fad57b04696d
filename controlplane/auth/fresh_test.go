package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Finding 10 of issue 14: a token is checked only after the local state has
// caught up, so a revocation this server has not applied yet counts. Here
// catching up is what applies the revocation.
func TestTokenCheckedAfterCatchingUp(t *testing.T) {
	id, secret, bearer := mustToken(t)
	store := fakeStore{id: &statev1.TokenRecord{Id: id, Role: int32(ccv1.Role_ROLE_ADMIN), SecretSha256: HashSecret(secret)}}
	var methods []string
	a := NewAuthenticator(store, nil).WithFreshness(func(_ context.Context, fullMethod string) error {
		methods = append(methods, fullMethod)
		store[id].Revoked = true // the revocation the leader acknowledged
		return nil
	})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+bearer))
	info := &grpc.UnaryServerInfo{FullMethod: ccv1.TokenService_CreateToken_FullMethodName}
	_, err := a.UnaryInterceptor(ctx, nil, info, func(context.Context, interface{}) (interface{}, error) { return "ran", nil })
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("call with a token revoked on the leader: %v, want Unauthenticated", err)
	}
	if len(methods) != 1 || methods[0] != info.FullMethod {
		t.Fatalf("caught up for %q, want once for %s", methods, info.FullMethod)
	}

	// Plain HTTP handlers catch up too.
	store[id].Revoked = false
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	req := httptest.NewRequest("GET", "/v1/jobs/x/output", nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("HTTP with a token revoked on the leader: %d, want 401", rec.Code)
	}
}

func TestTokenRefusedWhenCatchingUpFails(t *testing.T) {
	id, secret, bearer := mustToken(t)
	store := fakeStore{id: &statev1.TokenRecord{Id: id, Role: int32(ccv1.Role_ROLE_ADMIN), SecretSha256: HashSecret(secret)}}
	a := NewAuthenticator(store, nil).WithFreshness(func(context.Context, string) error { return errors.New("no leader") })
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+bearer))
	info := &grpc.UnaryServerInfo{FullMethod: ccv1.TokenService_CreateToken_FullMethodName}
	_, err := a.UnaryInterceptor(ctx, nil, info, func(context.Context, interface{}) (interface{}, error) { return "ran", nil })
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call when this server cannot catch up: %v, want Unavailable", err)
	}
}
