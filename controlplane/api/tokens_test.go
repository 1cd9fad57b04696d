package api_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const callTimeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func createToken(t *testing.T, c *testcluster.Client, req *ccv1.CreateTokenRequest) *ccv1.CreateTokenResponse {
	t.Helper()
	resp, err := c.Tokens.CreateToken(ctxT(t), req)
	if err != nil {
		t.Fatalf("CreateToken(%v): %v", req, err)
	}
	return resp
}

func listTokens(t *testing.T, c *testcluster.Client) *ccv1.ListTokensResponse {
	t.Helper()
	resp, err := c.Tokens.ListTokens(ctxT(t), &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	return resp
}

func TestCreateTokenSecretIsABearerToken(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	tests := []struct {
		name     string
		role     ccv1.Role
		wantRole ccv1.Role
		ttl      *durationpb.Duration
	}{
		{"admin", ccv1.Role_ROLE_ADMIN, ccv1.Role_ROLE_ADMIN, nil},
		{"viewer", ccv1.Role_ROLE_VIEWER, ccv1.Role_ROLE_VIEWER, nil},
		{"unspecified means viewer", ccv1.Role_ROLE_UNSPECIFIED, ccv1.Role_ROLE_VIEWER, nil},
		{"zero ttl means no expiry", ccv1.Role_ROLE_VIEWER, ccv1.Role_ROLE_VIEWER, durationpb.New(0)},
		{"with ttl", ccv1.Role_ROLE_ADMIN, ccv1.Role_ROLE_ADMIN, durationpb.New(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := createToken(t, admin, &ccv1.CreateTokenRequest{Role: tt.role, Description: tt.name, Ttl: tt.ttl})
			secret := resp.GetSecret()
			if !strings.HasPrefix(secret, "CCAPI-1-") {
				t.Fatalf("secret %q lacks prefix CCAPI-1-", secret)
			}
			id, _, err := auth.ParseToken(secret)
			if err != nil {
				t.Fatalf("secret %q does not parse: %v", secret, err)
			}
			tok := resp.GetToken()
			if tok.GetId() != id {
				t.Fatalf("token id %q, secret names id %q", tok.GetId(), id)
			}
			if tok.GetRole() != tt.wantRole || tok.GetDescription() != tt.name || tok.GetRevoked() || tok.GetCreatedAt() == nil {
				t.Fatalf("token = %v, want role %v, description %q, created, not revoked", tok, tt.wantRole, tt.name)
			}
			if hasExpiry := tok.GetExpiresAt() != nil; hasExpiry != (tt.ttl.AsDuration() > 0) {
				t.Fatalf("expires_at = %v with ttl %v", tok.GetExpiresAt(), tt.ttl)
			}
			// The secret works as a bearer token, over gRPC and REST.
			conn := srv.Conn(secret)
			if _, err := ccv1.NewClusterServiceClient(conn).GetStatus(ctxT(t), &ccv1.GetStatusRequest{}); err != nil {
				t.Fatalf("GetStatus with the new token: %v", err)
			}
			if code, body := get(t, srv, "/v1/status", secret); code != http.StatusOK {
				t.Fatalf("GET /v1/status with the new token: %d %s", code, body)
			}
			// Its role is enforced: only an admin may create tokens.
			_, err = ccv1.NewTokenServiceClient(conn).CreateToken(ctxT(t), &ccv1.CreateTokenRequest{})
			wantCode := codes.OK
			if tt.wantRole != ccv1.Role_ROLE_ADMIN {
				wantCode = codes.PermissionDenied
			}
			if status.Code(err) != wantCode {
				t.Fatalf("CreateToken with a %v token: %v, want %v", tt.wantRole, err, wantCode)
			}
		})
	}
}

func get(t *testing.T, srv *testcluster.Server, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// walkJSON calls fn with every object key and every string value in v.
func walkJSON(v any, path string, fn func(path, key, str string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			fn(path, k, "")
			walkJSON(e, path+"."+k, fn)
		}
	case []any:
		for _, e := range v {
			walkJSON(e, path+"[]", fn)
		}
	case string:
		fn(path, "", v)
	}
}

func TestListTokensExposesNoSecret(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	created := []*ccv1.CreateTokenResponse{
		createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_ADMIN, Description: "a"}),
		createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "b", Ttl: durationpb.New(time.Hour)}),
	}
	bearers := []string{srv.Token}
	for _, c := range created {
		bearers = append(bearers, c.GetSecret())
	}
	// Every form in which a secret or its hash could leak.
	var forbidden []string
	for _, b := range bearers {
		_, secret, err := auth.ParseToken(b)
		if err != nil {
			t.Fatal(err)
		}
		h := auth.HashSecret(secret)
		forbidden = append(forbidden, b, secret, strings.ToUpper(secret), hex.EncodeToString(h),
			base64.StdEncoding.EncodeToString(h), base64.RawURLEncoding.EncodeToString(h))
	}

	list := listTokens(t, admin)
	grpcJSON, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	code, restJSON := get(t, srv, "/v1/tokens", srv.Token)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/tokens: %d %s", code, restJSON)
	}

	for _, doc := range []struct {
		name string
		body []byte
	}{{"gRPC ListTokens", grpcJSON}, {"REST GET /v1/tokens", restJSON}} {
		t.Run(doc.name, func(t *testing.T) {
			var v struct {
				Tokens []map[string]any `json:"tokens"`
			}
			if err := json.Unmarshal(doc.body, &v); err != nil {
				t.Fatalf("%s: %v", doc.body, err)
			}
			// Guard against a vacuous pass: every token is listed.
			ids := map[string]bool{}
			for _, tok := range v.Tokens {
				id, _ := tok["id"].(string)
				ids[id] = true
			}
			for _, b := range bearers {
				id, _, _ := auth.ParseToken(b)
				if !ids[id] {
					t.Fatalf("token %s missing from %s", id, doc.body)
				}
			}
			var raw any
			if err := json.Unmarshal(doc.body, &raw); err != nil {
				t.Fatal(err)
			}
			walkJSON(raw, "", func(path, key, str string) {
				if k := strings.ToLower(key); strings.Contains(k, "secret") || strings.Contains(k, "hash") || strings.Contains(k, "sha") {
					t.Errorf("field %s.%s may expose a secret", path, key)
				}
				for _, f := range forbidden {
					if str != "" && strings.Contains(str, f) {
						t.Errorf("field %s exposes a secret or its hash: %q", path, str)
					}
				}
			})
			for _, f := range forbidden {
				if strings.Contains(string(doc.body), f) {
					t.Errorf("response contains %q", f)
				}
			}
		})
	}
}

