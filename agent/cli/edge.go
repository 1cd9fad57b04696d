package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// tasks. The Edge it returns is an *Edge (Rebind).
func StartEdge(o EdgeOptions, nodeID string, log *slog.Logger) (e worker.Edge, stop func(), err error) {
	if !o.Enabled {
		return nil, func() {}, nil
	}
	le, err := NewEdge(o, nodeID, log)
	if err != nil {
		return nil, nil, err
	}
	return le, le.Close, nil
}

// Edge is the node's edge server, replaced whole when its listener
// settings change (Rebind, on a reload of the config file): the new server
// gets the configuration the worker last gave, then the old one shuts down
// gracefully (its requests in flight finish). Upstream health starts
// again on the new server.
type Edge struct {
	nodeID string
	log    *slog.Logger

	mu      sync.Mutex     // serializes Update and Rebind
	retired sync.WaitGroup // servers a Rebind replaced, shutting down
	opts    EdgeOptions
	run     *edgeRun
	last    *edge.Config // the worker's last configuration; nil before the first
}

// edgeRun is one edge server and its goroutine.
type edgeRun struct {
	srv    *edge.Server
	cancel context.CancelFunc
	done   chan struct{}
	err    atomic.Pointer[error] // why Run ended early
	close  func()                // the access log
}

// NewEdge starts the edge server with o (which must be enabled).
func NewEdge(o EdgeOptions, nodeID string, log *slog.Logger) (*Edge, error) {
	e := &Edge{nodeID: nodeID, log: log, opts: o}
	r, err := e.start(o)
	if err != nil {
		return nil, err
	}
	e.run = r
	return e, nil
}

func (e *Edge) start(o EdgeOptions) (*edgeRun, error) {
	access, closeAccess, err := accessLog(o.AccessLog)
	if err != nil {
		return nil, err
	}
	srv, err := edge.New(edge.Options{
		HTTPAddr: o.HTTPAddr, HTTPSAddr: o.httpsAddr(), HTTPSPublicPort: o.HTTPSPublicPort,
		NodeID: e.nodeID, Log: e.log, AccessLog: access, SiteHandler: static.New, Tracing: o.Tracing, Metrics: o.Metrics,
	})
	if err != nil {
		closeAccess()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &edgeRun{srv: srv, cancel: cancel, done: make(chan struct{}), close: closeAccess}
	go func() {
		defer close(r.done)
		if err := srv.Run(ctx); err != nil {
			r.err.Store(&err)
			e.log.Error("edge stopped", "err", err)
		}
	}()
	if a := srv.HTTPSAddr(); a != nil {
		e.log.Info("edge serving", "addr", srv.Addr().String(), "https_addr", a.String())
	} else {
		e.log.Info("edge serving", "addr", srv.Addr().String(), "https", "off")
	}
	return r, nil
}

// stop shuts the run down gracefully and waits for it.
func (r *edgeRun) stop() {
	r.cancel()
	<-r.done
	r.close()
}

// Update hands a configuration to the edge (worker.Edge).
func (e *Edge) Update(cfg edge.Config) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last = &cfg
	e.run.srv.Update(cfg)
}

// Addr is the address the edge serves HTTP on.
func (e *Edge) Addr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.run.srv.Addr()
}

// HTTPSAddr is the address the edge serves HTTPS on; nil without HTTPS.
func (e *Edge) HTTPSAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.run.srv.HTTPSAddr()
}

// Options are the settings in force.
func (e *Edge) Options() EdgeOptions {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts
}

// Check is the edge's readiness: its listeners serve.
func (e *Edge) Check(context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.run.err.Load(); p != nil {
		return "", fmt.Errorf("the edge stopped: %v (restart cc-agent)", *p)
	}
	select {
	case <-e.run.done:
		return "", errors.New("the edge stopped (restart cc-agent)")
	default:
	}
	detail := "http " + e.run.srv.Addr().String()
	if a := e.run.srv.HTTPSAddr(); a != nil {
		detail += ", https " + a.String()
	}
	return detail, nil
}

// Rebind moves the edge to new listener settings (addresses, public
// HTTPS port, access log; not Enabled, which needs a restart). A new
// server starts first and takes the configuration; when it cannot bind
// because the old one holds the same port, the old one stops first and
// the new one binds after it. If the new settings cannot be served, the
// old ones stay (or are served again) and the error says why.
func (e *Edge) Rebind(o EdgeOptions) error {
	o.Enabled = true
	if err := o.Validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if o == e.opts {
		return nil
	}
	old := e.run
	r, err := e.start(o)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		// The same port: free it, then bind again while the old server's
		// listeners close.
		old.stop()
		deadline := time.Now().Add(3 * time.Second)
		for r, err = e.start(o); err != nil && errors.Is(err, syscall.EADDRINUSE) && time.Now().Before(deadline); r, err = e.start(o) {
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			// Serve the old settings again.
			back, berr := e.start(e.opts)
			if berr != nil {
				return fmt.Errorf("edge: %v; and the previous settings cannot be served again: %v (restart cc-agent)", err, berr)
			}
			e.run = back
			if e.last != nil {
				back.srv.Update(*e.last)
			}
			return fmt.Errorf("edge: %w; the previous settings are kept", err)
		}
		old = nil
	} else if err != nil {
		return fmt.Errorf("edge: %w; the previous settings are kept", err)
	}
	if e.last != nil {
		r.srv.Update(*e.last)
	}
	e.run, e.opts = r, o
	if old != nil {
		e.retired.Go(old.stop)
	}
	return nil
}

// Close stops the edge gracefully and waits for it.
func (e *Edge) Close() {
	e.mu.Lock()
	r := e.run
	e.mu.Unlock()
	r.stop()
	e.retired.Wait()
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
