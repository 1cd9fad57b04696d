package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
	"github.com/containercodes/cc/proto/openapi"
)

const callTimeout = 10 * time.Second

type rpcMethod struct {
	full string // /cc.v1.Service/Method
	desc protoreflect.MethodDescriptor
}

// grpcMethods walks the registered descriptors of proto package cc.v1.
func grpcMethods(t *testing.T) []rpcMethod {
	t.Helper()
	var out []rpcMethod
	protoregistry.GlobalFiles.RangeFilesByPackage("cc.v1", func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			sd := svcs.Get(i)
			ms := sd.Methods()
			for j := 0; j < ms.Len(); j++ {
				md := ms.Get(j)
				out = append(out, rpcMethod{full: "/" + string(sd.FullName()) + "/" + string(md.Name()), desc: md})
			}
		}
		return true
	})
	if len(out) < 5 {
		t.Fatalf("found %d cc.v1 methods in the descriptors, want at least 5: %v", len(out), out)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].full < out[j].full })
	return out
}

// invoke calls m with an empty request, as a stream when it streams.
func invoke(ctx context.Context, conn *grpc.ClientConn, m rpcMethod) error {
	in := dynamicpb.NewMessage(m.desc.Input())
	out := dynamicpb.NewMessage(m.desc.Output())
	if !m.desc.IsStreamingClient() && !m.desc.IsStreamingServer() {
		return conn.Invoke(ctx, m.full, in, out)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	desc := &grpc.StreamDesc{
		StreamName:    string(m.desc.Name()),
		ServerStreams: m.desc.IsStreamingServer(),
		ClientStreams: m.desc.IsStreamingClient(),
	}
	st, err := conn.NewStream(ctx, desc, m.full)
	if err != nil {
		return err
	}
	if err := st.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	return st.RecvMsg(out)
}

// badCredential is one way of calling without a valid token.
type badCredential struct {
	name   string
	token  string // for Conn; "-" sends no Authorization
	header string // when set, a raw Authorization value sent on a "-" connection
}

func badCredentials(srv *testcluster.Server, t *testing.T) []badCredential {
	t.Helper()
	adminID, _, err := auth.ParseToken(srv.Token)
	if err != nil {
		t.Fatalf("admin token %q: %v", srv.Token, err)
	}
	return []badCredential{
		{name: "no token", token: "-"},
		{name: "unknown well-formed token", token: "CCAPI-1-0123456789abcdef-notarealsecretnotarealsecret"},
		{name: "admin id with wrong secret", token: "CCAPI-1-" + adminID + "-notarealsecretnotarealsecret"},
		{name: "garbage token", token: "this-is-not-a-token"},
		{name: "admin token without bearer scheme", token: "-", header: srv.Token},
		{name: "basic auth", token: "-", header: "Basic dXNlcjpwYXNzd29yZA=="},
	}
}

// TestEveryGRPCMethodRequiresToken calls every method through both ways
// the API port serves gRPC: gRPC's own transport (clients that offer
// pki.ALPNGRPC: ccctl, agents, servers) and the HTTP server (any other
// gRPC client). Each has a server of its own: the failed joins of one
// would trip the join limiter of the other.
func TestEveryGRPCMethodRequiresToken(t *testing.T) {
	t.Run("grpc-only", func(t *testing.T) {
		srv := testcluster.Start(t)
		everyMethodRequiresToken(t, srv, srv.Conn)
	})
	t.Run("h2", func(t *testing.T) {
		srv := testcluster.Start(t)
		everyMethodRequiresToken(t, srv, srv.ConnH2)
	})
}

func everyMethodRequiresToken(t *testing.T, srv *testcluster.Server, dial func(token string) *grpc.ClientConn) {
	methods := grpcMethods(t)
	admin := dial("")
	for _, cred := range badCredentials(srv, t) {
		conn := dial(cred.token)
		for _, m := range methods {
			t.Run(cred.name+m.full, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				defer cancel()
				if cred.header != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "authorization", cred.header)
				}
				err := invoke(ctx, conn, m)
				if got := status.Code(err); got != codes.Unauthenticated {
					t.Fatalf("%s with %s: code %v (%v), want Unauthenticated", m.full, cred.name, got, err)
				}
			})
		}
	}
	// Control: with the admin token every API method gets past
	// authentication, so the refusals above come from the token, not from a
	// broken call. Agent and peer methods are the opposite: an API token,
	// even the admin's, cannot act as a node or a server (the joins
	// authenticate with the join token they carry, so an empty one is
	// refused too).
	for _, m := range methods {
		t.Run("admin"+m.full, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			err := invoke(ctx, admin, m)
			if strings.HasPrefix(m.full, "/cc.v1.AgentService/") || strings.HasPrefix(m.full, "/cc.v1.PeerService/") {
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("%s with the admin token: %v, want Unauthenticated (API tokens cannot act as a node or server)", m.full, err)
				}
				return
			}
			switch status.Code(err) {
			case codes.Unauthenticated, codes.PermissionDenied:
				t.Fatalf("%s with the admin token: %v", m.full, err)
			}
		})
	}
}