func TestRevokeToken(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	created := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	id := created.GetToken().GetId()
	for i := 0; i < 2; i++ { // revoking twice is not an error
		if _, err := admin.Tokens.RevokeToken(ctxT(t), &ccv1.RevokeTokenRequest{Id: id}); err != nil {
			t.Fatalf("RevokeToken #%d: %v", i+1, err)
		}
	}
	var found bool
	for _, tok := range listTokens(t, admin).GetTokens() {
		switch tok.GetId() {
		case id:
			found = true
			if !tok.GetRevoked() {
				t.Fatalf("token %s not marked revoked", id)
			}
		default:
			if tok.GetRevoked() {
				t.Fatalf("token %s revoked as well", tok.GetId())
			}
		}
	}
	if !found {
		t.Fatalf("revoked token %s no longer listed", id)
	}
}

func TestTokenServiceRefusesBadRequests(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	tests := []struct {
		name string
		call func(context.Context) error
		want codes.Code
	}{
		{"revoke unknown id", func(ctx context.Context) error {
			_, err := admin.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: "0123456789abcdef"})
			return err
		}, codes.NotFound},
		{"revoke empty id", func(ctx context.Context) error {
			_, err := admin.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{})
			return err
		}, codes.InvalidArgument},
		{"create with role 42", func(ctx context.Context) error {
			_, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role(42)})
			return err
		}, codes.InvalidArgument},
		{"create with role -1", func(ctx context.Context) error {
			_, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role(-1)})
			return err
		}, codes.InvalidArgument},
		{"create with negative ttl", func(ctx context.Context) error {
			_, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Ttl: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument},
		{"create with invalid ttl", func(ctx context.Context) error {
			_, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}})
			return err
		}, codes.InvalidArgument},
		{"create with long description", func(ctx context.Context) error {
			_, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Description: strings.Repeat("d", 257)})
			return err
		}, codes.InvalidArgument},
	}
	before := len(listTokens(t, admin).GetTokens())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if msg := status.Convert(err).Message(); msg == "" {
				t.Fatalf("%v has no message", err)
			}
		})
	}
	if after := len(listTokens(t, admin).GetTokens()); after != before {
		t.Fatalf("refused requests changed the token count from %d to %d", before, after)
	}
	// The limit itself is allowed.
	createToken(t, admin, &ccv1.CreateTokenRequest{Description: strings.Repeat("d", 256)})
}
