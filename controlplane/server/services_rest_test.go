package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestServicesOverREST creates, reads, scales and removes a service through
// the REST gateway; with no node in the cluster its task waits with a reason.
func TestServicesOverREST(t *testing.T) {
	srv := testcluster.Start(t)
	bearer := "Bearer " + srv.Token
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
		req.Header.Set("Authorization", bearer)
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
	code, out := call(http.MethodPost, "/v1/services", `{"name":"web","spec":{"replicas":2,"task":{"image":"cc-demo:latest","command":["/bin/busybox","sleep","1d"]}}}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/services: %d %v", code, out)
	}
	code, out = call(http.MethodPost, "/v1/services", `{"name":"bad.name","spec":{"task":{"image":"x"}}}`)
	if code != http.StatusBadRequest || !strings.Contains(out["message"].(string), "service name") {
		t.Fatalf("POST a bad name: %d %v", code, out)
	}
	var tasks []any
	if !waitFor(func() bool {
		code, out = call(http.MethodGet, "/v1/services/web/tasks", "")
		tasks, _ = out["tasks"].([]any)
		return code == http.StatusOK && len(tasks) == 2 && tasks[0].(map[string]any)["pending_reason"] != nil
	}) {
		t.Fatalf("GET /v1/services/web/tasks: %d %v", code, out)
	}
	if r := tasks[0].(map[string]any)["pending_reason"].(string); !strings.Contains(r, "no node") {
		t.Errorf("pending reason %q does not say that there is no node", r)
	}
	code, out = call(http.MethodPost, "/v1/services/web/scale", `{"replicas":1}`)
	if code != http.StatusOK {
		t.Fatalf("scale: %d %v", code, out)
	}
	code, out = call(http.MethodGet, "/v1/services/web", "")
	svc, _ := out["service"].(map[string]any)
	if code != http.StatusOK || svc["spec"].(map[string]any)["replicas"] != "1" {
		t.Fatalf("GET /v1/services/web after scale: %d %v", code, out)
	}
	if code, out = call(http.MethodDelete, "/v1/services/web", ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, out)
	}
	if code, _ = call(http.MethodGet, "/v1/services/web", ""); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404", code)
	}
}

// waitFor polls cond for up to half a minute.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