type restRoute struct{ method, path string }

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// restRoutes lists every operation of the generated OpenAPI document.
func restRoutes(t *testing.T) []restRoute {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Spec, &doc); err != nil {
		t.Fatalf("openapi.Spec: %v", err)
	}
	ops := map[string]string{"get": "GET", "put": "PUT", "post": "POST", "delete": "DELETE", "patch": "PATCH", "head": "HEAD", "options": "OPTIONS"}
	var out []restRoute
	for p, item := range doc.Paths {
		for op := range item {
			if m, ok := ops[strings.ToLower(op)]; ok {
				path := pathParam.ReplaceAllString(p, "0123456789abcdef")
				if path == "/v1/jobs:watch" {
					// A watch of every job never ends by itself;
					// until_done ends it once no job is active.
					path += "?until_done=true"
				}
				out = append(out, restRoute{m, path})
			}
		}
	}
	if len(out) < 5 {
		t.Fatalf("found %d routes in the OpenAPI document, want at least 5: %v", len(out), out)
	}
	// The plain routes beside the gateway (proto/openapi/plain.json) are
	// in the document too; the document itself is not.
	for _, want := range []string{"/v1/jobs/0123456789abcdef/output", "/v1/jobs/0123456789abcdef/output:list", "/v1/jobs/inputs",
		"/v1/images/load", "/v1/sites/0123456789abcdef/deploy", "/v1/whoami", "/v1/containers/0123456789abcdef/exec"} {
		found := false
		for _, r := range out {
			found = found || r.path == want
		}
		if !found {
			t.Errorf("the OpenAPI document has no route %s", want)
		}
	}
	out = append(out, restRoute{http.MethodGet, "/v1/openapi.json"})
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func doHTTP(t *testing.T, srv *testcluster.Server, method, path, authorization string) httpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if (strings.HasSuffix(path, ":watch") || path == "/v1/stats") && resp.StatusCode == http.StatusOK {
		// Watches (of the audit trail, nodes, containers, services) and
		// streamed stats never end by themselves: their headers say they
		// are open.
		return httpResult{resp.StatusCode, resp.Header, nil}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return httpResult{resp.StatusCode, resp.Header, b}
}

func requireJSONContentType(t *testing.T, h http.Header) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", h.Get("Content-Type"))
	}
}

