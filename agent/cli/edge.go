package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/agent/edge"
	"github.com/containercodes/cc/agent/edge/static"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/agent/worker"
	"github.com/containercodes/cc/internal/logging"
)

// EdgeOptions are the flags of the node's edge.
type EdgeOptions struct {
	// Enabled: the node serves the edge (--edge, default true).
	Enabled bool
	// HTTPAddr is where it serves HTTP (--edge-http-addr, default ":80").
	HTTPAddr string
	// HTTPSAddr is where it serves HTTPS, and HTTP/3 on the same UDP port
	// when the cluster turns it on (--edge-https-addr, default ":443");
	// "off" or "": no HTTPS.
	HTTPSAddr string
	// HTTPSPublicPort is the port clients reach HTTPS on when it is not
	// the listener's (a port forward), for redirects and Alt-Svc
	// (--edge-https-public-port; 0: the listener's).
	HTTPSPublicPort int
	// AccessLog is where a JSON line per request goes (--edge-access-log):
	// a file (appended), "-" or "" for standard error, "off" for none.
	AccessLog string
	// Tracing starts a span of every request; nil: none (a client's
	// traceparent still reaches the upstream).
	Tracing trace.TracerProvider
	// Metrics counts the edge's requests and reads its state when scraped;
	// nil: none.
	Metrics *metrics.Metrics
}

// Validate checks the addresses when the edge is on.
func (o EdgeOptions) Validate() error {
	if !o.Enabled {
		return nil
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		return fmt.Errorf("--edge-http-addr %q: want host:port or :port (%v)", o.HTTPAddr, err)
	}
	if o.httpsAddr() != "" {
		if _, _, err := net.SplitHostPort(o.HTTPSAddr); err != nil {
			return fmt.Errorf("--edge-https-addr %q: want host:port, :port or off (%v)", o.HTTPSAddr, err)
		}
	}
	if o.HTTPSPublicPort < 0 || o.HTTPSPublicPort > 65535 {
		return fmt.Errorf("--edge-https-public-port %d: want a port, 1 to 65535 (0: the listener's)", o.HTTPSPublicPort)
	}
	return nil
}

// httpsAddr is the HTTPS address, "" for none.
func (o EdgeOptions) httpsAddr() string {
	if o.HTTPSAddr == "off" {
		return ""
	}
	return o.HTTPSAddr
}

// StartEdge starts the node's edge server (package agent/edge, with
// package agent/edge/static serving sites) on o.HTTPAddr and o.HTTPSAddr, to be handed to
// the worker, which gives it every new configuration; stop shuts it down
// gracefully and waits for it. With the edge off it returns a nil Edge and
// a no-op stop: the worker still runs the relays of this node's routed
// tasks.
func StartEdge(o EdgeOptions, nodeID string, log *slog.Logger) (e worker.Edge, stop func(), err error) {
	if !o.Enabled {
		return nil, func() {}, nil
	}
	access, closeAccess, err := accessLog(o.AccessLog)
	if err != nil {
		return nil, nil, err
	}
	srv, err := edge.New(edge.Options{
		HTTPAddr: o.HTTPAddr, HTTPSAddr: o.httpsAddr(), HTTPSPublicPort: o.HTTPSPublicPort,
		NodeID: nodeID, Log: log, AccessLog: access, SiteHandler: static.New, Tracing: o.Tracing, Metrics: o.Metrics,
	})
	if err != nil {
		closeAccess()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			log.Error("edge stopped", "err", err)
		}
	}()
	if a := srv.HTTPSAddr(); a != nil {
		log.Info("edge serving", "addr", srv.Addr().String(), "https_addr", a.String())
	} else {
		log.Info("edge serving", "addr", srv.Addr().String(), "https", "off")
	}
	return srv, func() { cancel(); <-done; closeAccess() }, nil
}

// accessLog opens the edge's access log: JSON lines, whatever the agent's
// own log format, as nginx and Caddy keep theirs apart.
func accessLog(where string) (*slog.Logger, func(), error) {
	switch where {
	case "off":
		return slog.New(slog.DiscardHandler), func() {}, nil
	case "", "-":
		return slog.New(logging.WithTraceIDs(slog.NewJSONHandler(os.Stderr, nil))), func() {}, nil
	}
	f, err := os.OpenFile(where, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("--edge-access-log: %w", err)
	}
	return slog.New(logging.WithTraceIDs(slog.NewJSONHandler(f, nil))), func() { f.Close() }, nil
}
