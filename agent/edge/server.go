// Package edge is the agent's HTTP edge: an HTTP listener (HTTP/1.1 and
// h2c) and an HTTPS one (HTTP/1.1 and HTTP/2 over TLS, and HTTP/3 on its
// UDP port when the cluster's TLS settings ask) that serve the cluster's
// routes (a reverse proxy with load balancing, health checks, retries,
// compression, CORS and rate limits) and static sites (handlers from the
// site package, one per bundle). Update swaps in a new immutable table
// atomically: a request, an upgraded connection included, keeps the table
// it started with, and the health of unchanged upstreams carries over.
// Certificates (picked by SNI), ACME challenges (HTTP-01 and TLS-ALPN-01)
// and OCSP staples are swapped the same way: a change applies to new
// handshakes, and open connections carry on.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/agent/edge/health"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/internal/tracing"
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
	// HTTPSAddr is the HTTPS listen address (TCP; HTTP/3 uses the same
	// address on UDP), e.g. ":443"; empty: no HTTPS.
	HTTPSAddr string
	// HTTPSPublicPort is the port clients reach HTTPS on, for redirects
	// and Alt-Svc (0: the HTTPS listener's port).
	HTTPSPublicPort int
	// OCSPClient asks OCSP responders for staples; nil: a client without
	// proxy.
	OCSPClient *http.Client
	// Tracing starts a server span of every request (the child of the
	// client's traceparent, if any); nil: none. Either way, a request's
	// trace context goes on to the upstream in its traceparent header.
	Tracing trace.TracerProvider
	// Metrics counts requests, connections, handshakes and ACME answers,
	// and reads the upstreams' health and the certificates when scraped;
	// nil: none.
	Metrics *metrics.Metrics
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
	httpsLn   net.Listener // TCP, before TLS; nil: no HTTPS
	httpsSrv  *http.Server
	httpsPort int // public, for redirects and Alt-Svc
	transport *http.Transport
	health    *health.Registry
	tracer    trace.Tracer

	table  atomic.Pointer[table]
	certs  atomic.Pointer[certTable]
	altSvc atomic.Pointer[string] // the Alt-Svc value while HTTP/3 runs

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
	// certEntries are the parsed certificates, by name.
	certEntries map[string]*certEntry
	h3          *h3Server // nil: no HTTP/3
	closed      bool      // Run has ended: HTTP/3 starts no more
}

// New listens on o.HTTPAddr and, when set, o.HTTPSAddr; Run serves.
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
	var httpsLn net.Listener
	if o.HTTPSAddr != "" {
		if httpsLn, err = net.Listen("tcp", o.HTTPSAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("edge: listen on %s: %w (is another server on that port? choose another with --edge-https-addr)", o.HTTPSAddr, err)
		}
	}
	if o.AccessLog == nil {
		o.AccessLog = o.Log
	}
	s := &Server{
		opts:      o,
		log:       o.Log,
		access:    o.AccessLog,
		ln:        ln,
		httpsLn:   httpsLn,
		transport: newTransport(),
		tracer:    tracing.Tracer(o.Tracing, "github.com/containercodes/cc/agent/edge"),
		inflight:  map[string]*atomic.Int64{},
		limiters:  map[string]*limiterEntry{},
		sites:     map[string]*siteEntry{},

		certEntries: map[string]*certEntry{},

		shutdownTimeout: ShutdownTimeout,
	}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.health = health.NewRegistry(&http.Client{Transport: newTransport(), CheckRedirect: noRedirect}, o.Log)
	s.table.Store(&table{})
	s.certs.Store(&certTable{})
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.srv = s.httpServer(protocols, "http")
	if httpsLn != nil {
		s.httpsPort = o.HTTPSPublicPort
		if s.httpsPort == 0 {
			s.httpsPort = httpsLn.Addr().(*net.TCPAddr).Port
		}
		tp := new(http.Protocols)
		tp.SetHTTP1(true)
		tp.SetHTTP2(true)
		s.httpsSrv = s.httpServer(tp, "https")
	}
	o.Metrics.SetEdge(s.stats)
	return s, nil
}

// httpServer is the server of one listener (named listener in the
// metrics); both serve s.
func (s *Server) httpServer(p *http.Protocols, listener string) *http.Server {
	return &http.Server{
		ConnState:         s.connState(listener),
		Handler:           s,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second, // bounds the TLS handshake too
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.base },
	}
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

// Addr is the address the edge serves HTTP on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// HTTPSAddr is the address the edge serves HTTPS on (and HTTP/3, on UDP,
// when on); nil without HTTPS.
func (s *Server) HTTPSAddr() net.Addr {
	if s.httpsLn == nil {
		return nil
	}
	return s.httpsLn.Addr()
}

// Run serves until ctx ends, then shuts down: the listeners close,
// requests in flight and upgraded connections (WebSockets) get up to
// ShutdownTimeout to finish, then the upgraded ones still open are closed;
// health checkers and OCSP staplers stop.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	servers := []*http.Server{s.srv}
	go func() { errc <- s.srv.Serve(s.ln) }()
	if s.httpsLn != nil {
		servers = append(servers, s.httpsSrv)
		go func() { errc <- s.httpsSrv.Serve(tls.NewListener(s.httpsLn, s.tlsConfig())) }()
	}
	defer s.health.Close()
	defer s.transport.CloseIdleConnections()
	defer s.cancelBase()
	var failed error
	select {
	case err := <-errc:
		failed = fmt.Errorf("edge: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	s.mu.Lock()
	s.closed = true
	h3 := s.h3
	s.h3 = nil
	s.altSvc.Store(nil)
	s.mu.Unlock()
	var wg sync.WaitGroup
	if h3 != nil {
		wg.Go(func() { h3.stop(sctx) })
	}
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				s.log.Warn("edge: shutdown timed out; closing connections", "err", err)
				srv.Close()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	// Shutdown does not wait for hijacked connections: wait for their
	// handlers, within the same bound, then cut what is left.
	s.waitIdle(sctx)
	s.cancelBase()
	cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
	defer ccancel()
	s.waitIdle(cctx)
	for range servers {
		if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			return fmt.Errorf("edge: serve: %w", serr)
		}
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