func TestEveryRESTRouteRequiresToken(t *testing.T) {
	srv := testcluster.Start(t)
	routes := restRoutes(t)
	for _, cred := range badCredentials(srv, t) {
		header := cred.header
		if header == "" && cred.token != "-" {
			header = "Bearer " + cred.token
		}
		for _, r := range routes {
			t.Run(cred.name+"/"+r.method+r.path, func(t *testing.T) {
				res := doHTTP(t, srv, r.method, r.path, header)
				if res.status != http.StatusUnauthorized {
					t.Fatalf("%s %s with %s: status %d, want 401; body %s", r.method, r.path, cred.name, res.status, res.body)
				}
				requireJSONContentType(t, res.header)
				var e struct {
					Message string `json:"message"`
				}
				if err := json.Unmarshal(res.body, &e); err != nil {
					t.Fatalf("body %q is not JSON: %v", res.body, err)
				}
				if e.Message == "" {
					t.Fatalf("body %s has no message", res.body)
				}
			})
		}
	}
	// Control: the admin token passes every route.
	for _, r := range routes {
		t.Run("admin/"+r.method+r.path, func(t *testing.T) {
			res := doHTTP(t, srv, r.method, r.path, "Bearer "+srv.Token)
			switch res.status {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				t.Fatalf("%s %s with the admin token: status %d; body %s", r.method, r.path, res.status, res.body)
			}
			// A route of the OpenAPI document that the gateway does not
			// serve answers a bare "Not Found" (a handler's NotFound says
			// what was not found).
			var e struct {
				Message string `json:"message"`
			}
			if res.status == http.StatusNotFound && json.Unmarshal(res.body, &e) == nil && e.Message == "Not Found" {
				t.Fatalf("%s %s is in the OpenAPI document but not served: %s", r.method, r.path, res.body)
			}
		})
	}
}

func TestHealthChecksNeedNoToken(t *testing.T) {
	srv := testcluster.Start(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			res := doHTTP(t, srv, http.MethodGet, path, "")
			if res.status != http.StatusOK {
				t.Fatalf("GET %s: status %d, want 200; body %s", path, res.status, res.body)
			}
			requireJSONContentType(t, res.header)
			if !json.Valid(res.body) {
				t.Fatalf("GET %s: body %q is not JSON", path, res.body)
			}
		})
	}
}

func TestAuthenticatedRESTWorks(t *testing.T) {
	srv := testcluster.Start(t)
	bearer := "Bearer " + srv.Token

	res := doHTTP(t, srv, http.MethodGet, "/v1/status", bearer)
	if res.status != http.StatusOK {
		t.Fatalf("GET /v1/status: status %d, want 200; body %s", res.status, res.body)
	}
	requireJSONContentType(t, res.header)
	var st map[string]any
	if err := json.Unmarshal(res.body, &st); err != nil {
		t.Fatalf("GET /v1/status: body %q: %v", res.body, err)
	}
	if got, want := st["cluster_id"], srv.Srv.ClusterID(); got != want || want == "" {
		t.Fatalf("cluster_id = %v, want %q; body %s", got, want, res.body)
	}
	for _, camel := range []string{"clusterId", "serverId", "raftState"} {
		if _, ok := st[camel]; ok {
			t.Fatalf("status uses camelCase field %q, want snake_case; body %s", camel, res.body)
		}
	}
	if _, ok := st["raft_state"]; !ok {
		t.Fatalf("status lacks raft_state; body %s", res.body)
	}

	res = doHTTP(t, srv, http.MethodGet, "/v1/openapi.json", bearer)
	if res.status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: status %d, want 200; body %s", res.status, res.body)
	}
	requireJSONContentType(t, res.header)
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("GET /v1/openapi.json: %v", err)
	}
	if doc.Swagger == "" {
		t.Fatalf("openapi.json has no swagger version")
	}
	if _, ok := doc.Paths["/v1/status"]; !ok {
		t.Fatalf("openapi.json lacks /v1/status")
	}
	if !bytes.Equal(res.body, openapi.Spec) {
		t.Fatalf("served openapi.json differs from the embedded openapi.Spec")
	}
}

func newToken(t *testing.T, c *testcluster.Client, req *ccv1.CreateTokenRequest) *ccv1.CreateTokenResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := c.Tokens.CreateToken(ctx, req)
	if err != nil {
		t.Fatalf("CreateToken(%v): %v", req, err)
	}
	return resp
}

func clientFor(srv *testcluster.Server, token string) *testcluster.Client {
	conn := srv.Conn(token)
	return &testcluster.Client{
		Cluster: ccv1.NewClusterServiceClient(conn),
		Nodes:   ccv1.NewNodeServiceClient(conn),
		Tokens:  ccv1.NewTokenServiceClient(conn),
	}
}

