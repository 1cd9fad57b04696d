// Package tracing is the OpenTelemetry tracing of the programs: a tracer
// provider whose settings (an OTLP/gRPC endpoint, a sampling ratio) can be
// swapped while the program runs, off until an endpoint is set; the W3C
// Trace Context propagation every hop uses (gRPC metadata, HTTP headers and
// the string maps carried in raft commands and assignments); and the gRPC
// stats handlers that make a span of each call.
package tracing

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// Settings say where spans go and how many traces are kept.
type Settings struct {
	// Endpoint is the host:port of an OTLP/gRPC receiver (an OpenTelemetry
	// Collector, Jaeger, Tempo); empty turns tracing off.
	Endpoint string
	// SampleRatio is the share of new traces recorded, from 0 to 1; a
	// span whose parent came from another program follows the parent's
	// decision (ParentBased(TraceIDRatioBased)).
	SampleRatio float64
	// Insecure sends spans in plaintext (a collector on the same host);
	// otherwise over TLS, checked against the system's roots.
	Insecure bool
	// BatchTimeout is the longest a finished span waits before it is
	// sent (0: the SDK's 5s). Tests shorten it; it is no setting of the
	// programs.
	BatchTimeout time.Duration
}

// On says whether the settings turn tracing on.
func (s Settings) On() bool { return s.Endpoint != "" }

// Validate says what is wrong with the settings, naming keys as the
// control plane's config file does (tracing.endpoint,
// tracing.sample_ratio).
func (s Settings) Validate() error {
	var errs []error
	if s.Endpoint != "" {
		host, port, err := net.SplitHostPort(s.Endpoint)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("tracing.endpoint: %q is not host:port; use the OTLP/gRPC receiver's address, like \"127.0.0.1:4317\"", s.Endpoint))
		case host == "":
			errs = append(errs, fmt.Errorf("tracing.endpoint: %q has no host; use the receiver's host name or IP, like \"127.0.0.1:4317\"", s.Endpoint))
		case perr != nil || n < 1 || n > 65535:
			errs = append(errs, fmt.Errorf("tracing.endpoint: port %q is not a port number from 1 to 65535 (OTLP/gRPC listens on 4317)", port))
		}
	}
	if !(s.SampleRatio >= 0 && s.SampleRatio <= 1) {
		errs = append(errs, fmt.Errorf("tracing.sample_ratio: %v is not a share from 0 to 1; use 1 to keep every trace, 0.1 for one in ten", s.SampleRatio))
	}
	return errors.Join(errs...)
}

// Provider is a trace.TracerProvider whose settings change while the
// program runs (Apply): tracers taken from it once (by the gRPC handlers,
// the raft node, the runtime) start their spans on the SDK provider of
// the settings in force. Off, it starts no spans of its own, but a span
// context that came in (gRPC metadata, a traceparent header, a raft
// command) still flows on, so the programs after this one continue the
// trace.
type Provider struct {
	embedded.TracerProvider

	res *resource.Resource

	mu       sync.Mutex // serializes Apply and Shutdown
	settings Settings
	closed   bool
	cur      atomic.Pointer[generation]
}

// generation is one SDK provider and the tracers taken from it.
type generation struct {
	sdk     *sdktrace.TracerProvider // nil: off
	tracers sync.Map                 // tracerKey → trace.Tracer
}

type tracerKey struct{ name, version, schema string }

// New returns a provider, off until Apply is given an endpoint. service is
// the service.name of its spans ("cc-controlplane", "cc-agent"); attrs
// describe this instance (its server or node id).
func New(service, version string, attrs ...attribute.KeyValue) *Provider {
	kv := []attribute.KeyValue{semconv.ServiceName(service)}
	if version != "" {
		kv = append(kv, semconv.ServiceVersion(version))
	}
	if host, err := os.Hostname(); err == nil {
		kv = append(kv, semconv.HostName(host))
	}
	kv = append(kv, attrs...)
	p := &Provider{res: resource.NewWithAttributes(semconv.SchemaURL, kv...)}
	p.cur.Store(&generation{})
	return p
}

// Settings are the settings in force.
func (p *Provider) Settings() Settings {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settings
}

// Apply puts settings in force: spans started from now on go to the new
// endpoint with the new ratio, and the previous SDK provider is shut
// down (its pending spans sent, within ctx). Settings equal to those in
// force change nothing (changed is false). Invalid settings are refused
// and the ones in force stay.
func (p *Provider) Apply(ctx context.Context, s Settings) (changed bool, err error) {
	if err := s.Validate(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, errors.New("tracing: the provider is shut down")
	}
	if s == p.settings {
		return false, nil
	}
	next := &generation{}
	if s.On() {
		if next.sdk, err = p.sdkProvider(ctx, s); err != nil {
			return false, err
		}
	}
	old, was := p.cur.Swap(next), p.settings.Endpoint
	p.settings = s
	if old.sdk != nil {
		if err := old.sdk.Shutdown(ctx); err != nil {
			return true, fmt.Errorf("tracing: new settings in force; the spans pending for %s may be lost: %w", was, err)
		}
	}
	return true, nil
}

