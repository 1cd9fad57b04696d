package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/containercodes/cc/controlplane/ui"
	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestDashboardServedOnTheAPIPort: /ui/ answers without a token with the
// dashboard's security headers, GET / leads there, and other unknown paths
// still answer the API's JSON 404.
func TestDashboardServedOnTheAPIPort(t *testing.T) {
	srv := testcluster.Start(t)
	client := *srv.HTTPClient()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string) *http.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	res := get("/")
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /: status %d, Location %q; want 302 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/", "/ui/jobs"} {
		res = get(path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s without a token: status %d, want 200", path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != ui.ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: Content-Type %q, X-Content-Type-Options %q", path, res.Header.Get("Content-Type"), res.Header.Get("X-Content-Type-Options"))
		}
	}
	res = get("/ui")
	if res.StatusCode/100 != 3 || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: status %d, Location %q; want a redirect to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	res = get("/ui/assets/missing-0000.js")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("a missing asset: status %d, want 404", res.StatusCode)
	}
	res = get("/nowhere")
	if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /nowhere: status %d, Content-Type %q; want the API's JSON 404", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
