// Package ui serves the web dashboard (frontend/, built by `make ui` into
// dist/ and embedded here) at /ui/ on the API port: the files as built,
// their precompressed .br and .gz variants picked by Accept-Encoding,
// hashed assets cached for a year, index.html for every other path under
// /ui/ (the app routes in the browser), a strict Content-Security-Policy on
// every answer, and a page that says how to build the dashboard when this
// program was built without it. It serves static files only: the app
// reads everything through the authenticated API.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every answer under Prefix: scripts,
// styles, fonts and calls from this origin only, images also as data:
// URLs, no plugins, no frames of it elsewhere, no <base>.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Cache-Control values: hashed assets never change under their name;
// everything else is checked again at each use (its ETag makes that cheap).
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// file is one file of the build with its precompressed variants.
type file struct {
	name        string // path in the build, e.g. "assets/index-3f2a.js"
	contentType string
	variants    map[string]variant // by content coding: "", "br", "gzip"
}

type variant struct {
	data []byte
	etag string
}

// Handler serves the dashboard embedded in this program at Prefix (mount it
// there; it reads the whole path).
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed directive names dist
	}
	return NewHandler(sub)
}

// NewHandler serves the dashboard built into files (index.html at its root,
// hashed files under assets/, each perhaps with name.br and name.gz beside
// it) at Prefix. Without index.html it serves a page that says how to build
// the dashboard. The files are read once, here.
func NewHandler(files fs.FS) http.Handler {
	h := &handler{files: map[string]*file{}}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(p), ".") {
			return nil
		}
		coding, orig := "", p
		switch {
		case strings.HasSuffix(p, ".br"):
			coding, orig = "br", strings.TrimSuffix(p, ".br")
		case strings.HasSuffix(p, ".gz"):
			coding, orig = "gzip", strings.TrimSuffix(p, ".gz")
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return nil
		}
		f := h.files[orig]
		if f == nil {
			f = &file{name: orig, contentType: contentType(orig), variants: map[string]variant{}}
			h.files[orig] = f
		}
		sum := sha256.Sum256(data)
		tag := hex.EncodeToString(sum[:16])
		if coding != "" {
			tag += "-" + coding
		}
		f.variants[coding] = variant{data: data, etag: `"` + tag + `"`}
		return nil
	})
	// A .gz or .br without its original is a file of its own (an archive).
	for name, f := range h.files {
		if _, ok := f.variants[""]; ok {
			continue
		}
		delete(h.files, name)
		for coding, v := range f.variants {
			ext := map[string]string{"br": ".br", "gzip": ".gz"}[coding]
			h.files[name+ext] = &file{name: name + ext, contentType: contentType(name + ext), variants: map[string]variant{"": v}}
		}
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		h.index = &file{name: "index.html", contentType: "text/html; charset=utf-8",
			variants: map[string]variant{"": {data: []byte(notBuiltPage), etag: `"not-built"`}}}
		h.notBuilt = true
	}
	return h
}

type handler struct {
	files    map[string]*file
	index    *file
	notBuilt bool
}

// Built reports whether h serves a built dashboard (false: the page that
// says how to build it).
func Built(h http.Handler) bool {
	hh, ok := h.(*handler)
	return ok && !hh.notBuilt
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard's files are read with GET", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.Redirect(w, r, Prefix, http.StatusFound)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+rest), "/")
	if f := h.files[name]; f != nil && name != "index.html" {
		if strings.HasPrefix(name, "assets/") {
			hdr.Set("Cache-Control", cacheImmutable)
		} else {
			hdr.Set("Cache-Control", cacheRevalidate)
		}
		h.serve(w, r, f)
		return
	}
	if looksLikeFile(name) {
		// A missing script or style must fail plainly, not be answered
		// with the app's HTML (which the browser would refuse, confusingly).
		hdr.Set("Cache-Control", cacheRevalidate)
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no such file in the dashboard's build: /ui/" + name + "\n"))
		return
	}
	// Any other path is one of the app's routes: it draws it in the browser.
	hdr.Set("Cache-Control", cacheRevalidate)
	h.serve(w, r, h.index)
}

// looksLikeFile says whether a missing name is a file the build would hold
// (under assets/, or with a static file's extension) rather than a route.
func looksLikeFile(name string) bool {
	if name == "assets" || strings.HasPrefix(name, "assets/") {
		return true
	}
	switch path.Ext(name) {
	case ".js", ".mjs", ".css", ".map", ".png", ".svg", ".ico", ".jpg", ".webp", ".woff", ".woff2", ".ttf", ".wasm", ".webmanifest", ".txt", ".br", ".gz":
		return true
	}
	return false
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, f *file) {
	hdr := w.Header()
	coding := ""
	if len(f.variants) > 1 {
		hdr.Add("Vary", "Accept-Encoding")
		coding = pickEncoding(r.Header.Get("Accept-Encoding"), f.variants)
	}
	v := f.variants[coding]
	if coding != "" {
		hdr.Set("Content-Encoding", coding)
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("ETag", v.etag)
	// ServeContent answers Range, If-None-Match and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(v.data))
}

// pickEncoding picks br, then gzip, among the variants the client accepts
// (q above 0, "*" counting for any coding it does not name); "" is the
// file as built.
func pickEncoding(accept string, variants map[string]variant) string {
	q := map[string]float64{}
	star := -1.0
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		weight := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if x, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					weight = x
				} else {
					weight = 0
				}
			}
		}
		if name == "*" {
			star = weight
			continue
		}
		if name == "x-gzip" {
			name = "gzip"
		}
		q[name] = weight
	}
	accepted := func(c string) bool {
		if w, ok := q[c]; ok {
			return w > 0
		}
		return star > 0
	}
	for _, c := range []string{"br", "gzip"} {
		if _, ok := variants[c]; ok && accepted(c) {
			return c
		}
	}
	return ""
}

// contentType is the media type of a built file, by its extension.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".webmanifest":
		return "application/manifest+json"
	case ".wasm":
		return "application/wasm"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".gz":
		return "application/gzip"
	case ".br":
		return "application/octet-stream"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// notBuiltPage is served at /ui/ by a program built without the dashboard.
// No inline style or script: the CSP above applies to it too.
const notBuiltPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Container Codes: the dashboard is not built</title>
</head>
<body>
<main>
<h1>The dashboard is not built into this server</h1>
<p>This <code>cc-controlplane</code> was built without the web dashboard's files.
To include them, build it from the source tree with Node.js 20 or newer and npm installed:</p>
<pre><code>make ui      # builds frontend/ into controlplane/ui/dist
make build   # builds the programs (runs make ui first when npm is present)</code></pre>
<p><code>make ui-dev</code> runs the dashboard from <code>frontend/</code> with hot reload against a running cluster instead.</p>
<p>The API itself works without the dashboard: it is under <code>/v1/</code>
(its description: <code>/v1/openapi.json</code>), used by <code>ccctl</code> and any HTTP client with an API token.</p>
</main>
</body>
</html>
`
