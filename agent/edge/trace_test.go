package edge

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/otlptest"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// traceparents is an upstream that records the traceparent of each
// request it gets.
type traceparents struct {
	mu  sync.Mutex
	got []string
}

func (tp *traceparents) handler(w http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	tp.got = append(tp.got, r.Header.Get("Traceparent"))
	tp.mu.Unlock()
	w.Write([]byte("ok"))
}

func (tp *traceparents) last(t *testing.T) (traceID, parentID string) {
	t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.got) == 0 {
		t.Fatal("the upstream got no request")
	}
	parts := strings.Split(tp.got[len(tp.got)-1], "-")
	if len(parts) != 4 {
		t.Fatalf("upstream's traceparent %q is not version-trace-parent-flags", tp.got[len(tp.got)-1])
	}
	return parts[1], parts[2]
}

const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

// With tracing on, every request is a server span: a client's traceparent
// is its parent, and the upstream gets the same trace with the edge's span
// as its parent; a request without one starts a trace the upstream
// continues.
func TestTraceparentReachesUpstream(t *testing.T) {
	recv := otlptest.Start(t)
	tp := tracing.New("cc-agent", "test")
	if _, err := tp.Apply(context.Background(), tracing.Settings{Endpoint: recv.Addr(), SampleRatio: 1, Insecure: true, BatchTimeout: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	s := startEdge(t, Options{Tracing: tp})
	var seen traceparents
	up := upstream(t, "a", seen.handler)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(up))}})

	if code, _, _ := get(t, s, "app.test", "/x", "Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01"); code != 200 {
		t.Fatalf("status %d", code)
	}
	traceID, parent := seen.last(t)
	if traceID != clientTrace {
		t.Errorf("upstream's trace %s, want the client's %s", traceID, clientTrace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := recv.Wait(ctx, func(sp []otlptest.Span) bool { return len(sp) >= 1 })
	if err != nil {
		t.Fatal(err)
	}
	sp := spans[0]
	if sp.TraceID != clientTrace || sp.ParentID != "00f067aa0ba902b7" || sp.SpanID != parent || sp.Kind != "server" {
		t.Errorf("edge span %+v: want a server span in the client's trace, child of its span, parent of the upstream's", sp)
	}
	if sp.Name != "GET web" || sp.Attrs["http.response.status_code"] != "200" || sp.Attrs["cc.edge.route"] != "web" || sp.Attrs["cc.edge.upstream"] != addr(up) {
		t.Errorf("edge span %q %v: want GET web, status 200, route web, upstream %s", sp.Name, sp.Attrs, addr(up))
	}

	// No traceparent: the edge starts the trace.
	get(t, s, "app.test", "/y")
	traceID, parent = seen.last(t)
	spans, err = recv.Wait(ctx, func(sp []otlptest.Span) bool { return len(sp) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	if sp := spans[1]; sp.TraceID != traceID || sp.SpanID != parent || sp.ParentID != "" {
		t.Errorf("edge span %+v: want the root of the trace %s the upstream got (parent %s)", sp, traceID, parent)
	}
}

// With tracing off, a client's traceparent still reaches the upstream as
// it was sent.
func TestTraceparentPassesWithTracingOff(t *testing.T) {
	s := startEdge(t, Options{})
	var seen traceparents
	up := upstream(t, "a", seen.handler)
	s.Update(Config{Routes: []*ccv1.EdgeRoute{mkRoute("web", "app.test", "/", addr(up))}})
	get(t, s, "app.test", "/x", "Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	if traceID, parent := seen.last(t); traceID != clientTrace || parent != "00f067aa0ba902b7" {
		t.Errorf("upstream got trace %s parent %s, want the client's %s 00f067aa0ba902b7", traceID, parent, clientTrace)
	}
	get(t, s, "app.test", "/y")
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if got := seen.got[len(seen.got)-1]; got != "" {
		t.Errorf("tracing off and no client traceparent, the upstream got %q", got)
	}
}
