package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/pki"
)

// handshake connects a client with cli to a listener with srv and returns
// the serials of the certificates each side saw from the other.
func handshake(t *testing.T, srv, cli *tls.Config) (serverSaw, clientSaw *big.Int) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			t.Errorf("server handshake: %v", err)
			return
		}
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			serverSaw = pc[0].SerialNumber
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	clientSaw = c.ConnectionState().PeerCertificates[0].SerialNumber
	// TLS 1.3: the server checks the client's certificate after the
	// client's handshake; a read waits for that side.
	c.Write([]byte{0})
	wg.Wait()
	c.Close()
	return serverSaw, clientSaw
}

// A server's certificate is renewed in the background once two thirds of
// its lifetime have passed; new handshakes, on raft (both sides) and on the
// API, present the new one, and the data dir holds it for the next start.
func TestServerCertRenewedBeforeExpiry(t *testing.T) {
	// The test's clock starts 21 days ago, so that both the first and the
	// renewed certificate are valid for pki.VerifyServer, which reads the
	// real clock.
	start := time.Now().Add(-21 * 24 * time.Hour)
	var mu sync.Mutex
	clock := start
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(d time.Duration) { mu.Lock(); clock = start.Add(d); mu.Unlock() }

	ca, err := pki.NewCA("c-test", start)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	const lifetime = 30 * 24 * time.Hour
	dir := t.TempDir()
	id := testIdentity(t, ca, []string{"127.0.0.1", "localhost"}, dir)
	if err := id.issue(ca, start, lifetime); err != nil {
		t.Fatal(err)
	}
	first := id.current().Leaf.SerialNumber
	r := &certRenewer{id: id, ca: func() (*pki.CA, error) { return ca, nil }, now: now, lifetime: lifetime, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api, err := newAPICerts(id.current, "", "", log)
	if err != nil {
		t.Fatal(err)
	}
	configs := func() (raftSrv, raftCli, apiSrv, apiCli *tls.Config) {
		raftSrv, raftCli = id.raftServerTLS(), id.raftClientTLS()
		apiSrv = id.apiTLS(api)
		apiCli = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		for _, c := range []*tls.Config{raftSrv, raftCli, apiSrv, apiCli} {
			c.Time = now // the certificates are checked at the test's time
		}
		return
	}
	check := func(want *big.Int) {
		t.Helper()
		rs, rc, as, ac := configs()
		srvSaw, cliSaw := handshake(t, rs, rc)
		if srvSaw == nil || srvSaw.Cmp(want) != 0 || cliSaw.Cmp(want) != 0 {
			t.Errorf("raft handshake: server saw %v, client saw %v, want %v", srvSaw, cliSaw, want)
		}
		if _, apiSaw := handshake(t, as, ac); apiSaw.Cmp(want) != 0 {
			t.Errorf("API handshake: client saw %v, want %v", apiSaw, want)
		}
		onDisk, err := tls.LoadX509KeyPair(filepath.Join(dir, fileServerCert), filepath.Join(dir, fileServerKey))
		if err != nil {
			t.Fatalf("files: %v", err)
		}
		if onDisk.Leaf.SerialNumber.Cmp(want) != 0 {
			t.Errorf("data dir holds serial %v, want %v", onDisk.Leaf.SerialNumber, want)
		}
	}

	check(first)
	set(19 * 24 * time.Hour) // under two thirds of 30 days
	if renewed, err := r.renewIfDue(); renewed || err != nil {
		t.Fatalf("renewed at 19 days: %v %v", renewed, err)
	}
	check(first)

	set(21 * 24 * time.Hour)
	if renewed, err := r.renewIfDue(); !renewed || err != nil {
		t.Fatalf("not renewed at 21 days: %v %v", renewed, err)
	}
	second := id.current().Leaf.SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("same serial after renewal")
	}
	if got, want := id.current().Leaf.NotAfter, start.Add(21*24*time.Hour+lifetime); got.Sub(want).Abs() > time.Second {
		t.Errorf("renewed certificate ends %v, want %v", got, want)
	}
	check(second)
	// Past the first certificate's end, the cluster still handshakes.
	set(35 * 24 * time.Hour)
	check(second)

	// A server without the CA key yet keeps its certificate and says why.
	set(45 * 24 * time.Hour)
	r.ca = func() (*pki.CA, error) { return nil, net.ErrClosed }
	if renewed, err := r.renewIfDue(); renewed || err == nil {
		t.Errorf("renewal without the CA: %v %v", renewed, err)
	}
	if id.current().Leaf.SerialNumber.Cmp(second) != 0 {
		t.Error("certificate changed without the CA")
	}
}

