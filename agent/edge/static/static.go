// Package static serves a static site from a directory that
// internal/sitebundle unpacked: files from the manifest only (the manifest
// is the allow-list, so no stray file or planted link is served), opened
// through an os.Root, with index.html for directories, an optional SPA
// fallback and custom 404, MIME types from the manifest, strong ETags from
// the content hash (one per encoding), Last-Modified, conditional requests,
// byte ranges and the precompressed variant chosen from Accept-Encoding.
//
// The proxy routes a request to the handler with the site's path prefix
// already stripped: the handler sees paths relative to the site's root. It
// reads r.URL.EscapedPath(), so a prefix must be stripped from both Path
// and RawPath (as http.StripPrefix does) for encoded characters to be
// judged as the client sent them.
//
// Rules picked here:
//   - SPA: a path that names no file and no directory with an index, and
//     whose last segment has no "." (so it looks like a client-side route,
//     not a missing asset), gets /index.html with 200. "/app.js" missing is
//     a 404, never HTML.
//   - ETag: `"sha256-<first 32 hex digits of the file's SHA-256>"`, with
//     "-br", "-zstd" or "-gzip" before the closing quote for a variant.
//   - Ranges apply to the identity encoding only: a GET with a Range header
//     gets the uncompressed file, so byte offsets always mean the file's
//     bytes and If-Range compares with the identity ETag. Ranges and
//     encodings are handled here rather than by http.ServeContent, which
//     cannot tell ETags apart per encoding.
//   - If-Match and If-Unmodified-Since are honoured too (412), before
//     If-None-Match and If-Modified-Since, as RFC 9110 orders them.
//   - Errors (400, 404, 405, 412, 416, 500) carry "Cache-Control: no-cache", the
//     custom 404 page included, so that a long max-age of the site never
//     pins a missing page.
package static

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containercodes/cc/internal/sitebundle"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultCacheControl is the Cache-Control of a site that sets none.
const DefaultCacheControl = "public, max-age=0, must-revalidate"

// Site is the handler of one unpacked bundle. It keeps the directory open
// (an os.Root) until Close, so requests in flight finish even if the
// directory is removed when a new version is swapped in.
type Site struct {
	root     *os.Root
	manifest *sitebundle.Manifest
	dirs     map[string]bool // every directory holding a file, "" the root
	cache    string
	spa      bool
	notFound *sitebundle.File

	// small holds the content of small files once read (stored name →
	// bytes): a bundle never changes, so a hot small file costs no
	// open, stat and read per request, and its body goes out in one
	// write with the headers. smallBytes counts what it holds, at most
	// smallBudget.
	small      sync.Map
	smallBytes atomic.Int64
}

// Files of at most smallFile bytes are kept in memory once read, up to
// smallBudget bytes per site.
const (
	smallFile   = 64 << 10
	smallBudget = 32 << 20
)

// cached returns the content of a small stored file, reading it once.
func (s *Site) cached(name string, size int64) ([]byte, bool) {
	if size > smallFile {
		return nil, false
	}
	if b, ok := s.small.Load(name); ok {
		return b.([]byte), true
	}
	if s.smallBytes.Load()+size > smallBudget {
		return nil, false
	}
	file, err := s.open(name, size)
	if err != nil {
		return nil, false
	}
	defer file.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(file, b); err != nil {
		return nil, false
	}
	if _, loaded := s.small.LoadOrStore(name, b); !loaded {
		s.smallBytes.Add(size)
	}
	return b, true
}

// New serves the bundle unpacked in dir (see sitebundle.Unpack) with the
// site's spec. A not_found file missing from the bundle is not an error:
// a plain 404 is served instead. The handler returned is a *Site; call
// Close when it serves no more.
func New(dir string, spec *ccv1.SiteSpec) (http.Handler, error) {
	m, err := sitebundle.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	s := &Site{root: root, manifest: m, dirs: map[string]bool{"": true}, cache: spec.GetCacheControl()}
	if s.cache == "" {
		s.cache = DefaultCacheControl
	}
	s.spa = spec.GetSpa()
	if nf := strings.Trim(spec.GetNotFound(), "/"); nf != "" {
		s.notFound = m.Lookup(path.Clean(nf))
	}
	for _, f := range m.Files {
		for d := path.Dir(f.Path); d != "." && !s.dirs[d]; d = path.Dir(d) {
			s.dirs[d] = true
		}
	}
	return s, nil
}

