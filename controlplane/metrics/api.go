package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// MethodLabel is a gRPC method as a label value: the service and method
// without the package ("JobService/SubmitJob").
func MethodLabel(fullMethod string) string {
	m := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(m, "/"); i >= 0 {
		if j := strings.LastIndex(m[:i], "."); j >= 0 {
			m = m[j+1:]
		}
	}
	return m
}

// UnaryInterceptor counts and times every unary call; it goes first in
// the chain, so that calls refused by the interceptors after it count too.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	if m == nil {
		return handler(ctx, req)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	method := MethodLabel(info.FullMethod)
	m.apiRequests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.apiDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	return resp, err
}

// StreamInterceptor counts every streaming call when it ends. Streams are
// not timed: an agent's session or a `logs -f` lasts as long as it is
// wanted.
func (m *Metrics) StreamInterceptor(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if m == nil {
		return handler(srv, ss)
	}
	err := handler(srv, ss)
	m.apiRequests.WithLabelValues(MethodLabel(info.FullMethod), status.Code(err).String()).Inc()
	return err
}

// HTTPHandler counts the requests h serves under the label handler, by
// HTTP status code.
func (m *Metrics) HTTPHandler(handler string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &codeWriter{ResponseWriter: w}
		defer func() {
			code := cw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.httpRequests.WithLabelValues(handler, strconv.Itoa(code)).Inc()
		}()
		h.ServeHTTP(cw, r)
	})
}

// codeWriter remembers the status a handler wrote.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the writer below (Flush, deadlines).
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes the writer below, for streamed REST answers.
func (w *codeWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }
