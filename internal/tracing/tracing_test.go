package tracing

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/internal/testing/otlptest"
)

func settings(r *otlptest.Receiver, ratio float64) Settings {
	return Settings{Endpoint: r.Addr(), SampleRatio: ratio, Insecure: true, BatchTimeout: 50 * time.Millisecond}
}

func waitSpans(t *testing.T, r *otlptest.Receiver, n int) []otlptest.Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := r.Wait(ctx, func(s []otlptest.Span) bool { return len(s) >= n })
	if err != nil {
		t.Fatalf("want %d spans, got %d: %v\n%s", n, len(spans), err, otlptest.Tree(spans))
	}
	return spans
}

// Off, the provider records nothing but passes a parent's span context
// on; on, spans go to the receiver with the service's resource; a new
// endpoint takes over for tracers taken before the change.
func TestProviderSwapsSettings(t *testing.T) {
	first, second := otlptest.Start(t), otlptest.Start(t)
	p := New("cc-test", "v1", attribute.String("cc.server.id", "s1"))
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	tr := p.Tracer("test") // taken once, as the gRPC handlers do

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx, span := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "off")
	if span.IsRecording() || span.SpanContext().TraceID() != parent.TraceID() {
		t.Fatalf("off: recording %v, trace %s; want a non-recording span of the parent's trace", span.IsRecording(), span.SpanContext().TraceID())
	}
	if got := Inject(ctx)["traceparent"]; !strings.Contains(got, parent.TraceID().String()) {
		t.Errorf("off: the parent's context is not passed on: %q", got)
	}
	span.End()

	changed, err := p.Apply(context.Background(), settings(first, 1))
	if err != nil || !changed {
		t.Fatalf("apply: changed %v, err %v", changed, err)
	}
	if changed, err := p.Apply(context.Background(), settings(first, 1)); err != nil || changed {
		t.Errorf("the same settings again: changed %v, err %v", changed, err)
	}
	_, span = tr.Start(context.Background(), "to first")
	span.End()
	got := waitSpans(t, first, 1)
	if s := got[0]; s.Name != "to first" || s.Service != "cc-test" || s.Resource["cc.server.id"] != "s1" || s.Resource["service.version"] != "v1" {
		t.Errorf("span %+v: want name \"to first\", service cc-test, cc.server.id s1, version v1", s)
	}

	if _, err := p.Apply(context.Background(), settings(second, 1)); err != nil {
		t.Fatal(err)
	}
	_, span = tr.Start(context.Background(), "to second")
	span.End()
	if got := waitSpans(t, second, 1); got[0].Name != "to second" {
		t.Errorf("second receiver got %q", got[0].Name)
	}
	if n := len(first.Spans()); n != 1 {
		t.Errorf("the first receiver got %d spans after the change, want 1", n)
	}

	// Ratio 0: new traces are not recorded, a sampled parent's are.
	if _, err := p.Apply(context.Background(), settings(second, 0)); err != nil {
		t.Fatal(err)
	}
	_, span = tr.Start(context.Background(), "dropped")
	if span.IsRecording() {
		t.Error("ratio 0 recorded a new trace")
	}
	span.End()
	_, span = tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child of sampled")
	span.End()
	got = waitSpans(t, second, 2)
	if s := got[1]; s.Name != "child of sampled" || s.TraceID != parent.TraceID().String() || s.ParentID != parent.SpanID().String() {
		t.Errorf("child of a sampled parent: %+v", s)
	}

	// Off again: nothing more is sent.
	if _, err := p.Apply(context.Background(), Settings{}); err != nil {
		t.Fatal(err)
	}
	if _, span = tr.Start(context.Background(), "off again"); span.IsRecording() {
		t.Error("off again, a span records")
	}
}

// Invalid settings are refused with what to do, and those in force stay.
func TestApplyRefusesInvalidSettings(t *testing.T) {
	r := otlptest.Start(t)
	p := New("cc-test", "")
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	good := settings(r, 0.5)
	if _, err := p.Apply(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Settings{
		{Endpoint: "localhost", SampleRatio: 1},
		{Endpoint: ":4317", SampleRatio: 1},
		{Endpoint: "collector:99999", SampleRatio: 1},
		{Endpoint: "collector:4317", SampleRatio: 1.5},
		{Endpoint: "collector:4317", SampleRatio: -0.1},
	} {
		if _, err := p.Apply(context.Background(), s); err == nil || !strings.Contains(err.Error(), "tracing.") {
			t.Errorf("%+v: err %v, want a message naming the key", s, err)
		}
	}
	if p.Settings() != good {
		t.Errorf("settings in force %+v, want %+v", p.Settings(), good)
	}
}

// Inject and Extract carry a span context through a string map.
func TestInjectExtract(t *testing.T) {
	if Inject(context.Background()) != nil {
		t.Error("a context without a span injects something")
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	m := Inject(trace.ContextWithSpanContext(context.Background(), sc))
	got := Remote(m)
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || !got.IsRemote() {
		t.Errorf("round trip of %v through %v gave %v", sc, m, got)
	}
	if Remote(nil).IsValid() {
		t.Error("an empty carrier gave a valid span context")
	}
}