// A running server renews its own certificate with no restart: with a
// lifetime of seconds, new API handshakes soon see a new certificate, which
// the data dir holds too, and the server stays ready.
func TestServerRenewsItsCertificateWhileRunning(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Bootstrap = true
	cfg.APIAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
	cfg.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx, cfg, Options{ServerCertLifetime: 3 * time.Second, CertRenewCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(srv.CACertPEM())
	if err != nil {
		t.Fatal(err)
	}
	serial := func() *big.Int {
		t.Helper()
		c, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2", pki.ALPNCluster}})
		if err != nil {
			t.Fatalf("API handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := serial()
	deadline := time.Now().Add(20 * time.Second)
	for serial().Cmp(first) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not renewed within 20s of a 3s lifetime")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Past the first certificate's end, handshakes still verify.
	time.Sleep(3 * time.Second)
	now := serial()
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(cfg.DataDir, dirTLS, fileServerCert), filepath.Join(cfg.DataDir, dirTLS, fileServerKey))
	if err != nil {
		t.Fatal(err)
	}
	// The renewal may have run again between the two reads.
	if d := onDisk.Leaf.SerialNumber; d.Cmp(now) != 0 && d.Cmp(srv.id.current().Leaf.SerialNumber) != 0 {
		t.Errorf("data dir holds serial %v, the server presents %v", d, now)
	}
	if err := srv.notReady(); err != nil {
		t.Errorf("not ready after renewals: %v", err)
	}
}

// A renewed certificate is for the same key: the key is what the server's
// record pins, and its peers refuse a certificate of its id for another.
func TestServerCertRenewalKeepsKey(t *testing.T) {
	start := time.Now()
	ca, err := pki.NewCA("c-test", start)
	if err != nil {
		t.Fatal(err)
	}
	const lifetime = 30 * 24 * time.Hour
	dir := t.TempDir()
	id := testIdentity(t, ca, []string{"127.0.0.1"}, dir)
	if err := id.issue(ca, start, lifetime); err != nil {
		t.Fatal(err)
	}
	pin := id.keyHash()
	first := id.current().Leaf.SerialNumber
	r := &certRenewer{id: id, ca: func() (*pki.CA, error) { return ca, nil }, now: func() time.Time { return start.Add(25 * 24 * time.Hour) }, lifetime: lifetime, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if renewed, err := r.renewIfDue(); err != nil || !renewed {
		t.Fatalf("renewIfDue: %v, %v", renewed, err)
	}
	if id.current().Leaf.SerialNumber.Cmp(first) == 0 {
		t.Fatal("not renewed")
	}
	if !pki.KeyMatches(pin, id.current().Leaf) {
		t.Error("the renewed certificate is for another key")
	}
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(dir, fileServerCert), filepath.Join(dir, fileServerKey))
	if err != nil {
		t.Fatal(err)
	}
	if !pki.KeyMatches(pin, onDisk.Leaf) {
		t.Error("the data dir holds a certificate for another key")
	}
}

// testIdentity is the identity of server s-test of a cluster of ca, with no
// certificate yet.
func testIdentity(t *testing.T, ca *pki.CA, hosts []string, dir string) *identity {
	t.Helper()
	id := &identity{clusterID: "c-test", ca: ca, serverID: "s-test", hosts: hosts, tlsDir: dir}
	trust, err := newCATrust(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	id.trust.Store(trust)
	return id
}
