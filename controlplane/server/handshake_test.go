package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/pki"
)

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// closedByServer reports whether the server ends c (a read sees EOF or a
// reset) rather than leaving it open; the deadline is only a safety net.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestHandshakeListener: connections that have not finished their TLS
// handshake are bounded in all and per source address, and the bound is
// freed when they go; finished connections are not counted, so long-lived
// ones never use it up; a stalled handshake is ended (issue 14, #13).
func TestHandshakeListener(t *testing.T) {
	cfg, pool := selfSigned(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newHandshakeListener(inner, cfg, time.Minute, 3, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		l.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	}()
	addr := inner.Addr().String()
	client := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	dialTLS := func(local string) error {
		d := &net.Dialer{Timeout: 20 * time.Second}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		c, err := tls.DialWithDialer(d, "tcp", addr, client)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return err
	}

	// Finished connections, more than the bounds, all kept open.
	for i := 0; i < 6; i++ {
		if err := dialTLS(""); err != nil {
			t.Fatalf("TLS connection %d: %v", i, err)
		}
	}

	// waitInFlight waits until n handshakes from 127.0.0.1 are in flight
	// on the server's side (a client's dial may return before the server
	// has read its last handshake message).
	waitInFlight := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			l.mu.Lock()
			got := l.bySrc["127.0.0.1"]
			l.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d handshakes from 127.0.0.1 in flight, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitInFlight(0)

	// Two stalled connections from 127.0.0.1 fill its share; a third is
	// closed at once, while another source still gets in.
	var stalled []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled = append(stalled, c)
	}
	waitInFlight(2)
	if err := dialTLS("127.0.0.2"); err != nil {
		t.Fatalf("a TLS connection from another source: %v", err)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !closedByServer(t, third) {
		t.Fatal("a third stalled connection from one source was kept")
	}

	// When the stalled ones go, their slots come back.
	for _, c := range stalled {
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := dialTLS("")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS connection after the stalled ones went: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandshakeListenerTimeout: a connection that never finishes its
// handshake is closed by the server.
func TestHandshakeListenerTimeout(t *testing.T) {
	cfg, _ := selfSigned(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newHandshakeListener(inner, cfg, 50*time.Millisecond, 8, 8, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer l.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedByServer(t, c) {
		t.Fatal("a stalled handshake was not ended")
	}
}

// TestHandshakeListenerGRPCOnly: a client that offers pki.ALPNGRPC is
// handed to the GRPCOnly listener, one that does not to Accept, and both
// still negotiate "h2".
func TestHandshakeListenerGRPCOnly(t *testing.T) {
	cfg, pool := selfSigned(t)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newHandshakeListener(inner, cfg, time.Minute, 8, 8, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer l.Close()
	accept := func(ln net.Listener) <-chan net.Conn {
		ch := make(chan net.Conn, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				ch <- c
			}
		}()
		return ch
	}
	plain, grpcOnly := accept(l), accept(l.GRPCOnly())
	dial := func(protos ...string) {
		c, err := tls.Dial("tcp", inner.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("negotiated %q, want h2", p)
		}
	}
	dial("h2", pki.ALPNGRPC)
	select {
	case c := <-grpcOnly:
		c.Close()
	case <-plain:
		t.Fatal("a client offering the gRPC-only protocol went to the HTTP server")
	case <-time.After(20 * time.Second):
		t.Fatal("no connection accepted")
	}
	dial("h2")
	select {
	case c := <-plain:
		c.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("a plain client was not accepted")
	}
}
