package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/containercodes/cc/internal/pki"
)

// The API port's bounds on connections that have not finished their TLS
// handshake, before any credential is seen: a client that opens
// connections and stalls holds at most these, and each for at most
// handshakeTimeout. Finished connections are not counted, so agents' and
// clients' long-lived streams are never capped here.
const (
	handshakeTimeout       = 10 * time.Second
	maxHandshakes          = 256
	maxHandshakesPerSource = 32
)

// handshakeListener is a TLS listener that runs each handshake in its own
// goroutine, under a deadline, and hands out only connections whose
// handshake succeeded. A connection over the bounds of handshakes in
// flight, in all or from its source address, is closed at once.
type handshakeListener struct {
	inner    net.Listener
	cfg      *tls.Config
	timeout  time.Duration
	max      int
	perSrc   int
	log      *slog.Logger
	conns    chan *tls.Conn
	grpc     chan *tls.Conn // connections that offered pki.ALPNGRPC
	errc     chan error
	done     chan struct{}
	closeErr error
	once     sync.Once

	mu       sync.Mutex
	inFlight int
	bySrc    map[string]int
	wg       sync.WaitGroup
}

func newHandshakeListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, max, perSrc int, log *slog.Logger) *handshakeListener {
	l := &handshakeListener{inner: inner, timeout: timeout, max: max, perSrc: perSrc, log: log,
		conns: make(chan *tls.Conn), grpc: make(chan *tls.Conn), errc: make(chan error, 1), done: make(chan struct{}), bySrc: map[string]int{}}
	// Note, from the client's hello, whether it offers pki.ALPNGRPC.
	l.cfg = cfg.Clone()
	next := cfg.GetConfigForClient
	l.cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hc, ok := hello.Conn.(*helloConn); ok && pki.OffersGRPCOnly(hello) {
			hc.grpcOnly = true
		}
		if next == nil {
			return nil, nil
		}
		return next(hello)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *handshakeListener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				select {
				case l.errc <- err:
				default:
				}
				return
			}
			// Out of file descriptors and the like: wait and go on, as
			// http.Server does for temporary errors.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept on the API port failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-l.done:
				return
			}
		}
		backoff = 0
		src := sourceOf(c)
		if !l.take(src) {
			l.log.Debug("too many TLS handshakes in flight; connection refused", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(c, src)
	}
}

func (l *handshakeListener) take(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight >= l.max || l.bySrc[src] >= l.perSrc {
		return false
	}
	l.inFlight++
	l.bySrc[src]++
	return true
}

func (l *handshakeListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
}

func (l *handshakeListener) handshake(c net.Conn, src string) {
	defer l.wg.Done()
	hc := &helloConn{Conn: c}
	tc := tls.Server(hc, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	go func() {
		// Closing ends a handshake when the listener closes.
		select {
		case <-l.done:
			c.Close()
		case <-ctx.Done():
		}
	}()
	c.SetDeadline(time.Now().Add(l.timeout))
	err := tc.HandshakeContext(ctx)
	cancel()
	l.release(src)
	if err != nil {
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	to := l.conns
	if hc.grpcOnly {
		to = l.grpc
	}
	select {
	case to <- tc:
	case <-l.done:
		c.Close()
	}
}

// helloConn is a connection in its handshake, with a note of what its
// client's hello offered.
type helloConn struct {
	net.Conn
	grpcOnly bool // written during the handshake, read after it
}

// GRPCOnly is the listener of the connections whose client offered
// pki.ALPNGRPC, for gRPC's own transport (grpc.Server.Serve). Closing it
// closes the whole listener.
func (l *handshakeListener) GRPCOnly() net.Listener { return grpcOnlyListener{l} }

type grpcOnlyListener struct{ l *handshakeListener }

func (g grpcOnlyListener) Accept() (net.Conn, error) {
	select {
	case c := <-g.l.grpc:
		return c, nil
	case err := <-g.l.errc:
		g.l.errc <- err // for the next caller
		return nil, err
	case <-g.l.done:
		return nil, net.ErrClosed
	}
}

func (g grpcOnlyListener) Close() error   { return g.l.Close() }
func (g grpcOnlyListener) Addr() net.Addr { return g.l.Addr() }

// Accept returns the next connection whose handshake succeeded.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // for the next caller
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends handshakes in flight.
func (l *handshakeListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.closeErr = l.inner.Close()
	})
	return l.closeErr
}

// Addr is the address listened on.
func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }

func sourceOf(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
