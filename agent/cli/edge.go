package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/containercodes/cc/agent/edge"
	"github.com/containercodes/cc/agent/edge/static"
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

// StartEdge starts the node's edge server (package agent/edge, with
// package agent/edge/static serving sites) on o.HTTPAddr, to be handed to
// the worker, which gives it every new configuration; stop shuts it down
// gracefully and waits for it. With the edge off it returns a nil Edge and
// a no-op stop: the worker still runs the relays of this node's routed
// tasks.
func StartEdge(o EdgeOptions, nodeID string, log *slog.Logger) (e worker.Edge, stop func(), err error) {
	if !o.Enabled {
		return nil, func() {}, nil
	}
	srv, err := edge.New(edge.Options{HTTPAddr: o.HTTPAddr, NodeID: nodeID, Log: log, SiteHandler: static.New})
	if err != nil {
		return nil, nil, fmt.Errorf("--edge-http-addr %s: %w (another server on that port? choose another, or --edge=false)", o.HTTPAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			log.Error("edge stopped", "err", err)
		}
	}()
	log.Info("edge serving", "addr", srv.Addr().String())
	return srv, func() { cancel(); <-done }, nil
}
