package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/containercodes/cc/agent/worker"
)

// EdgeOptions are the flags of the node's edge.
type EdgeOptions struct {
	// Enabled: the node serves the edge (--edge, default true).
	Enabled bool
	// HTTPAddr is where it serves HTTP (--edge-http-addr, default ":80").
	HTTPAddr string
}

// Validate checks the address when the edge is on.
func (o EdgeOptions) Validate() error {
	if !o.Enabled {
		return nil
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		return fmt.Errorf("--edge-http-addr %q: want host:port or :port (%v)", o.HTTPAddr, err)
	}
	return nil
}

// buildEdge is where the node's edge server (package agent/edge) is built
// from the options and handed to the worker, which gives it every new
// configuration; stop stops it when the agent stops. A nil Edge serves
// nothing: the worker still runs the relays of this node's routed tasks.
//
// The edge server is wired in here when package agent/edge lands: listen
// on o.HTTPAddr when o.Enabled, return it as the worker.Edge and its
// shutdown as stop.
func buildEdge(_ context.Context, o EdgeOptions, nodeID string, log *slog.Logger) (edge worker.Edge, stop func(), err error) {
	if o.Enabled {
		log.Info("this build has no edge server yet; routed tasks are relayed, nothing is served", "addr", o.HTTPAddr, "node_id", nodeID)
	}
	return nil, func() {}, nil
}
