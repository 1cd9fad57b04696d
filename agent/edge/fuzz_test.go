package edge

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// FuzzServeHost drives untrusted Host headers and paths through the whole
// lookup: no panic, and a site only ever sees a clean path below its
// prefix.
func FuzzServeHost(f *testing.F) {
	for _, seed := range [][2]string{
		{"app.test", "/docs/a"}, {"APP.test:80", "/docs/../../etc/passwd"}, {"x.app.test", "//docs//./a/"},
		{"[::1]:80", "/"}, {"", ""}, {"app.test.", "/docs%2F..%2Fx"},
	} {
		f.Add(seed[0], seed[1])
	}
	s, err := New(Options{HTTPAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler),
		SiteHandler: func(dir string, spec *ccv1.SiteSpec) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Site-Path", r.URL.Path)
			}), nil
		}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.ln.Close()
	s.Update(Config{Routes: []*ccv1.EdgeRoute{
		{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"*.app.test"}, PathPrefix: "/api/"}},
	}, Sites: []*ccv1.EdgeSite{
		{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"app.test"}, PathPrefix: "/docs"}, BundleDigest: "d"},
	}, SiteDirs: map[string]string{"d": "dir"}})
	f.Fuzz(func(t *testing.T, host, path string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Host = host
		req.URL.Path = path
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			p := rec.Header().Get("X-Site-Path")
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "//") {
				t.Fatalf("host %q path %q: the site saw %q", host, path, p)
			}
		case http.StatusNotFound, http.StatusServiceUnavailable:
		default:
			t.Fatalf("host %q path %q: status %d", host, path, rec.Code)
		}
	})
}
