package fsm

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/internal/tracing"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// traceReplayAge is how old a command may be and still get an apply span:
// an entry replayed long after it was proposed (a restart, a new server
// catching up) belongs to no live trace.
const traceReplayAge = time.Minute

// SetTracing makes the state machine start a span ("fsm.apply") for every
// command that carries a trace context, as the child of the span that
// proposed it. Call it before the state machine applies anything; nil
// (the default) starts none.
func (f *FSM) SetTracing(tp trace.TracerProvider) {
	if tp == nil {
		f.tracer = nil
		return
	}
	f.tracer = tp.Tracer("github.com/containercodes/cc/controlplane/fsm")
}

// CommandName is a command type's name without its enum prefix, as spans
// and logs show it ("CREATE_CONTAINER").
func CommandName(t statev1.CommandType) string {
	return strings.TrimPrefix(t.String(), "COMMAND_TYPE_")
}

// traceApply starts the apply span of cmd when it carries a trace context;
// the returned function ends it with the command's outcome.
func (tx *txn) traceApply(cmd *statev1.Command) func(error) {
	if tx.tracer == nil || len(cmd.TraceContext) == 0 || cmd.IssuedAt == nil || time.Since(cmd.IssuedAt.AsTime()) > traceReplayAge {
		return func(error) {}
	}
	_, span := tx.tracer.Start(tracing.Extract(context.Background(), cmd.TraceContext), "fsm.apply",
		trace.WithAttributes(attribute.String("cc.command.type", CommandName(cmd.Type)), attribute.Int64("cc.raft.index", int64(tx.index))))
	return func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