func TestViewerTokenIsReadOnly(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	created := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "viewer"})
	if created.GetToken().GetRole() != ccv1.Role_ROLE_VIEWER {
		t.Fatalf("created token role %v, want viewer", created.GetToken().GetRole())
	}
	viewer := clientFor(srv, created.GetSecret())

	tests := []struct {
		name string
		call func(context.Context) error
		want codes.Code
	}{
		{"GetStatus", func(ctx context.Context) error {
			_, err := viewer.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
			return err
		}, codes.OK},
		{"ListNodes", func(ctx context.Context) error {
			_, err := viewer.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
			return err
		}, codes.OK},
		{"ListTokens", func(ctx context.Context) error {
			_, err := viewer.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
			return err
		}, codes.OK},
		{"CreateToken", func(ctx context.Context) error {
			_, err := viewer.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_ADMIN})
			return err
		}, codes.PermissionDenied},
		{"RevokeToken", func(ctx context.Context) error {
			_, err := viewer.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: created.GetToken().GetId()})
			return err
		}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			if got := status.Code(tt.call(ctx)); got != tt.want {
				t.Fatalf("%s with a viewer token: code %v, want %v", tt.name, got, tt.want)
			}
		})
	}

	// The refused writes changed nothing: the viewer is still the only
	// token besides bootstrap's, and it is not revoked.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	list, err := admin.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetTokens()) != 2 {
		t.Fatalf("%d tokens after refused writes, want 2: %v", len(list.GetTokens()), list.GetTokens())
	}
	for _, tok := range list.GetTokens() {
		if tok.GetRevoked() {
			t.Fatalf("token %s revoked by a viewer", tok.GetId())
		}
	}
}

func getStatus(t *testing.T, c *testcluster.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := c.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	return err
}

func TestRevokedAndExpiredTokensAreRefused(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()

	t.Run("revoked", func(t *testing.T) {
		created := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_ADMIN, Description: "to revoke"})
		c := clientFor(srv, created.GetSecret())
		if err := getStatus(t, c); err != nil {
			t.Fatalf("new admin token refused: %v", err)
		}
		if res := doHTTP(t, srv, http.MethodGet, "/v1/status", "Bearer "+created.GetSecret()); res.status != http.StatusOK {
			t.Fatalf("GET /v1/status with new token: status %d; body %s", res.status, res.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := admin.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: created.GetToken().GetId()}); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		if err := getStatus(t, c); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("revoked token: GetStatus error %v, want Unauthenticated", err)
		}
		if res := doHTTP(t, srv, http.MethodGet, "/v1/status", "Bearer "+created.GetSecret()); res.status != http.StatusUnauthorized {
			t.Fatalf("GET /v1/status with revoked token: status %d, want 401; body %s", res.status, res.body)
		}
		// The revoked token cannot revive itself, nor do anything else.
		if _, err := c.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("revoked token: CreateToken error %v, want Unauthenticated", err)
		}
		// The admin token is unaffected.
		if err := getStatus(t, admin); err != nil {
			t.Fatalf("bootstrap admin token refused after revoking another: %v", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		created := newToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_ADMIN, Description: "short-lived", Ttl: durationpb.New(time.Second)})
		if created.GetToken().GetExpiresAt() == nil {
			t.Fatal("token created with a ttl has no expires_at")
		}
		c := clientFor(srv, created.GetSecret())
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := getStatus(t, c)
			if status.Code(err) == codes.Unauthenticated {
				break
			}
			if err != nil {
				t.Fatalf("token with ttl: GetStatus error %v, want success or Unauthenticated", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("token with a 1s ttl still accepted after 10s (expires_at %v)", created.GetToken().GetExpiresAt().AsTime())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if res := doHTTP(t, srv, http.MethodGet, "/v1/status", "Bearer "+created.GetSecret()); res.status != http.StatusUnauthorized {
			t.Fatalf("GET /v1/status with expired token: status %d, want 401; body %s", res.status, res.body)
		}
	})
}
