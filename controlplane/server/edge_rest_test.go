package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestEdgeOverREST creates, reads, updates, applies and removes routes
// through the REST gateway, and reads sites there.
func TestEdgeOverREST(t *testing.T) {
	srv := testcluster.Start(t)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, srv.URL()+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		b, _ := io.ReadAll(resp.Body)
		if len(b) > 0 {
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s %s: body %q: %v", method, path, b, err)
			}
		}
		return resp.StatusCode, out
	}
	code, out := call(http.MethodPost, "/v1/routes", `{"name":"web","spec":{"hosts":["web.localhost"],"upstreams":[{"address":"127.0.0.1:9001","weight":1}]}}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/routes: %d %v", code, out)
	}
	code, out = call(http.MethodPost, "/v1/routes", `{"name":"web2","spec":{"hosts":["web.localhost"],"upstreams":[{"address":"127.0.0.1:9001"}]}}`)
	if code != http.StatusConflict || !strings.Contains(out["message"].(string), "held by route web") {
		t.Fatalf("POST a conflicting route: %d %v", code, out)
	}
	code, out = call(http.MethodPost, "/v1/routes", `{"name":"svc","spec":{"hosts":["svc.localhost"],"service":"nope","port":80}}`)
	if code != http.StatusNotFound || !strings.Contains(out["message"].(string), "service nope not found; create it first") {
		t.Fatalf("POST a route to a missing service: %d %v", code, out)
	}
	code, out = call(http.MethodPut, "/v1/routes/web", `{"spec":{"hosts":["web.localhost"],"path_prefix":"/app/","upstreams":[{"address":"127.0.0.1:9002"}]},"version":"1"}`)
	if code != http.StatusOK || out["route"].(map[string]any)["version"] != "2" {
		t.Fatalf("PUT /v1/routes/web: %d %v", code, out)
	}
	code, out = call(http.MethodGet, "/v1/routes/web", "")
	if code != http.StatusOK || out["route"].(map[string]any)["spec"].(map[string]any)["path_prefix"] != "/app/" {
		t.Fatalf("GET /v1/routes/web: %d %v", code, out)
	}
	apply := `{"set":"edge","dry_run":DRY,"routes":[{"name":"api","spec":{"hosts":["web.localhost"],"path_prefix":"/api/","upstreams":[{"address":"127.0.0.1:9001","weight":1},{"address":"127.0.0.1:9002","weight":2}],"load_balancing":"LOAD_BALANCING_WEIGHTED"}}]}`
	code, out = call(http.MethodPost, "/v1/routes:apply", strings.Replace(apply, "DRY", "true", 1))
	if code != http.StatusOK || len(out["created"].([]any)) != 1 {
		t.Fatalf("POST /v1/routes:apply (dry run): %d %v", code, out)
	}
	if code, _ = call(http.MethodGet, "/v1/routes/api", ""); code != http.StatusNotFound {
		t.Fatalf("a dry run wrote the route: %d", code)
	}
	if code, out = call(http.MethodPost, "/v1/routes:apply", strings.Replace(apply, "DRY", "false", 1)); code != http.StatusOK {
		t.Fatalf("POST /v1/routes:apply: %d %v", code, out)
	}
	code, out = call(http.MethodGet, "/v1/routes", "")
	if routes, _ := out["routes"].([]any); code != http.StatusOK || len(routes) != 2 {
		t.Fatalf("GET /v1/routes: %d %v", code, out)
	}
	if code, out = call(http.MethodDelete, "/v1/routes/web", ""); code != http.StatusOK {
		t.Fatalf("DELETE /v1/routes/web: %d %v", code, out)
	}
	if code, _ = call(http.MethodGet, "/v1/routes/web", ""); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404", code)
	}
	code, out = call(http.MethodGet, "/v1/sites", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/sites: %d %v", code, out)
	}
	if code, out = call(http.MethodGet, "/v1/sites/docs", ""); code != http.StatusNotFound {
		t.Fatalf("GET /v1/sites/docs: %d %v", code, out)
	}
	if code, out = call(http.MethodPost, "/v1/sites/docs/rollback", `{}`); code != http.StatusNotFound {
		t.Fatalf("POST /v1/sites/docs/rollback: %d %v", code, out)
	}
}
