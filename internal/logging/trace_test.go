package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

// A line logged with a context that carries a span names its trace and
// span; one without, or without a context, does not.
func TestTraceIDsInLogLines(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	log, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log = log.With("component", "api")
	log.InfoContext(ctx, "with span", "k", "v")
	log.InfoContext(context.Background(), "without span")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d:\n%s", len(lines), buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["trace_id"] != sc.TraceID().String() || first["span_id"] != sc.SpanID().String() {
		t.Errorf("line with a span: trace_id %v span_id %v, want %s %s", first["trace_id"], first["span_id"], sc.TraceID(), sc.SpanID())
	}
	if first["component"] != "api" || first["k"] != "v" || first["msg"] != "with span" {
		t.Errorf("line with a span lost its own attributes: %s", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "trace_id") || strings.Contains(l, "span_id") {
			t.Errorf("line without a span has ids: %s", l)
		}
	}
}

// The text format carries the ids too, and a level below the logger's
// stays out whatever the context.
func TestTraceIDsText(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	log, err := New(&buf, "warn", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.InfoContext(ctx, "filtered")
	log.WarnContext(ctx, "kept")
	out := buf.String()
	if strings.Contains(out, "filtered") {
		t.Errorf("an info line passed a warn logger: %s", out)
	}
	if !strings.Contains(out, "trace_id="+sc.TraceID().String()) || !strings.Contains(out, "span_id="+sc.SpanID().String()) {
		t.Errorf("text line without the ids: %s", out)
	}
}

// Wrapping twice adds the ids once.
func TestWithTraceIDsOnce(t *testing.T) {
	ctx, _ := spanContext(t)
	var buf bytes.Buffer
	h := WithTraceIDs(WithTraceIDs(slog.NewTextHandler(&buf, nil)))
	slog.New(h).WithGroup("g").InfoContext(ctx, "x")
	if n := strings.Count(buf.String(), "trace_id="); n != 1 {
		t.Errorf("trace_id appears %d times: %s", n, buf.String())
	}
}
