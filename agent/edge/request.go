package edge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"
)

// record is what a request's access log line says, filled on the way.
type record struct {
	route    string
	upstream string
	// upstreamNode is the node of the upstream's task (metrics label).
	upstreamNode string
	reqID        string
	client       string
	corsOrigin   string
	err          error
}

type recordKey struct{}

func recordOf(ctx context.Context) *record {
	if r, ok := ctx.Value(recordKey{}).(*record); ok {
		return r
	}
	return &record{}
}

// requestID keeps a client's X-Request-Id when it is well formed (1 to
// 128 characters of letters, digits and -_.:+=/), else makes one.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := given[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || byteIn("-_.:+=/", c)
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func byteIn(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// statusWriter remembers the status and counts the body bytes.
type statusWriter struct {
	rw     http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) Header() http.Header { return w.rw.Header() }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.rw.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.rw.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush flushes the writer below.
func (w *statusWriter) Flush() { http.NewResponseController(w.rw).Flush() }

// Unwrap gives http.ResponseController the writer below.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.rw }

// responseStatus is the status a request was answered with.
func responseStatus(r *http.Request, sw *statusWriter) int {
	status := sw.status
	if status == 0 && r.Header.Get("Upgrade") != "" {
		status = http.StatusSwitchingProtocols // hijacked: the 101 went on the connection
	}
	return status
}

// logAccess writes the request's access log line.
func (s *Server) logAccess(r *http.Request, rec *record, sw *statusWriter, start time.Time) {
	if !s.access.Enabled(r.Context(), slog.LevelInfo) {
		return // nothing built for a line that would be dropped
	}
	status := responseStatus(r, sw)
	attrs := []slog.Attr{
		slog.String("route", rec.route),
		slog.String("upstream", rec.upstream),
		slog.Int("status", status),
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("request_id", rec.reqID),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("client", rec.client),
		slog.String("proto", r.Proto),
	}
	if r.TLS != nil {
		attrs = append(attrs, slog.String("tls", tls.VersionName(r.TLS.Version)))
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String("err", rec.err.Error()))
	}
	s.access.LogAttrs(r.Context(), slog.LevelInfo, "edge access", attrs...)
}
