package static

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/containercodes/cc/internal/sitebundle"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

var mtime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func text(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; b.Len() < n; i++ {
		b.WriteString("<p>the edge serves static sites, line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("</p>\n")
	}
	return b.String()
}

// The fixture's files.
var files = map[string]string{
	"index.html":       text("<!doctype html><title>home</title>", 3000),
	"style.css":        "body { color: red }\n",
	"app.js":           "console.log('hi')\n",
	"data.json":        `{"a": 1}`,
	"logo.svg":         `<svg xmlns="http://www.w3.org/2000/svg"></svg>`,
	"img.png":          "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
	"mod.wasm":         "\x00asm\x01\x00\x00\x00" + strings.Repeat("\x00", 500),
	"notes.xyz12":      "plain words with no known extension\n",
	"blob.qqq":         "\x00\x01\x02\x03binary",
	"small.txt":        "0123456789abcdefghij",
	"docs/index.html":  "<h1>docs</h1>",
	"docs/guide.html":  "<h1>guide</h1>",
	"assets/a.txt":     "in a directory without an index",
	"404.html":         "<h1>not here</h1>",
	"victim.txt":       "replaced by a link after unpacking",
	"empty.txt":        "",
	"dir.with.dot/x.t": "x",
}

func tarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		h := &tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// fixture builds and unpacks the site, plants links, and returns handlers
// for a plain site (with a custom 404) and an SPA.
func fixture(t *testing.T) (plain, spa http.Handler, m *sitebundle.Manifest) {
	t.Helper()
	var bundle bytes.Buffer
	if _, err := sitebundle.Build(context.Background(), bytes.NewReader(tarGz(t)), &bundle, sitebundle.Limits{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "site")
	if err := sitebundle.Unpack(&bundle, dir); err != nil {
		t.Fatal(err)
	}
	// Planted after Unpack: links that no manifest lists, and a listed
	// file replaced by a link out.
	for name, target := range map[string]string{
		"files/passwd":        "/etc/passwd",
		"files/manifest.json": "../manifest.json",
		"files/up":            "..",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(dir, "files/victim.txt")
	os.Remove(victim)
	if err := os.Symlink("/etc/passwd", victim); err != nil {
		t.Fatal(err)
	}
	p, err := New(dir, &ccv1.SiteSpec{NotFound: "404.html"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, &ccv1.SiteSpec{Spa: true, CacheControl: "public, max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*Site).Close(); s.(*Site).Close() })
	m, err = sitebundle.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p, s, m
}

const absent = "<absent>"

func TestConformance(t *testing.T) {
	plain, spa, m := fixture(t)
	etag := func(p, enc string) string { return ETag(m.Lookup(p), enc) }
	lastMod := mtime.Format(http.TimeFormat)
	index := files["index.html"]
	small := files["small.txt"]
	type tc struct {
		name   string
		spa    bool
		method string
		target string
		hdr    map[string]string
		status int
		want   map[string]string
		body   *string
		check  func(t *testing.T, res *http.Response, body []byte)
	}
	str := func(s string) *string { return &s }
	decoded := func(enc, want string) func(t *testing.T, res *http.Response, body []byte) {
		return func(t *testing.T, res *http.Response, body []byte) {
			if got := decode(t, enc, body); got != want {
				t.Errorf("the %s body does not decode to the file", enc)
			}
		}
	}
	cases := []tc{
		// Basics, headers, HEAD, methods.
		{name: "root index", target: "/", status: 200, body: &index, want: map[string]string{
			"Content-Type": "text/html; charset=utf-8", "ETag": etag("index.html", ""), "Last-Modified": lastMod,
			"Cache-Control": DefaultCacheControl, "Vary": "Accept-Encoding", "Accept-Ranges": "bytes",
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin",
			"X-Frame-Options": "SAMEORIGIN", "Content-Encoding": absent}},
		{name: "HEAD", method: "HEAD", target: "/small.txt", status: 200, body: str(""), want: map[string]string{
			"Content-Length": "20", "ETag": etag("small.txt", ""), "Content-Type": "text/plain; charset=utf-8"}},
		{name: "HEAD ignores Range", method: "HEAD", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1"}, status: 200, want: map[string]string{"Content-Length": "20"}},
		{name: "POST", method: "POST", target: "/", status: 405, want: map[string]string{"Allow": "GET, HEAD", "X-Content-Type-Options": "nosniff"}},
		{name: "PUT", method: "PUT", target: "/small.txt", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "DELETE", method: "DELETE", target: "/small.txt", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "OPTIONS", method: "OPTIONS", target: "/", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "empty file", target: "/empty.txt", status: 200, body: str(""), want: map[string]string{"Content-Length": "0"}},
		{name: "no Vary without variants", target: "/small.txt", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200, body: &small, want: map[string]string{"Vary": absent, "Content-Encoding": absent}},

		// ETag and conditionals.
		{name: "If-None-Match match", target: "/small.txt", hdr: map[string]string{"If-None-Match": etag("small.txt", "")}, status: 304, body: str(""), want: map[string]string{"ETag": etag("small.txt", ""), "Cache-Control": DefaultCacheControl, "Content-Type": absent}},
		{name: "If-None-Match weak", target: "/small.txt", hdr: map[string]string{"If-None-Match": "W/" + etag("small.txt", "")}, status: 304},
		{name: "If-None-Match list", target: "/small.txt", hdr: map[string]string{"If-None-Match": `"other", W/"x",` + etag("small.txt", "")}, status: 304},
		{name: "If-None-Match star", target: "/small.txt", hdr: map[string]string{"If-None-Match": "*"}, status: 304},
		{name: "If-None-Match other", target: "/small.txt", hdr: map[string]string{"If-None-Match": `"sha256-0000"`}, status: 200, body: &small},
		{name: "If-None-Match variant", target: "/", hdr: map[string]string{"If-None-Match": etag("index.html", "br"), "Accept-Encoding": "br"}, status: 304, want: map[string]string{"ETag": etag("index.html", "br"), "Vary": "Accept-Encoding"}},
		{name: "If-None-Match variant tag, identity asked", target: "/", hdr: map[string]string{"If-None-Match": etag("index.html", "br")}, status: 200},
		{name: "If-Modified-Since equal", target: "/small.txt", hdr: map[string]string{"If-Modified-Since": lastMod}, status: 304},
		{name: "If-Modified-Since later", target: "/small.txt", hdr: map[string]string{"If-Modified-Since": mtime.Add(time.Hour).Format(http.TimeFormat)}, status: 304},
		{name: "If-Modified-Since earlier", target: "/small.txt", hdr: map[string]string{"If-Modified-Since": mtime.Add(-time.Hour).Format(http.TimeFormat)}, status: 200, body: &small},
		{name: "If-Modified-Since ignored with If-None-Match", target: "/small.txt", hdr: map[string]string{"If-Modified-Since": lastMod, "If-None-Match": `"nope"`}, status: 200},
		{name: "If-Modified-Since garbage", target: "/small.txt", hdr: map[string]string{"If-Modified-Since": "yesterday"}, status: 200},

		{name: "If-Match match", target: "/small.txt", hdr: map[string]string{"If-Match": `"x", ` + etag("small.txt", "")}, status: 200, body: &small},
		{name: "If-Match star", target: "/small.txt", hdr: map[string]string{"If-Match": "*"}, status: 200},
		{name: "If-Match other", target: "/small.txt", hdr: map[string]string{"If-Match": `"x"`}, status: 412},
		{name: "If-Match weak never", target: "/small.txt", hdr: map[string]string{"If-Match": "W/" + etag("small.txt", "")}, status: 412},
		{name: "If-Unmodified-Since earlier", target: "/small.txt", hdr: map[string]string{"If-Unmodified-Since": mtime.Add(-time.Hour).Format(http.TimeFormat)}, status: 412},
		{name: "If-Unmodified-Since equal", target: "/small.txt", hdr: map[string]string{"If-Unmodified-Since": lastMod}, status: 200},

		// Ranges.
		{name: "range single", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-4"}, status: 206, body: str("01234"), want: map[string]string{"Content-Range": "bytes 0-4/20", "Content-Length": "5"}},
		{name: "range open", target: "/small.txt", hdr: map[string]string{"Range": "bytes=15-"}, status: 206, body: str("fghij"), want: map[string]string{"Content-Range": "bytes 15-19/20"}},
		{name: "range suffix", target: "/small.txt", hdr: map[string]string{"Range": "bytes=-3"}, status: 206, body: str("hij"), want: map[string]string{"Content-Range": "bytes 17-19/20"}},
		{name: "range end cut", target: "/small.txt", hdr: map[string]string{"Range": "bytes=18-100"}, status: 206, body: str("ij"), want: map[string]string{"Content-Range": "bytes 18-19/20"}},
		{name: "range multiple", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1, 10-11"}, status: 206, check: multipartCheck(small, [][2]int{{0, 2}, {10, 12}}, "bytes 0-1/20", "bytes 10-11/20")},
		{name: "range unsatisfiable", target: "/small.txt", hdr: map[string]string{"Range": "bytes=20-"}, status: 416, want: map[string]string{"Content-Range": "bytes */20"}},
		{name: "range unsatisfiable empty file", target: "/empty.txt", hdr: map[string]string{"Range": "bytes=0-"}, status: 416, want: map[string]string{"Content-Range": "bytes */0"}},
		{name: "range invalid ignored", target: "/small.txt", hdr: map[string]string{"Range": "bytes=5-1"}, status: 200, body: &small},
		{name: "range other unit ignored", target: "/small.txt", hdr: map[string]string{"Range": "items=0-1"}, status: 200, body: &small},
		{name: "range overlapping past size ignored", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-15,0-15"}, status: 200, body: &small},
		{name: "If-Range etag match", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1", "If-Range": etag("small.txt", "")}, status: 206, body: str("01")},
		{name: "If-Range etag other", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1", "If-Range": `"old"`}, status: 200, body: &small},
		{name: "If-Range weak never", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1", "If-Range": "W/" + etag("small.txt", "")}, status: 200, body: &small},
		{name: "If-Range date match", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1", "If-Range": lastMod}, status: 206, body: str("01")},
		{name: "If-Range date other", target: "/small.txt", hdr: map[string]string{"Range": "bytes=0-1", "If-Range": mtime.Add(-time.Hour).Format(http.TimeFormat)}, status: 200},
		{name: "range is identity only", target: "/", hdr: map[string]string{"Range": "bytes=0-14", "Accept-Encoding": "br, gzip"}, status: 206, body: str(index[:15]), want: map[string]string{"Content-Encoding": absent, "ETag": etag("index.html", ""), "Vary": "Accept-Encoding"}},

		// MIME types.
		{name: "mime html", target: "/docs/guide.html", status: 200, want: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "mime css", target: "/style.css", status: 200, want: map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{name: "mime js", target: "/app.js", status: 200, want: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
		{name: "mime json", target: "/data.json", status: 200, want: map[string]string{"Content-Type": "application/json"}},
		{name: "mime svg", target: "/logo.svg", status: 200, want: map[string]string{"Content-Type": "image/svg+xml"}},
		{name: "mime png", target: "/img.png", status: 200, want: map[string]string{"Content-Type": "image/png"}},
		{name: "mime wasm", target: "/mod.wasm", status: 200, want: map[string]string{"Content-Type": "application/wasm"}},
		{name: "mime sniffed text", target: "/notes.xyz12", status: 200, want: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "mime sniffed binary", target: "/blob.qqq", status: 200, want: map[string]string{"Content-Type": "application/octet-stream"}},

		// Encodings.
		{name: "br", target: "/", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200, want: map[string]string{"Content-Encoding": "br", "ETag": etag("index.html", "br"), "Vary": "Accept-Encoding", "Content-Type": "text/html; charset=utf-8"}, check: decoded("br", index)},
		{name: "zstd", target: "/", hdr: map[string]string{"Accept-Encoding": "zstd"}, status: 200, want: map[string]string{"Content-Encoding": "zstd", "ETag": etag("index.html", "zstd")}, check: decoded("zstd", index)},
		{name: "gzip", target: "/", hdr: map[string]string{"Accept-Encoding": "gzip"}, status: 200, want: map[string]string{"Content-Encoding": "gzip", "ETag": etag("index.html", "gzip")}, check: decoded("gzip", index)},
		{name: "browser list prefers br", target: "/", hdr: map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, status: 200, want: map[string]string{"Content-Encoding": "br"}},
		{name: "q-values", target: "/", hdr: map[string]string{"Accept-Encoding": "br;q=0.5, gzip;q=1.0, zstd;q=0.9"}, status: 200, want: map[string]string{"Content-Encoding": "gzip"}, check: decoded("gzip", index)},
		{name: "q=0 excludes", target: "/", hdr: map[string]string{"Accept-Encoding": "br;q=0, zstd;q=0, gzip"}, status: 200, want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "star", target: "/", hdr: map[string]string{"Accept-Encoding": "*"}, status: 200, want: map[string]string{"Content-Encoding": "br"}},
		{name: "star q=0 but gzip", target: "/", hdr: map[string]string{"Accept-Encoding": "*;q=0, gzip;q=0.2"}, status: 200, want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "identity preferred", target: "/", hdr: map[string]string{"Accept-Encoding": "identity, br;q=0.5"}, status: 200, body: &index, want: map[string]string{"Content-Encoding": absent, "ETag": etag("index.html", ""), "Vary": "Accept-Encoding"}},
		{name: "identity only", target: "/", hdr: map[string]string{"Accept-Encoding": "identity"}, status: 200, body: &index, want: map[string]string{"Content-Encoding": absent}},
		{name: "identity q=0", target: "/", hdr: map[string]string{"Accept-Encoding": "identity;q=0, zstd;q=0.1"}, status: 200, want: map[string]string{"Content-Encoding": "zstd"}},
		{name: "nothing acceptable falls back to identity", target: "/", hdr: map[string]string{"Accept-Encoding": "*;q=0"}, status: 200, body: &index, want: map[string]string{"Content-Encoding": absent}},
		{name: "empty Accept-Encoding", target: "/", hdr: map[string]string{"Accept-Encoding": ""}, status: 200, body: &index, want: map[string]string{"Content-Encoding": absent}},
		{name: "x-gzip", target: "/", hdr: map[string]string{"Accept-Encoding": "x-gzip"}, status: 200, want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "unknown coding", target: "/", hdr: map[string]string{"Accept-Encoding": "deflate"}, status: 200, want: map[string]string{"Content-Encoding": absent}},
		{name: "HEAD br", method: "HEAD", target: "/", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200, body: str(""), want: map[string]string{"Content-Encoding": "br", "Content-Length": size(m, "index.html", "br")}},

		// Traversal and bad paths.
		{name: "dotdot", target: "/../../etc/passwd", status: 400},
		{name: "encoded dotdot", target: "/%2e%2e/%2e%2e/etc/passwd", status: 400},
		{name: "encoded slash", target: "/..%2fetc", status: 400},
		{name: "encoded slash lower", target: "/docs%2findex.html", status: 400},
		{name: "inner dotdot", target: "/a/../../b", status: 400},
		{name: "dot segment", target: "/./index.html", status: 400},
		{name: "mixed dot", target: "/.%2e/etc/passwd", status: 400},
		{name: "double encoded", target: "/%252e%252e/%252e%252e/etc/passwd", status: 404, want: map[string]string{"Cache-Control": "no-cache"}},
		{name: "backslash", target: `/..\..\etc\passwd`, status: 400},
		{name: "encoded backslash", target: "/..%5c..%5cetc", status: 400},
		{name: "NUL", target: "/index.html%00.png", status: 400},
		{name: "double slash", target: "//etc/passwd", status: 400},
		{name: "manifest not served", target: "/manifest.json", status: 404},
		{name: "stored variant not served", target: "/enc/br/index.html", status: 404},
		{name: "files prefix not served", target: "/files/index.html", status: 404},

		// Links planted after Unpack.
		{name: "planted link out", target: "/passwd", status: 404},
		{name: "planted link to manifest", target: "/manifest.json", status: 404},
		{name: "planted link to dir", target: "/up/manifest.json", status: 404},
		{name: "listed file replaced by a link", target: "/victim.txt", status: 500, check: func(t *testing.T, _ *http.Response, body []byte) {
			if bytes.Contains(body, []byte("root:")) {
				t.Error("served /etc/passwd")
			}
		}},

		// Index, redirects, custom 404.
		{name: "dir index", target: "/docs/", status: 200, body: str(files["docs/index.html"])},
		{name: "dir redirect", target: "/docs", status: 308, want: map[string]string{"Location": "docs/"}},
		{name: "dir redirect keeps query", target: "/docs?a=1&b=2", status: 308, want: map[string]string{"Location": "docs/?a=1&b=2"}},
		{name: "index.html itself", target: "/docs/index.html", status: 200, body: str(files["docs/index.html"])},
		{name: "dir without index", target: "/assets/", status: 404, body: str(files["404.html"])},
		{name: "file with slash", target: "/style.css/", status: 404},
		{name: "custom 404", target: "/missing", status: 404, body: str(files["404.html"]), want: map[string]string{
			"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache", "ETag": absent, "X-Content-Type-Options": "nosniff"}},
		{name: "custom 404 ignores conditionals", target: "/missing", hdr: map[string]string{"If-None-Match": "*", "Range": "bytes=0-1"}, status: 404, body: str(files["404.html"])},

		// SPA.
		{name: "spa route", spa: true, target: "/users/42/edit", status: 200, body: &index, want: map[string]string{"Cache-Control": "public, max-age=60", "ETag": etag("index.html", "")}},
		{name: "spa root", spa: true, target: "/", status: 200, body: &index},
		{name: "spa file", spa: true, target: "/style.css", status: 200, body: str(files["style.css"])},
		{name: "spa missing asset", spa: true, target: "/missing.js", status: 404, body: str("404 not found\n"), want: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "spa missing asset in dotted dir", spa: true, target: "/dir.with.dot/route", status: 200, body: &index},
		{name: "spa dir redirect", spa: true, target: "/docs", status: 308},
		{name: "spa conditional", spa: true, target: "/route", hdr: map[string]string{"If-None-Match": etag("index.html", "")}, status: 304},
		{name: "spa still refuses traversal", spa: true, target: "/../x", status: 400},
		{name: "plain 404 without spa", target: "/users/42", status: 404, body: str(files["404.html"])},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = "GET"
			}
			req := httptest.NewRequest(method, c.target, nil)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			h := plain
			if c.spa {
				h = spa
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d (body %.80q)", res.StatusCode, c.status, body)
			}
			for k, want := range c.want {
				got, ok := res.Header[http.CanonicalHeaderKey(k)]
				switch {
				case want == absent && ok:
					t.Errorf("%s: %q, want none", k, got)
				case want != absent && (len(got) != 1 || got[0] != want):
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			for _, k := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
				if res.Header.Get(k) == "" {
					t.Errorf("no %s", k)
				}
			}
			if c.body != nil && string(body) != *c.body {
				t.Errorf("body %.80q, want %.80q", body, *c.body)
			}
			if cl := res.Header.Get("Content-Length"); cl != "" && method == "GET" && c.status != 304 && cl != itoa(len(body)) {
				t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
			}
			if c.check != nil {
				c.check(t, res, body)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func size(m *sitebundle.Manifest, p, enc string) string {
	for _, v := range m.Lookup(p).Variants {
		if v.Encoding == enc {
			return strconv.FormatInt(v.Size, 10)
		}
	}
	return "?"
}

func multipartCheck(content string, spans [][2]int, ranges ...string) func(t *testing.T, res *http.Response, body []byte) {
	return func(t *testing.T, res *http.Response, body []byte) {
		mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for i, span := range spans {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			got, _ := io.ReadAll(part)
			if string(got) != content[span[0]:span[1]] {
				t.Errorf("part %d: %q", i, got)
			}
			if cr := part.Header.Get("Content-Range"); cr != ranges[i] {
				t.Errorf("part %d: Content-Range %q, want %q", i, cr, ranges[i])
			}
			if ct := part.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("part %d: Content-Type %q", i, ct)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("after the parts: %v", err)
		}
	}
}

func decode(t *testing.T, enc string, z []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "br":
		r = brotli.NewReader(bytes.NewReader(z))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", enc, err)
	}
	return string(b)
}

// Over a real server and client: the route the proxy takes.
func TestOverHTTP(t *testing.T) {
	plain, _, _ := fixture(t)
	srv := httptest.NewServer(plain)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set("Accept-Encoding", "br")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "br" || decode(t, "br", body) != files["index.html"] {
		t.Fatalf("status %d, encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	req, _ = http.NewRequest("GET", srv.URL+"/small.txt", nil)
	req.Header.Set("Range", "bytes=2-5,8-9")
	res, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 206 {
		t.Fatalf("status %d", res.StatusCode)
	}
	multipartCheck(files["small.txt"], [][2]int{{2, 6}, {8, 10}}, "bytes 2-5/20", "bytes 8-9/20")(t, res, body)
}

// A small file is read once and then served from memory (a bundle never
// changes); a Range of it is cut from the same bytes.
func TestSmallFilesServedFromMemory(t *testing.T) {
	var bundle bytes.Buffer
	if _, err := sitebundle.Build(context.Background(), bytes.NewReader(tarGz(t)), &bundle, sitebundle.Limits{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "site")
	if err := sitebundle.Unpack(&bundle, dir); err != nil {
		t.Fatal(err)
	}
	h, err := New(dir, &ccv1.SiteSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.(*Site).Close()
	get := func(rng string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, "/small.txt", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := get(""); code != 200 || body != files["small.txt"] {
		t.Fatalf("first GET: %d %q", code, body)
	}
	// Gone from the disk: still served, so it came from memory.
	if err := os.Remove(filepath.Join(dir, "files", "small.txt")); err != nil {
		t.Fatal(err)
	}
	if code, body := get(""); code != 200 || body != files["small.txt"] {
		t.Fatalf("GET after the file went: %d %q", code, body)
	}
	if code, body := get("bytes=2-5"); code != 206 || body != files["small.txt"][2:6] {
		t.Fatalf("range from memory: %d %q", code, body)
	}
}
