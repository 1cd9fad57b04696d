package pebbletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// httpSolver answers HTTP-01 on a listener of 127.0.0.1 with the key
// authorization of the challenge presented last.
type httpSolver struct {
	chal atomic.Pointer[acme.Challenge]
	hits atomic.Int32
}

func (s *httpSolver) Present(_ context.Context, c acme.Challenge) error {
	s.chal.Store(&c)
	return nil
}

func (s *httpSolver) CleanUp(context.Context, acme.Challenge) error {
	s.chal.Store(nil)
	return nil
}

func (s *httpSolver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	c := s.chal.Load()
	if c == nil || r.URL.Path != c.HTTP01ResourcePath() {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, c.KeyAuthorization)
}

// serveHTTP01 starts h on 127.0.0.1 and returns its port.
func serveHTTP01(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// alpnSolver answers TLS-ALPN-01 on a TLS listener of 127.0.0.1 with the
// challenge certificate of the challenge presented last.
type alpnSolver struct {
	chal atomic.Pointer[acme.Challenge]
	hits atomic.Int32
}

func (s *alpnSolver) Present(_ context.Context, c acme.Challenge) error {
	s.chal.Store(&c)
	return nil
}

func (s *alpnSolver) CleanUp(context.Context, acme.Challenge) error {
	s.chal.Store(nil)
	return nil
}

// serve starts the TLS listener and returns its port.
func (s *alpnSolver) serve(t *testing.T) int {
	t.Helper()
	conf := &tls.Config{
		NextProtos: []string{acmez.ACMETLS1Protocol},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.hits.Add(1)
			c := s.chal.Load()
			if c == nil || !slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol) || hello.ServerName != c.Identifier.Value {
				return nil, io.EOF
			}
			return acmez.TLSALPN01ChallengeCert(*c)
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				conn.(*tls.Conn).Handshake()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// obtain gets a certificate for names from ca, solving with solvers.
func obtain(t *testing.T, ca *CA, solvers map[string]acmez.Solver, names ...string) ([]acme.Certificate, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := acmez.Client{
		Client: &acme.Client{
			Directory:    ca.DirectoryURL(),
			HTTPClient:   ca.HTTPClient(),
			PollInterval: 50 * time.Millisecond,
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
		ChallengeSolvers: solvers,
	}
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	account, err := client.NewAccount(ctx, acme.Account{TermsOfServiceAgreed: true, PrivateKey: accountKey})
	if err != nil {
		t.Fatalf("new account: %v", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return client.ObtainCertificateForSANs(ctx, account, certKey, names)
}

// verify checks that the first of certs chains to ca's issuing roots for
// name, and returns its leaf.
func verify(t *testing.T, ca *CA, certs []acme.Certificate, name string) *x509.Certificate {
	t.Helper()
	if len(certs) == 0 {
		t.Fatal("no certificate")
	}
	var chain []*x509.Certificate
	rest := certs[0].ChainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("chain of %d certificates, want a leaf and its intermediate", len(chain))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.IssuerRootsPEM()) {
		t.Fatal("IssuerRootsPEM holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("leaf does not verify against IssuerRootsPEM: %v", err)
	}
	// The directory's own roots do not verify it.
	other := x509.NewCertPool()
	other.AppendCertsFromPEM(ca.DirectoryRootsPEM())
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: other, Intermediates: inter}); err == nil {
		t.Fatal("leaf verifies against DirectoryRootsPEM too")
	}
	return chain[0]
}

// One certificate through HTTP-01: the validation authority resolves the
// name with the CA's DNS server and fetches the key authorization from the
// test's listener.
func TestHTTP01(t *testing.T) {
	t.Parallel()
	solver := &httpSolver{}
	ca := Start(t, Options{HTTPPort: serveHTTP01(t, solver)})
	certs, err := obtain(t, ca, map[string]acmez.Solver{acme.ChallengeTypeHTTP01: solver}, "www.example.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf := verify(t, ca, certs, "www.example.test")
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 89*24*time.Hour {
		t.Errorf("default validity %s, want Pebble's 90 days", got)
	}
	if solver.hits.Load() == 0 {
		t.Error("the validation authority never asked the HTTP-01 listener")
	}
	if n := ca.Issued(); n != 1 {
		t.Errorf("Issued() = %d, want 1", n)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("Orders() = %d, want 1", n)
	}
}

// One certificate through TLS-ALPN-01 on the TLS port.
func TestTLSALPN01(t *testing.T) {
	t.Parallel()
	solver := &alpnSolver{}
	ca := Start(t, Options{TLSPort: solver.serve(t)})
	certs, err := obtain(t, ca, map[string]acmez.Solver{acme.ChallengeTypeTLSALPN01: solver}, "alpn.example.test")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ca, certs, "alpn.example.test")
	if solver.hits.Load() == 0 {
		t.Error("the validation authority never connected to the TLS-ALPN-01 listener")
	}
	if n := ca.Issued(); n != 1 {
		t.Errorf("Issued() = %d, want 1", n)
	}
}

// CertValidity sets the leaves' lifetime, and every order is validated
// again (no authorization reuse by default).
func TestShortValidity(t *testing.T) {
	t.Parallel()
	solver := &httpSolver{}
	ca := Start(t, Options{HTTPPort: serveHTTP01(t, solver), CertValidity: 2 * time.Minute})
	for i := range 2 {
		before := solver.hits.Load()
		certs, err := obtain(t, ca, map[string]acmez.Solver{acme.ChallengeTypeHTTP01: solver}, "short.example.test")
		if err != nil {
			t.Fatal(err)
		}
		leaf := verify(t, ca, certs, "short.example.test")
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 2*time.Minute-2*time.Second || got > 2*time.Minute {
			t.Errorf("validity %s, want about 2m", got)
		}
		if solver.hits.Load() == before {
			t.Errorf("order %d was not validated", i+1)
		}
		if n := ca.Issued(); n != i+1 {
			t.Errorf("Issued() = %d, want %d", n, i+1)
		}
	}
}

// Validation is real: a listener that does not know the key authorization
// gets no certificate.
func TestFailedValidation(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	port := serveHTTP01(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	ca := Start(t, Options{HTTPPort: port})
	solver := &httpSolver{} // presents, but is not what listens
	if _, err := obtain(t, ca, map[string]acmez.Solver{acme.ChallengeTypeHTTP01: solver}, "fail.example.test"); err == nil {
		t.Fatal("got a certificate without answering the challenge")
	}
	if hits.Load() == 0 {
		t.Error("the validation authority never asked the HTTP-01 listener")
	}
	if n := ca.Issued(); n != 0 {
		t.Errorf("Issued() = %d, want 0", n)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("Orders() = %d, want 1", n)
	}
}

// The CA's DNS server answers A with 127.0.0.1 and AAAA with nothing, over
// UDP and TCP.
func TestDNS(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	for _, network := range []string{"udp", "tcp"} {
		client := &dns.Client{Net: network, Timeout: 5 * time.Second}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			q := new(dns.Msg)
			q.SetQuestion("any.name.test.", qtype)
			r, _, err := client.Exchange(q, ca.dns.addr)
			if err != nil {
				t.Fatalf("%s %s: %v", network, dns.TypeToString[qtype], err)
			}
			if r.Rcode != dns.RcodeSuccess {
				t.Errorf("%s %s: rcode %s", network, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
			}
			switch qtype {
			case dns.TypeA:
				if len(r.Answer) != 1 || !r.Answer[0].(*dns.A).A.Equal(net.IPv4(127, 0, 0, 1)) {
					t.Errorf("%s A: %v, want 127.0.0.1", network, r.Answer)
				}
			case dns.TypeAAAA:
				if len(r.Answer) != 0 {
					t.Errorf("%s AAAA: %v, want none", network, r.Answer)
				}
			}
		}
	}
	ca.Close()
	ca.Close() // a second Close is harmless
}
