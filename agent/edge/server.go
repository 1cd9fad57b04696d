// Package edge is the agent's HTTP edge: one listener (HTTP/1.1 and h2c)
// that serves the cluster's routes (a reverse proxy with load balancing,
// health checks, retries, compression, CORS and rate limits) and static
// sites (handlers from the site package, one per bundle). Update swaps in
// a new immutable table atomically: a request, an upgraded connection
// included, keeps the table it started with, and the health of unchanged
// upstreams carries over.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containercodes/cc/agent/edge/health"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Options configure a Server.
type Options struct {
	// HTTPAddr is the listen address, e.g. ":80", "127.0.0.1:0".
	HTTPAddr string
	// NodeID is this node: endpoints on it are reached at their
	// local_address, the others at address.
	NodeID string
	Log    *slog.Logger
	// AccessLog gets one line per request at level info (route, upstream,
	// status, bytes, duration, request id, ...); nil: Log.
	AccessLog *slog.Logger
	// SiteHandler serves a site's unpacked bundle; nil: sites answer 503.
	SiteHandler func(dir string, spec *ccv1.SiteSpec) (http.Handler, error)
}

// ShutdownTimeout bounds the wait for requests in flight when Run ends.
const ShutdownTimeout = 10 * time.Second

// Server is the edge. Its methods are safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	access    *slog.Logger
	ln        net.Listener
	srv       *http.Server
	transport *http.Transport
	health    *health.Registry

	table atomic.Pointer[table]

	// base is every request's parent context: cancelling it at the end of
	// a shutdown closes the upgraded connections still open.
	base            context.Context
	cancelBase      context.CancelFunc
	active          atomic.Int64 // requests in ServeHTTP, upgraded ones included
	shutdownTimeout time.Duration

	mu       sync.Mutex // serializes Update and guards what follows
	inflight map[string]*atomic.Int64
	limiters map[string]*limiterEntry
	sites    map[string]*siteEntry // by bundle digest
}

// New listens on o.HTTPAddr; Run serves.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = ":80"
	}
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("edge: listen on %s: %w (is another server on that port? choose another with --edge-http-addr)", o.HTTPAddr, err)
	}
	if o.AccessLog == nil {
		o.AccessLog = o.Log
	}
	s := &Server{
		opts:      o,
		log:       o.Log,
		access:    o.AccessLog,
		ln:        ln,
		transport: newTransport(),
		inflight:  map[string]*atomic.Int64{},
		limiters:  map[string]*limiterEntry{},
		sites:     map[string]*siteEntry{},

		shutdownTimeout: ShutdownTimeout,
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.health = health.NewRegistry(&http.Client{Transport: newTransport(), CheckRedirect: noRedirect}, o.Log)
	s.table.Store(&table{})
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:           s,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.base },
	}
	return s, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newTransport is the keep-alive pool to upstreams, shared by all routes
// so that a configuration change keeps its connections.
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never from the environment
		DialContext:           d.DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass encodings through untouched
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

// Addr is the address the edge listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then shuts down: the listener closes,
// requests in flight and upgraded connections (WebSockets) get up to
// ShutdownTimeout to finish, then the upgraded ones still open are closed;
// health checkers stop.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	defer s.health.Close()
	defer s.transport.CloseIdleConnections()
	defer s.cancelBase()
	select {
	case err := <-errc:
		return fmt.Errorf("edge: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("edge: shutdown timed out; closing connections", "err", err)
		s.srv.Close()
	}
	// Shutdown does not wait for hijacked connections: wait for their
	// handlers, within the same bound, then cut what is left.
	s.waitIdle(sctx)
	s.cancelBase()
	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	s.waitIdle(cctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("edge: serve: %w", serr)
	}
	return nil
}

// waitIdle waits until no request is in ServeHTTP or ctx ends.
func (s *Server) waitIdle(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
