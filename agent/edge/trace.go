package edge

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/internal/tracing"
)

// traceRequest starts the server span of a request, the child of the
// client's traceparent when it sent one, and returns the request with the
// span in its context; end finishes the span with what the request came
// to. With tracing off, a client's span context still rides along to the
// upstream (injectTrace).
func (s *Server) traceRequest(r *http.Request) (*http.Request, func(rec *record, sw *statusWriter)) {
	ctx := tracing.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", r.Host),
		attribute.String("network.protocol.version", r.Proto),
	))
	return r.WithContext(ctx), func(rec *record, sw *statusWriter) {
		if !span.IsRecording() {
			return
		}
		status := sw.status
		if status == 0 && r.Header.Get("Upgrade") != "" {
			status = http.StatusSwitchingProtocols
		}
		if rec.route != "" {
			span.SetName(r.Method + " " + rec.route)
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("cc.edge.route", rec.route),
			attribute.String("cc.edge.upstream", rec.upstream), attribute.String("cc.request_id", rec.reqID),
			attribute.String("client.address", rec.client))
		if status >= 500 {
			msg := http.StatusText(status)
			if rec.err != nil {
				msg = rec.err.Error()
			}
			span.SetStatus(codes.Error, msg)
		}
		span.End()
	}
}

// injectTrace sets the upstream request's traceparent (and tracestate) to
// the edge's span of the request, or to the client's when tracing is off,
// so that the upstream continues the same trace.
func injectTrace(in, out *http.Request) {
	tracing.Propagator().Inject(in.Context(), propagation.HeaderCarrier(out.Header))
}
