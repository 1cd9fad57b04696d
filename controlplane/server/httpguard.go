package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/containercodes/cc/controlplane/auth"
)

// maxRESTBody bounds a REST request's body. Every REST call takes JSON;
// the large uploads (image load, job input, site deploy) are gRPC client
// streams of chunks, with their own limits, and never pass here.
const maxRESTBody = 16 << 20

// gatewayMaxAnswer bounds an answer the REST gateway takes from the gRPC
// server in this process.
const gatewayMaxAnswer = 256 << 20

// recoverHTTP answers 500 with a plain JSON error when next panics, and logs
// the panic with its stack. When the response has begun, the connection is
// cut instead (http.ErrAbortHandler), so that the client does not take a
// truncated answer for a whole one.
func recoverHTTP(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("panic in an HTTP handler", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if tw.wrote.Load() {
				panic(http.ErrAbortHandler)
			}
			writeStatusJSON(w, http.StatusInternalServerError, status.New(codes.Internal, "internal error: the server failed while handling this request; it is logged on the server"))
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the response has begun.
type trackingWriter struct {
	http.ResponseWriter
	wrote atomic.Bool
}

func (w *trackingWriter) WriteHeader(code int) {
	w.wrote.Store(true)
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote.Store(true)
	return w.ResponseWriter.Write(b)
}

// Flush passes a flush on, for streamed answers (logs -f).
func (w *trackingWriter) Flush() {
	w.wrote.Store(true)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyLimitKey carries a request's *bodyLimit in its context.
type bodyLimitKey struct{}

// bodyLimit is a request body cut at a limit; exceeded is set once the
// reader asked for more.
type bodyLimit struct {
	limit    int64
	exceeded atomic.Bool
	rc       io.ReadCloser
}

func (b *bodyLimit) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.exceeded.Store(true)
	}
	return n, err
}

func (b *bodyLimit) Close() error { return b.rc.Close() }

// limitBody refuses a request whose declared length is over limit with 413
// before anything is read, and cuts the body of any other at limit: the
// error handler of the gateway (restError) then answers 413 too.
func limitBody(limit int64, next http.Handler) http.Handler {
	return limitBodyFor(func(*http.Request) int64 { return limit }, next)
}

// limitBodyFor is limitBody with a limit chosen for each request.
func limitBodyFor(limitOf func(*http.Request) int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := limitOf(r)
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &bodyLimit{limit: limit, rc: http.MaxBytesReader(w, r.Body, limit)}
		r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, b))
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

// bodyTooLarge reports whether r's body was cut by limitBody, and the limit.
func bodyTooLarge(r *http.Request) (int64, bool) {
	b, _ := r.Context().Value(bodyLimitKey{}).(*bodyLimit)
	if b == nil || !b.exceeded.Load() {
		return 0, false
	}
	return b.limit, true
}

// messageTooLarge reports whether err is gRPC's refusal of a message over
// its size limit. grpc-go says ResourceExhausted, which the gateway would
// answer with 429 Too Many Requests, as for a rate limit; the caller must
// send less, not wait, so REST answers 413.
func messageTooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return false
	}
	m := st.Message()
	return strings.Contains(m, "message larger than max")
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	writeStatusJSON(w, http.StatusRequestEntityTooLarge, status.Newf(codes.ResourceExhausted,
		"the request body is larger than the limit of %d bytes (%s)", limit, sizeText(limit)))
}

// writeStatusJSON writes st as the gateway writes errors: {"code",
// "message", "details"}, with HTTP status code.
func writeStatusJSON(w http.ResponseWriter, code int, st *status.Status) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(st.Proto())
	if err != nil {
		b = []byte(`{"code":13,"message":"internal error"}`)
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(b)
}

// restError is the gateway's error handler: a body cut at the limit or a
// message over gRPC's size limit answers 413; other errors go to the
// gateway's handler with the bearer challenge on 401.
func restError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if limit, ok := bodyTooLarge(r); ok {
		writeTooLarge(w, limit)
		return
	}
	if messageTooLarge(err) {
		writeStatusJSON(w, http.StatusRequestEntityTooLarge, status.New(codes.ResourceExhausted,
			"the request is larger than the server takes in one message: "+status.Convert(err).Message()))
		return
	}
	if d := auth.RetryAfter(err); d > 0 {
		// A rate limit's wait (its RetryInfo), in whole seconds.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, bearerChallenge{w}, r, err)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
