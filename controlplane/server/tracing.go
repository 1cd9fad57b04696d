package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// newTracing returns the server's tracer provider with the [tracing]
// section in force (off when it names no endpoint).
func newTracing(cfg config.Config, serverID string, batch time.Duration) (*tracing.Provider, error) {
	p := tracing.New("cc-controlplane", buildinfo.Version,
		attribute.String("service.instance.id", serverID),
		attribute.String("cc.server.id", serverID),
		attribute.String("cc.server.name", cfg.Name))
	if _, err := p.Apply(context.Background(), tracingSettings(cfg.Tracing, batch)); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return p, nil
}

func tracingSettings(c config.TracingConfig, batch time.Duration) tracing.Settings {
	return tracing.Settings{Endpoint: c.Endpoint, SampleRatio: c.SampleRatio, Insecure: c.Insecure, BatchTimeout: batch}
}

// Tracing returns the [tracing] section in force.
func (s *Server) Tracing() config.TracingConfig {
	st := s.tracing.Settings()
	return config.TracingConfig{Endpoint: st.Endpoint, SampleRatio: st.SampleRatio, Insecure: st.Insecure}
}

// SetTracing applies a new [tracing] section (after a reload of the config
// file): spans started from now on follow it, and those pending for the
// previous endpoint are sent there first. It returns the changes, as
// "key: old -> new", empty when none, for the caller to log. An invalid
// section is refused and the one in force stays.
func (s *Server) SetTracing(c config.TracingConfig) ([]string, error) {
	if ps := c.Check(); len(ps) > 0 {
		return nil, ps
	}
	old := s.Tracing()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.tracing.Apply(ctx, tracingSettings(c, s.opts.TraceBatchTimeout)); err != nil {
		return nil, err
	}
	var out []string
	if old.Endpoint != c.Endpoint {
		out = append(out, fmt.Sprintf("tracing.endpoint: %q -> %q", old.Endpoint, c.Endpoint))
	}
	if old.SampleRatio != c.SampleRatio {
		out = append(out, fmt.Sprintf("tracing.sample_ratio: %v -> %v", old.SampleRatio, c.SampleRatio))
	}
	if old.Insecure != c.Insecure {
		out = append(out, fmt.Sprintf("tracing.insecure: %v -> %v", old.Insecure, c.Insecure))
	}
	return out, nil
}

// internalMethod says whether a gRPC method is one the programs call on
// each other (servers, agents) rather than an API call: such a call is a
// span only within a trace (tracing.ServerHandler), and an agent's
// session, which lasts as long as the agent, never is.
func internalMethod(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+ccv1.PeerService_ServiceDesc.ServiceName+"/") ||
		strings.HasPrefix(fullMethod, "/"+ccv1.AgentService_ServiceDesc.ServiceName+"/")
}

// traceREST makes a server span of every REST call (the child of the
// caller's traceparent, if any); the gateway's gRPC call to this server's
// own handlers continues it. Health checks get none.
func (s *Server) traceREST(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "rest",
		otelhttp.WithTracerProvider(s.tracing),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " /v1" }),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" }),
	)
}
