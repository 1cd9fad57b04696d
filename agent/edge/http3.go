package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// h3Server is the HTTP/3 server on the HTTPS port's UDP twin.
type h3Server struct {
	srv  *http3.Server
	pc   net.PacketConn
	done chan struct{}
}

// setHTTP3 starts or stops HTTP/3 to match on. Called with s.mu held.
func (s *Server) setHTTP3(on bool) {
	switch {
	case on && s.h3 == nil && s.httpsLn != nil && !s.closed:
		h, err := s.startHTTP3()
		if err != nil {
			s.log.Error("edge: HTTP/3 not served", "err", err)
			return
		}
		s.h3 = h
		alt := `h3=":` + strconv.Itoa(s.httpsPort) + `"; ma=86400`
		s.altSvc.Store(&alt)
		s.log.Info("edge serving HTTP/3", "addr", h.pc.LocalAddr().String())
	case !on && s.h3 != nil:
		s.altSvc.Store(nil)
		h := s.h3
		s.h3 = nil
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
			defer cancel()
			h.stop(ctx)
		}()
	}
}

// startHTTP3 listens on the UDP port of the HTTPS listener's address.
func (s *Server) startHTTP3() (*h3Server, error) {
	pc, err := net.ListenPacket("udp", s.httpsLn.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("listen on UDP %s: %w", s.httpsLn.Addr(), err)
	}
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS13, // QUIC's
		GetCertificate: s.getCertificate,
	}
	h := &h3Server{
		pc:   pc,
		done: make(chan struct{}),
		srv: &http3.Server{
			Handler:        s,
			TLSConfig:      conf,
			Port:           s.httpsPort,
			IdleTimeout:    120 * time.Second,
			MaxHeaderBytes: 1 << 20,
			Logger:         slog.New(slog.DiscardHandler),
		},
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(pc); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("edge: HTTP/3 stopped", "err", err)
		}
	}()
	return h, nil
}

// stop shuts the HTTP/3 server down gracefully within ctx, then closes it.
func (h *h3Server) stop(ctx context.Context) {
	if err := h.srv.Shutdown(ctx); err != nil {
		h.srv.Close()
	}
	h.pc.Close()
	<-h.done
}
