package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
)

const (
	indexHTML = `<!doctype html><html><head><script type="module" src="/ui/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>`
	appJS     = `console.log("the app");`
)

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func br(t *testing.T, s string) []byte {
	var b bytes.Buffer
	w := brotli.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func built(t *testing.T) http.Handler {
	t.Helper()
	h := NewHandler(fstest.MapFS{
		".keep":                     {Data: nil},
		"index.html":                {Data: []byte(indexHTML)},
		"index.html.gz":             {Data: gz(t, indexHTML)},
		"assets/index-abc123.js":    {Data: []byte(appJS)},
		"assets/index-abc123.js.br": {Data: br(t, appJS)},
		"assets/index-abc123.js.gz": {Data: gz(t, appJS)},
		"assets/index-abc123.css":   {Data: []byte("body{margin:0}")},
		"favicon.svg":               {Data: []byte("<svg xmlns='http://www.w3.org/2000/svg'/>")},
	})
	if !Built(h) {
		t.Fatal("Built = false with an index.html")
	}
	return h
}

func get(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func requireSecurityHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := w.Header().Get("Content-Security-Policy")
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("the CSP allows unsafe sources: %s", csp)
	}
}

func TestIndexAndRoutesAreTheApp(t *testing.T) {
	h := built(t)
	for _, target := range []string{"/ui/", "/ui/index.html", "/ui/jobs", "/ui/jobs/0123abcd", "/ui/nodes/n1?tab=tasks", "/ui/../ui/services"} {
		t.Run(target, func(t *testing.T) {
			w := get(h, http.MethodGet, target)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
			}
			if w.Body.String() != indexHTML {
				t.Fatalf("body %q, want index.html", w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			if w.Header().Get("ETag") == "" {
				t.Error("no ETag")
			}
			requireSecurityHeaders(t, w)
		})
	}
}

func TestAssetsAreImmutable(t *testing.T) {
	h := built(t)
	w := get(h, http.MethodGet, "/ui/assets/index-abc123.css")
	if w.Code != http.StatusOK || w.Body.String() != "body{margin:0}" {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control = %q", got)
	}
	if got := w.Header().Get("Content-Type"); got != "text/css; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	requireSecurityHeaders(t, w)
	// A file at the root of the build (not hashed) is checked again.
	w = get(h, http.MethodGet, "/ui/favicon.svg")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/svg+xml" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("favicon: status %d, Content-Type %q, Cache-Control %q", w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
	}
}

func TestMissingAssetIs404NotTheApp(t *testing.T) {
	h := built(t)
	for _, target := range []string{"/ui/assets/index-gone.js", "/ui/assets/", "/ui/logo.png", "/ui/main.js"} {
		w := get(h, http.MethodGet, target)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, w.Code)
		}
		if strings.Contains(w.Body.String(), "<html") {
			t.Errorf("GET %s answered HTML: %s", target, w.Body)
		}
		requireSecurityHeaders(t, w)
	}
	// Dot files (dist/.keep) are not part of the build.
	if w := get(h, http.MethodGet, "/ui/.keep"); w.Body.String() != indexHTML {
		t.Errorf("GET /ui/.keep: %d %q, want the app", w.Code, w.Body)
	}
}

func TestPrecompressedByAcceptEncoding(t *testing.T) {
	h := built(t)
	for _, c := range []struct {
		accept, want string
	}{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip;q=0.5", "gzip"},
		{"identity", ""},
		{"", ""},
		{"*", "br"},
		{"*;q=0", ""},
		{"br;q=0, *", "gzip"},
	} {
		t.Run(c.accept, func(t *testing.T) {
			w := get(h, http.MethodGet, "/ui/assets/index-abc123.js", "Accept-Encoding", c.accept)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Content-Encoding"); got != c.want {
				t.Fatalf("Content-Encoding = %q, want %q", got, c.want)
			}
			if got := w.Header().Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary = %q", got)
			}
			if got := w.Header().Get("Content-Type"); got != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			var body io.Reader = w.Body
			switch c.want {
			case "br":
				body = brotli.NewReader(w.Body)
			case "gzip":
				zr, err := gzip.NewReader(w.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			b, err := io.ReadAll(body)
			if err != nil || string(b) != appJS {
				t.Fatalf("decoded body %q (%v), want %q", b, err, appJS)
			}
		})
	}
	// Each variant has its own ETag; a conditional request of the same
	// variant answers 304.
	a := get(h, http.MethodGet, "/ui/assets/index-abc123.js", "Accept-Encoding", "br")
	b := get(h, http.MethodGet, "/ui/assets/index-abc123.js", "Accept-Encoding", "gzip")
	if a.Header().Get("ETag") == b.Header().Get("ETag") {
		t.Errorf("br and gzip share the ETag %s", a.Header().Get("ETag"))
	}
	nm := get(h, http.MethodGet, "/ui/assets/index-abc123.js", "Accept-Encoding", "br", "If-None-Match", a.Header().Get("ETag"))
	if nm.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", nm.Code)
	}
	// index.html has only a gzip variant.
	w := get(h, http.MethodGet, "/ui/jobs", "Accept-Encoding", "br, gzip")
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("index: Content-Encoding %q, want gzip", w.Header().Get("Content-Encoding"))
	}
	// A file without variants does not vary.
	w = get(h, http.MethodGet, "/ui/assets/index-abc123.css", "Accept-Encoding", "br, gzip")
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" {
		t.Errorf("css: Content-Encoding %q Vary %q", w.Header().Get("Content-Encoding"), w.Header().Get("Vary"))
	}
}

func TestHeadAndMethods(t *testing.T) {
	h := built(t)
	w := get(h, http.MethodHead, "/ui/assets/index-abc123.js")
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "23" {
		t.Errorf("HEAD: status %d, body %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	w = get(h, http.MethodPost, "/ui/")
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	requireSecurityHeaders(t, w)
}

func TestNotBuiltPageSaysHowToBuild(t *testing.T) {
	h := NewHandler(fstest.MapFS{".keep": {Data: nil}})
	if Built(h) {
		t.Fatal("Built = true without index.html")
	}
	for _, target := range []string{"/ui/", "/ui/jobs"} {
		w := get(h, http.MethodGet, target)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d", target, w.Code)
		}
		body := w.Body.String()
		for _, want := range []string{"make ui", "make build", "<h1>"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s: the page does not say %q:\n%s", target, want, body)
			}
		}
		if strings.Contains(body, "<script") || strings.Contains(body, "style=") || strings.Contains(body, "<style") {
			t.Errorf("the page has inline script or style, which the CSP refuses")
		}
		if w.Header().Get("Content-Type") != "text/html; charset=utf-8" || w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("Content-Type %q Cache-Control %q", w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
		}
		requireSecurityHeaders(t, w)
	}
	if w := get(h, http.MethodGet, "/ui/assets/index-abc123.js"); w.Code != http.StatusNotFound {
		t.Errorf("asset without a build: status %d, want 404", w.Code)
	}
}

// The program's own embedded build (perhaps only dist/.keep) is served.
func TestEmbedded(t *testing.T) {
	w := get(Handler(), http.MethodGet, "/ui/")
	if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	requireSecurityHeaders(t, w)
}
