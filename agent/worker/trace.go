package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// span starts a span of work on an assignment. As the child of the
// request that created the container (its trace context came with the
// assignment) when child is true; otherwise (a restart by policy, long
// after that request) as a new trace that links to it.
func (w *Worker) span(ctx context.Context, name string, a *ccv1.Assignment, child bool, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(append([]attribute.KeyValue{
		attribute.String("cc.container.id", a.GetContainerId()), attribute.String("cc.container.name", a.GetName()),
	}, attrs...)...)}
	switch {
	case child:
		ctx = tracing.Extract(ctx, a.GetTraceContext())
	default:
		opts = append(opts, trace.WithNewRoot())
		if sc := tracing.Remote(a.GetTraceContext()); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	return w.tracer.Start(ctx, name, opts...)
}

// endSpan ends a span with an error status when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