// Close releases the directory.
func (s *Site) Close() error { return s.root.Close() }

func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		s.fail(w, http.StatusMethodNotAllowed)
		return
	}
	p, dir, err := resolvePath(r.URL.EscapedPath())
	if err != nil {
		s.fail(w, http.StatusBadRequest)
		return
	}
	if f := s.manifest.Lookup(p); f != nil && p != "" {
		if dir {
			s.notFoundPage(w, r)
			return
		}
		s.serve(w, r, f, false)
		return
	}
	if s.dirs[p] {
		index := "index.html"
		if p != "" {
			index = p + "/index.html"
		}
		if f := s.manifest.Lookup(index); f != nil {
			if dir {
				s.serve(w, r, f, false)
				return
			}
			// Relative, so that it holds under the proxy's path prefix.
			loc := path.Base(p) + "/"
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			h.Set("Location", loc)
			h.Set("Cache-Control", s.cache)
			w.WriteHeader(http.StatusPermanentRedirect)
			return
		}
	}
	if s.spa && !strings.Contains(path.Base(p), ".") {
		if f := s.manifest.Lookup("index.html"); f != nil {
			s.serve(w, r, f, false)
			return
		}
	}
	s.notFoundPage(w, r)
}

func (s *Site) notFoundPage(w http.ResponseWriter, r *http.Request) {
	if s.notFound == nil {
		s.fail(w, http.StatusNotFound)
		return
	}
	s.serve(w, r, s.notFound, true)
}

