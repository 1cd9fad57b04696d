// Package compress compresses proxied responses on the fly: br
// (andybalholm/brotli), zstd and gzip (klauspost/compress), chosen by the
// request's Accept-Encoding q-values. It leaves alone what is already
// encoded, not text-like, small (under MinSize), partial or not modified,
// a HEAD, an upgrade or an event stream.
package compress

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// MinSize is the smallest body worth compressing.
const MinSize = 1024

type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

type gzipEncoder struct{ *gzip.Writer }

var pools = map[string]*sync.Pool{
	Brotli: {New: func() any { return brotli.NewWriterLevel(io.Discard, 4) }},
	Gzip: {New: func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, 5)
		return gzipEncoder{w}
	}},
	Zstd: {New: func() any {
		w, _ := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		return zstdEncoder{w}
	}},
}

// Compressible reports whether a Content-Type is worth compressing.
func Compressible(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	switch {
	case ct == "text/event-stream":
		return false
	case strings.HasPrefix(ct, "text/"):
		return true
	case strings.HasSuffix(ct, "+json"), strings.HasSuffix(ct, "+xml"):
		return true
	}
	switch ct {
	case "application/json", "application/javascript", "application/x-javascript", "application/ecmascript",
		"application/xml", "application/wasm", "application/manifest+json", "image/svg+xml",
		"application/x-ndjson", "application/graphql", "font/ttf", "font/otf", "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// Writer compresses what a handler writes when the response qualifies.
// Call Close after the handler returns.
type Writer struct {
	rw       http.ResponseWriter
	encoding string // negotiated

	state int // stateNew, statePending, statePass, stateEncode
	code  int
	buf   []byte
	enc   encoder
}

const (
	stateNew     = iota
	statePending // deciding: buffering up to MinSize of a body of unknown length
	statePass
	stateEncode
)

// NewWriter returns a Writer over rw for r, or nil when r cannot take a
// compressed response (no acceptable encoding, HEAD, an upgrade): then
// write to rw directly.
func NewWriter(rw http.ResponseWriter, r *http.Request) *Writer {
	if r.Method == http.MethodHead || r.Header.Get("Upgrade") != "" {
		return nil
	}
	enc := Negotiate(r.Header.Get("Accept-Encoding"))
	if enc == "" {
		return nil
	}
	return &Writer{rw: rw, encoding: enc}
}

// Header is the response's header.
func (w *Writer) Header() http.Header { return w.rw.Header() }

// Unwrap gives http.ResponseController the writer below (for Hijack).
func (w *Writer) Unwrap() http.ResponseWriter { return w.rw }

// WriteHeader decides whether to compress.
func (w *Writer) WriteHeader(code int) {
	if w.state != stateNew {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.rw.WriteHeader(code) // 1xx informational: not the response yet
		return
	}
	w.code = code
	h := w.rw.Header()
	if !w.qualifies(code, h) {
		w.state = statePass
		w.rw.WriteHeader(code)
		return
	}
	addVary(h)
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < MinSize {
			w.state = statePass
			w.rw.WriteHeader(code)
			return
		}
		w.start()
		return
	}
	w.state = statePending
}

func (w *Writer) qualifies(code int, h http.Header) bool {
	if code < 200 || code == http.StatusNoContent || code == http.StatusPartialContent || code >= 300 {
		return false
	}
	if h.Get("Content-Encoding") != "" || h.Get("Content-Range") != "" {
		return false
	}
	if strings.Contains(strings.ToLower(h.Get("Cache-Control")), "no-transform") {
		return false
	}
	return Compressible(h.Get("Content-Type"))
}

func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

// start sends the header of a compressed response.
func (w *Writer) start() {
	h := w.rw.Header()
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", w.encoding)
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("ETag", "W/"+et)
	}
	w.rw.WriteHeader(w.code)
	w.enc = pools[w.encoding].Get().(encoder)
	w.enc.Reset(w.rw)
	w.state = stateEncode
}

// Write writes body bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.state == stateNew {
		w.WriteHeader(http.StatusOK)
	}
	switch w.state {
	case statePending:
		w.buf = append(w.buf, p...)
		if len(w.buf) < MinSize {
			return len(p), nil
		}
		w.start()
		buf := w.buf
		w.buf = nil
		if _, err := w.enc.Write(buf); err != nil {
			return 0, err
		}
		return len(p), nil
	case stateEncode:
		return w.enc.Write(p)
	default:
		return w.rw.Write(p)
	}
}

// Flush sends what is written so far: a handler that flushes streams, so
// a pending body starts compressed.
func (w *Writer) Flush() {
	switch w.state {
	case statePending:
		w.start()
		if len(w.buf) > 0 {
			w.enc.Write(w.buf)
			w.buf = nil
		}
		fallthrough
	case stateEncode:
		w.enc.Flush()
	}
	http.NewResponseController(w.rw).Flush()
}

// FlushError is Flush for http.ResponseController.
func (w *Writer) FlushError() error {
	w.Flush()
	return nil
}

// Close ends the body: a pending small body goes out as it is, an encoder
// writes its trailer and goes back to its pool.
func (w *Writer) Close() error {
	switch w.state {
	case statePending:
		w.state = statePass
		w.rw.Header().Set("Content-Length", strconv.Itoa(len(w.buf)))
		w.rw.WriteHeader(w.code)
		_, err := w.rw.Write(w.buf)
		w.buf = nil
		return err
	case stateEncode:
		w.state = statePass
		err := w.enc.Close()
		w.enc.Reset(io.Discard)
		pools[w.encoding].Put(w.enc)
		w.enc = nil
		return err
	}
	return nil
}
