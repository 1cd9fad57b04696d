// Package otlptest is an OTLP/gRPC trace receiver for tests: it serves the
// OpenTelemetry collector's TraceService on a loopback port, keeps the
// spans it is sent in memory, and renders a trace as a tree. Its command,
// cmd/otlp-receiver, runs it by hand beside a dev cluster.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one span as received, its ids in lowercase hex.
type Span struct {
	// Service is the service.name of the span's resource.
	Service string
	// Resource holds the resource's attributes, as strings.
	Resource map[string]string
	TraceID  string
	SpanID   string
	// ParentID is "" for a root span.
	ParentID string
	Name     string
	// Kind is "internal", "server", "client", "producer" or "consumer".
	Kind string
	// Attrs holds the span's attributes, as strings.
	Attrs map[string]string
	// Links are the span contexts the span links to.
	Links      []Link
	Start, End time.Time
	// Error is the status message of a span whose status is an error,
	// "error" when it has none; "" otherwise.
	Error string
}

// Link is a link of a span to another span.
type Link struct{ TraceID, SpanID string }

// Receiver is a running OTLP/gRPC trace receiver.
type Receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	ln      net.Listener
	srv     *grpc.Server
	onSpans func([]Span)

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced at every export
	done    chan error
}

// Listen starts a receiver on addr (host:port; port 0 picks one). onSpans,
// when not nil, is called with the spans of each export request as they
// come.
func Listen(addr string, onSpans func([]Span)) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("otlptest: listen on %s: %w", addr, err)
	}
	r := &Receiver{ln: ln, srv: grpc.NewServer(), onSpans: onSpans, changed: make(chan struct{}), done: make(chan error, 1)}
	coltracepb.RegisterTraceServiceServer(r.srv, r)
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// Start starts a receiver on a loopback port for the test, stopped when it
// ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// Addr is the receiver's host:port, what an exporter's endpoint names.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Close stops the receiver.
func (r *Receiver) Close() {
	r.srv.Stop()
	<-r.done
}

// Export implements the collector's TraceService.
func (r *Receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, convert(res, s))
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	if r.onSpans != nil && len(got) > 0 {
		r.onSpans(got)
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func convert(res map[string]string, s *tracepb.Span) Span {
	sp := Span{
		Service: res["service.name"], Resource: res,
		TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
		ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(),
		Kind:  strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_")),
		Attrs: attrMap(s.GetAttributes()),
		Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
	}
	for _, l := range s.GetLinks() {
		sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
	}
	if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		sp.Error = s.GetStatus().GetMessage()
		if sp.Error == "" {
			sp.Error = "error"
		}
	}
	return sp
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = anyString(kv.GetValue())
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return hex.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, anyString(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}

// Spans returns every span received so far, in the order they came.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Trace returns the spans received so far of one trace.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Wait returns the spans received once cond holds for them, or the spans
// so far with ctx's error when ctx ends first.
func (r *Receiver) Wait(ctx context.Context, cond func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, changed := slices.Clone(r.spans), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-ctx.Done():
			return spans, ctx.Err()
		case <-changed:
		}
	}
}

// Tree renders spans as one indented tree per trace: each span's name, its
// service and kind, and its attributes named in keys (all when keys is
// empty), children under their parent in the order they started. A span
// whose parent was not received is shown as a root, marked so.
func Tree(spans []Span, keys ...string) string {
	byTrace := map[string][]Span{}
	var order []string
	for _, s := range spans {
		if _, ok := byTrace[s.TraceID]; !ok {
			order = append(order, s.TraceID)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	var b strings.Builder
	for _, tid := range order {
		ts := byTrace[tid]
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Start.Before(ts[j].Start) })
		ids := map[string]bool{}
		for _, s := range ts {
			ids[s.SpanID] = true
		}
		children := map[string][]Span{}
		var roots []Span
		for _, s := range ts {
			if s.ParentID == "" || !ids[s.ParentID] {
				roots = append(roots, s)
				continue
			}
			children[s.ParentID] = append(children[s.ParentID], s)
		}
		fmt.Fprintf(&b, "trace %s (%d spans)\n", tid, len(ts))
		var walk func(s Span, depth int)
		walk = func(s Span, depth int) {
			b.WriteString(strings.Repeat("  ", depth+1))
			b.WriteString(describe(s, keys))
			if depth == 0 && s.ParentID != "" {
				b.WriteString(" (parent " + s.ParentID + " not received)")
			}
			b.WriteByte('\n')
			for _, c := range children[s.SpanID] {
				walk(c, depth+1)
			}
		}
		for _, r := range roots {
			walk(r, 0)
		}
	}
	return b.String()
}

// describe is one line of a tree: name [service kind] key=value ...
func describe(s Span, keys []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s %s]", s.Name, s.Service, s.Kind)
	if len(keys) == 0 {
		for k := range s.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	for _, k := range keys {
		if v, ok := s.Attrs[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	if s.Error != "" {
		fmt.Fprintf(&b, " ERROR=%q", s.Error)
	}
	for _, l := range s.Links {
		fmt.Fprintf(&b, " link=%s/%s", l.TraceID, l.SpanID)
	}
	return b.String()
}

// Children returns the spans of spans whose parent is parent.
func Children(spans []Span, parent Span) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == parent.TraceID && s.ParentID == parent.SpanID {
			out = append(out, s)
		}
	}
	return out
}

// Ancestor reports whether a is s's parent, its parent's parent, and so
// on, within spans.
func Ancestor(spans []Span, a, s Span) bool {
	byID := map[string]Span{}
	for _, x := range spans {
		if x.TraceID == s.TraceID {
			byID[x.SpanID] = x
		}
	}
	for seen := 0; s.ParentID != "" && seen <= len(byID); seen++ {
		if s.ParentID == a.SpanID {
			return true
		}
		p, ok := byID[s.ParentID]
		if !ok {
			return false
		}
		s = p
	}
	return false
}