// fail writes a short plain-text error.
func (s *Site) fail(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	body := strconv.Itoa(status) + " " + strings.ToLower(http.StatusText(status)) + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// ETag returns the strong ETag of f in the encoding enc ("" for identity).
func ETag(f *sitebundle.File, enc string) string {
	tag := `"sha256-` + f.SHA256[:32]
	if enc != "" {
		tag += "-" + enc
	}
	return tag + `"`
}

// serve sends f: as the not_found page (status 404, no validators, no
// conditionals or ranges) or as the file asked for.
func (s *Site) serve(w http.ResponseWriter, r *http.Request, f *sitebundle.File, notFound bool) {
	h := w.Header()
	var available []string
	for _, v := range f.Variants {
		available = append(available, v.Encoding)
	}
	if len(available) > 0 {
		h.Set("Vary", "Accept-Encoding")
	}
	rangeHeader := ""
	if r.Method == http.MethodGet && !notFound {
		rangeHeader = r.Header.Get("Range")
	}
	enc := ""
	if rangeHeader == "" {
		ae, present := r.Header["Accept-Encoding"]
		enc = chooseEncoding(strings.Join(ae, ","), present, available)
	}
	name, size := f.Stored(), f.Size
	for _, v := range f.Variants {
		if v.Encoding == enc {
			name, size = v.Name, v.Size
		}
	}
	modified := time.Unix(f.MTime, 0).UTC()
	if notFound {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", s.cache)
		h.Set("ETag", ETag(f, enc))
		h.Set("Last-Modified", modified.Format(http.TimeFormat))
		if !preconditions(r, ETag(f, enc), f.MTime) {
			s.fail(w, http.StatusPreconditionFailed)
			return
		}
		if notModified(r, ETag(f, enc), f.MTime) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	body, inMemory := s.cached(name, size)
	var file *os.File
	if !inMemory {
		var err error
		if file, err = s.open(name, size); err != nil {
			h.Del("ETag")
			h.Del("Last-Modified")
			h.Del("Vary")
			s.fail(w, http.StatusInternalServerError)
			return
		}
		defer file.Close()
	}
	h.Set("Content-Type", f.Type)
	status := http.StatusOK
	if notFound {
		status = http.StatusNotFound
	} else {
		h.Set("Accept-Ranges", "bytes")
	}
	if rangeHeader != "" && ifRange(r.Header.Get("If-Range"), ETag(f, ""), f.MTime) {
		ranges, err := parseRange(rangeHeader, size)
		switch {
		case err == errRangeUnsatisfiable:
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			s.fail(w, http.StatusRequestedRangeNotSatisfiable)
			return
		case err == nil && sumLengths(ranges) <= size:
			var content io.ReaderAt = file
			if inMemory {
				content = bytes.NewReader(body)
			}
			s.serveRanges(w, content, f.Type, size, ranges)
			return
		}
	}
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(status)
	switch {
	case r.Method == http.MethodHead:
	case inMemory:
		w.Write(body)
	default:
		io.Copy(w, file)
	}
}

// open opens a stored file without following a link at its name (the
// os.Root keeps the rest inside the directory) and checks it is the
// regular file of the size the manifest says.
func (s *Site) open(name string, size int64) (*os.File, error) {
	file, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != size {
		file.Close()
		return nil, fmt.Errorf("static: %s is not the file of the manifest", name)
	}
	return file, nil
}

// preconditions applies If-Match (strong comparison, "*" matches), else
// If-Unmodified-Since; false means 412 (RFC 9110 §13.2.2, steps 1 and 2).
func preconditions(r *http.Request, etag string, mtime int64) bool {
	if im, ok := r.Header["If-Match"]; ok {
		for _, v := range im {
			for elem := range strings.SplitSeq(v, ",") {
				elem = strings.Trim(elem, " \t")
				if elem == "*" || etagMatchStrong(elem, etag) {
					return true
				}
			}
		}
		return false
	}
	if ius := r.Header.Get("If-Unmodified-Since"); ius != "" {
		if t, err := http.ParseTime(ius); err == nil {
			return mtime <= t.Unix()
		}
	}
	return true
}

// notModified applies If-None-Match (weak comparison), else
// If-Modified-Since (RFC 9110 §13.2.2).
func notModified(r *http.Request, etag string, mtime int64) bool {
	if inm, ok := r.Header["If-None-Match"]; ok {
		for _, v := range inm {
			if etagMatchWeak(v, etag) {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && mtime <= t.Unix()
	}
	return false
}

// ifRange tells whether a Range may be honoured: no If-Range, or one that
// matches the identity ETag strongly or equals Last-Modified exactly.
func ifRange(h, etag string, mtime int64) bool {
	h = strings.Trim(h, " \t")
	if h == "" {
		return true
	}
	if strings.HasPrefix(h, `"`) || strings.HasPrefix(h, "W/") {
		return etagMatchStrong(h, etag)
	}
	t, err := http.ParseTime(h)
	return err == nil && t.Unix() == mtime
}

func sumLengths(ranges []byteRange) int64 {
	var n int64
	for _, r := range ranges {
		n += r.length
	}
	return n
}

func contentRange(r byteRange, size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.start, r.start+r.length-1, size)
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// serveRanges sends 206: one range as such, several as
// multipart/byteranges.
func (s *Site) serveRanges(w http.ResponseWriter, file io.ReaderAt, typ string, size int64, ranges []byteRange) {
	h := w.Header()
	if len(ranges) == 1 {
		r := ranges[0]
		h.Set("Content-Range", contentRange(r, size))
		h.Set("Content-Length", strconv.FormatInt(r.length, 10))
		w.WriteHeader(http.StatusPartialContent)
		if f, ok := file.(*os.File); ok {
			if _, err := f.Seek(r.start, io.SeekStart); err == nil {
				io.CopyN(w, f, r.length) // sendfile, through the LimitedReader
			}
			return
		}
		io.Copy(w, io.NewSectionReader(file, r.start, r.length))
		return
	}
	var b [16]byte
	rand.Read(b[:])
	boundary := hex.EncodeToString(b[:])
	parts := func(w io.Writer, body bool) {
		mw := multipart.NewWriter(w)
		mw.SetBoundary(boundary)
		for _, r := range ranges {
			part, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":  {typ},
				"Content-Range": {contentRange(r, size)},
			})
			if err != nil {
				return
			}
			if body {
				if _, err := io.Copy(part, io.NewSectionReader(file, r.start, r.length)); err != nil {
					return
				}
			}
		}
		mw.Close()
	}
	var c countWriter
	parts(&c, false)
	h.Set("Content-Type", "multipart/byteranges; boundary="+boundary)
	h.Set("Content-Length", strconv.FormatInt(c.n+sumLengths(ranges), 10))
	w.WriteHeader(http.StatusPartialContent)
	parts(w, true)
}
