package raftstore

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
)

// testStream is a raft stream layer with a server certificate for id.
func testStream(t *testing.T, ca *pki.CA, id string) *tlsStream {
	t.Helper()
	ident, err := ca.IssueServer(id, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(ident.CertPEM, ident.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"}
	f, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m := &members{fsm: f, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s, err := newTLSStream(ln, "", server, client, m, &Faults{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// echo accepts connections and echoes what they send; accept errors and
// read errors go to errs.
func echo(s *tlsStream, errs chan<- error) {
	for {
		c, err := s.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, err := io.Copy(c, c)
			errs <- err
		}()
	}
}

func roundTrip(c net.Conn) error {
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}

func TestFaults(t *testing.T) {
	ca, err := pki.NewCA("c-test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, b := testStream(t, ca, "s-a"), testStream(t, ca, "s-b")
	errs := make(chan error, 10)
	go echo(b, errs)
	bAddr := raft.ServerAddress(b.Addr().String())

	conn, err := a.Dial(bAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(conn); err != nil {
		t.Fatalf("before the partition: %v", err)
	}

	// Blocking the address cuts the open connection and refuses new ones.
	a.faults.Block(string(bAddr))
	if err := roundTrip(conn); !errors.Is(err, ErrPartitioned) {
		t.Errorf("open connection to a blocked address: %v, want ErrPartitioned", err)
	}
	if _, err := a.Dial(bAddr, 5*time.Second); !errors.Is(err, ErrPartitioned) {
		t.Errorf("dial a blocked address: %v, want ErrPartitioned", err)
	}
	a.faults.Heal()
	conn, err = a.Dial(bAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	if err := roundTrip(conn); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	// The other side blocks by server id: its end of the open connection
	// and of new ones fails.
	drain := func() {
		for len(errs) > 0 {
			<-errs
		}
	}
	drain()
	b.faults.BlockID("s-a")
	if err := roundTrip(conn); err == nil {
		t.Error("open connection from a blocked id still works")
	}
	if err := <-errs; !errors.Is(err, ErrPartitioned) {
		t.Errorf("accepted connection from a blocked id: %v, want ErrPartitioned", err)
	}
	if conn, err := a.Dial(bAddr, 5*time.Second); err == nil {
		if err := roundTrip(conn); err == nil {
			t.Error("new connection from a blocked id works")
		}
	}
	b.faults.UnblockID("s-a")
	conn, err = a.Dial(bAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial after unblock: %v", err)
	}
	if err := roundTrip(conn); err != nil {
		t.Fatalf("after unblock: %v", err)
	}
}