func (p *Provider) sdkProvider(ctx context.Context, s Settings) (*sdktrace.TracerProvider, error) {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(s.Endpoint)}
	if s.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	} else {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})))
	}
	// The exporter dials lazily: an endpoint that is down now costs lost
	// spans, not a failed start.
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", s.Endpoint, err)
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if s.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(s.BatchTimeout))
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, bopts...),
		sdktrace.WithResource(p.res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.SampleRatio))),
	), nil
}

// ForceFlush sends the finished spans now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if g := p.cur.Load(); g.sdk != nil {
		return g.sdk.ForceFlush(ctx)
	}
	return nil
}

// Shutdown sends the pending spans (within ctx) and turns tracing off for
// good: Apply refuses from then on.
func (p *Provider) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	old := p.cur.Swap(&generation{})
	if old.sdk != nil {
		return old.sdk.Shutdown(ctx)
	}
	return nil
}

// Tracer returns a tracer that follows the settings in force.
func (p *Provider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	c := trace.NewTracerConfig(opts...)
	return &tracer{p: p, key: tracerKey{name, c.InstrumentationVersion(), c.SchemaURL()}, opts: opts}
}

type tracer struct {
	embedded.Tracer
	p    *Provider
	key  tracerKey
	opts []trace.TracerOption
}

var off = noop.NewTracerProvider().Tracer("")

func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	g := t.p.cur.Load()
	if g.sdk == nil {
		return off.Start(ctx, name, opts...)
	}
	tr, ok := g.tracers.Load(t.key)
	if !ok {
		tr, _ = g.tracers.LoadOrStore(t.key, g.sdk.Tracer(t.key.name, t.opts...))
	}
	return tr.(trace.Tracer).Start(ctx, name, opts...)
}

// Tracer returns tp's tracer called name, or one that starts no spans
// (but passes a parent's span context on) when tp is nil.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		return off
	}
	return tp.Tracer(name)
}

// Propagator is the W3C Trace Context propagator (traceparent,
// tracestate) every hop uses.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Inject returns the W3C trace context of ctx's span as a string map (the
// form raft commands and assignments carry), or nil when ctx has none.
func Inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	m := propagation.MapCarrier{}
	Propagator().Inject(ctx, m)
	if len(m) == 0 {
		return nil
	}
	return m
}

// Extract returns ctx with the remote span context of carrier (from
// Inject), or ctx as it is when carrier holds none.
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	if len(carrier) == 0 {
		return ctx
	}
	return Propagator().Extract(ctx, propagation.MapCarrier(carrier))
}

// Remote is the span context of carrier (from Inject), invalid when it
// holds none: for a span that links to it instead of being its child.
func Remote(carrier map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(Extract(context.Background(), carrier))
}

// ServerHandler is the gRPC server stats handler that makes a server span
// of every call, the child of the caller's span when its metadata carries
// one. A call to a method for which internal says true (the calls between
// the programs: servers' forwarded writes and read indexes, agents'
// sessions and uploads) gets a span only when its caller sent a trace
// context, so that the programs' own chatter starts no traces.
func ServerHandler(tp trace.TracerProvider, internal func(fullMethod string) bool) stats.Handler {
	return &onlyTraced{Handler: otelgrpc.NewServerHandler(grpcOptions(tp)...), server: true, internal: internal}
}

// ClientHandler is the gRPC client stats handler that makes a client span
// of each call made within a trace (its context has a span) and sends the
// span's context in the call's metadata; a call made outside any trace
// gets no span and sends none.
func ClientHandler(tp trace.TracerProvider) stats.Handler {
	return &onlyTraced{Handler: otelgrpc.NewClientHandler(grpcOptions(tp)...)}
}

// onlyTraced passes the calls that belong to a trace to an otelgrpc
// handler: on a client, a call whose context has a span; on a server, a
// call that is not internal, or whose metadata carries a traceparent.
// The stats of a call it did not tag never reach the otelgrpc handler:
// the call's context may still hold the otelgrpc state of another call
// (a client call made while serving one), which the handler would update
// from several calls at once.
type onlyTraced struct {
	stats.Handler
	server   bool
	internal func(string) bool
}

// skippedKey marks, in a call's context, whether onlyTraced left the call
// untagged.
type skippedKey struct{}

func (h *onlyTraced) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	skip := false
	if h.server {
		if h.internal != nil && h.internal(info.FullMethodName) {
			if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("traceparent")) == 0 {
				skip = true
			}
		}
	} else if !trace.SpanContextFromContext(ctx).IsValid() {
		skip = true
	}
	if skip {
		return context.WithValue(ctx, skippedKey{}, true)
	}
	return h.Handler.TagRPC(context.WithValue(ctx, skippedKey{}, false), info)
}

func (h *onlyTraced) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	if skipped, _ := ctx.Value(skippedKey{}).(bool); skipped {
		return
	}
	h.Handler.HandleRPC(ctx, rs)
}

func grpcOptions(tp trace.TracerProvider) []otelgrpc.Option {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(Propagator()),
		// Metrics are Prometheus's, elsewhere.
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
}
