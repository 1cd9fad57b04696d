package runtime

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// span starts a span of a runtime step (a containerd call, the network's
// set-up) under ctx's span; end records its outcome.
func (r *Runtime) span(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	ctx, span := r.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Hops times the steps of one operation, for a debug-level log line that
// shows where its time went.
type Hops struct {
	start, last time.Time
	attrs       []any
}

// NewHops starts timing.
func NewHops() *Hops {
	now := time.Now()
	return &Hops{start: now, last: now}
}

// Mark ends the step called name, begun at the previous mark.
func (h *Hops) Mark(name string) {
	now := time.Now()
	h.attrs = append(h.attrs, slog.Float64(name+"_ms", msOf(now.Sub(h.last))))
	h.last = now
}

// Log writes the steps and the total at debug level.
func (h *Hops) Log(ctx context.Context, log *slog.Logger, msg string, args ...any) {
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	args = append(args, h.attrs...)
	args = append(args, slog.Float64("total_ms", msOf(time.Since(h.start))))
	log.DebugContext(ctx, msg, args...)
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
