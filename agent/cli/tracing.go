package cli

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/tracing"
)

// StartTracing returns the agent's tracer provider (service cc-agent, with
// its node's id and name) with s in force: off when s names no endpoint.
// The caller shuts it down when the agent stops.
func StartTracing(s tracing.Settings, nodeID, nodeName string) (*tracing.Provider, error) {
	tp := tracing.New("cc-agent", buildinfo.Version,
		attribute.String("service.instance.id", nodeID),
		attribute.String("cc.node.id", nodeID),
		attribute.String("cc.node.name", nodeName))
	if _, err := tp.Apply(context.Background(), s); err != nil {
		return nil, err
	}
	return tp, nil
}
