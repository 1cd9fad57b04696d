package edge

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/crypto/ocsp"

	"github.com/containercodes/cc/internal/logging"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// testCA issues certificates for the tests, made at run time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

var serial int64 = 1

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "edge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issue makes an EdgeCert named name (its leaf's common name too) for
// the DNS names, its chain the leaf then the CA; ocspURL, when set, is
// the leaf's OCSP responder.
func (ca *testCA) issue(t *testing.T, name, ocspURL string, dnsNames ...string) *ccv1.EdgeCert {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(12 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ocspURL != "" {
		tmpl.OCSPServer = []string{ocspURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	return &ccv1.EdgeCert{Name: name, Hosts: dnsNames, ChainPem: chain, KeyPem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), Version: 1}
}

// startTLSEdge runs an edge with HTTPS on 127.0.0.1:0.
func startTLSEdge(t *testing.T, o Options) *Server {
	t.Helper()
	o.HTTPSAddr = "127.0.0.1:0"
	return startEdge(t, o)
}

func tlsRoute(name, host, cert string, up string) *ccv1.EdgeRoute {
	r := mkRoute(name, host, "/", up)
	r.Spec.Tls = &ccv1.EdgeTLSOptions{Cert: cert}
	return r
}

// handshake connects to the edge's HTTPS port as serverName and returns
// the common name of the certificate it got.
func handshake(t *testing.T, s *Server, serverName string, conf *tls.Config) (string, tls.ConnectionState, error) {
	t.Helper()
	if conf == nil {
		conf = &tls.Config{}
	}
	conf = conf.Clone()
	conf.ServerName = serverName
	conf.InsecureSkipVerify = true // the name is checked here, by common name
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.HTTPSAddr().String(), conf)
	if err != nil {
		return "", tls.ConnectionState{}, err
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st, nil
}

// httpsClient trusts ca and sends every request to the edge's HTTPS
// port, whatever the URL's host; HTTP/2 when the server offers it.
func httpsClient(s *Server, ca *testCA) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, s.HTTPSAddr().String())
			},
			Protocols: p,
		},
		CheckRedirect: noRedirect,
		Timeout:       30 * time.Second,
	}
}

func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// plainGet is get without following redirects.
func plainGet(t *testing.T, s *Server, host, path string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{CheckRedirect: noRedirect, Timeout: 30 * time.Second}
	req, err := http.NewRequest("GET", "http://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestSNIPicksTheCertificate(t *testing.T) {
	ca := newCA(t)
	s := startTLSEdge(t, Options{})
	up := addr(upstream(t, "u", nil))
	cfg := Config{
		Routes: []*ccv1.EdgeRoute{tlsRoute("named", "x.example.test", "named", up), tlsRoute("auto", "a.example.test", "auto", up)},
		Certs: []*ccv1.EdgeCert{
			ca.issue(t, "exact", "", "a.example.test"),
			ca.issue(t, "wild", "", "*.example.test"),
			ca.issue(t, "named", "", "other.test"),
			ca.issue(t, "def", "", "default.test"),
		},
		TLS: &ccv1.EdgeTLSSettings{DefaultCert: "def"},
	}
	s.Update(cfg)
	for _, c := range []struct{ sni, want string }{
		{"a.example.test", "exact"},
		{"A.Example.Test", "exact"},
		{"b.example.test", "wild"},
		{"x.example.test", "named"},    // the route names it, though its SAN differs
		{"deep.b.example.test", "def"}, // a wildcard covers one label
		{"example.test", "def"},        // and not the name itself
		{"nothing.test", "def"},
		{"", "def"}, // no SNI
	} {
		got, _, err := handshake(t, s, c.sni, nil)
		if err != nil || got != c.want {
			t.Errorf("SNI %q: certificate %q (%v), want %q", c.sni, got, err, c.want)
		}
	}
	// Verified for real: the client checks the chain against the CA.
	if c, err := tls.Dial("tcp", s.HTTPSAddr().String(), &tls.Config{ServerName: "b.example.test", RootCAs: ca.pool}); err != nil {
		t.Errorf("verified handshake: %v", err)
	} else {
		c.Close()
	}

	// Without a default, a name nothing covers fails the handshake.
	cfg.TLS = nil
	s.Update(cfg)
	if _, _, err := handshake(t, s, "nothing.test", nil); err == nil {
		t.Error("a handshake no certificate covers succeeded")
	}
	if got, _, err := handshake(t, s, "b.example.test", nil); err != nil || got != "wild" {
		t.Errorf("after the update: %q, %v", got, err)
	}

	// TLS 1.1 and TLS 1.2 without a modern suite are refused; 1.2 with
	// one and 1.3 are served.
	if _, _, err := handshake(t, s, "a.example.test", &tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	if _, _, err := handshake(t, s, "a.example.test", &tls.Config{MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Error("a CBC suite accepted")
	}
	if _, st, err := handshake(t, s, "a.example.test", &tls.Config{MaxVersion: tls.VersionTLS12}); err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2: %v", err)
	}
	if _, st, err := handshake(t, s, "a.example.test", nil); err != nil || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "" {
		t.Errorf("TLS 1.3: %x %q %v", st.Version, st.NegotiatedProtocol, err)
	}
}

func TestHTTPSRoutesRedirectsAndHSTS(t *testing.T) {
	ca := newCA(t)
	var access syncBuffer
	s := startTLSEdge(t, Options{AccessLog: slog.New(slog.NewJSONHandler(&access, nil))})
	up := addr(upstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Header.Get("X-Forwarded-Proto"), r.URL.RequestURI())
	}))
	secure := tlsRoute("secure", "app.test", "auto", up)
	secure.Spec.Tls.HstsMaxAgeSeconds = 3600
	secure.Spec.Tls.HstsIncludeSubdomains = true
	nored := tlsRoute("nored", "nored.test", "auto", up)
	nored.Spec.Tls.NoRedirect = true
	off := tlsRoute("plain", "plain.test", "off", up)
	s.Update(Config{
		Routes: []*ccv1.EdgeRoute{secure, nored, off},
		Certs:  []*ccv1.EdgeCert{ca.issue(t, "app", "", "app.test", "nored.test", "plain.test")},
	})
	port := strconv.Itoa(s.HTTPSAddr().(*net.TCPAddr).Port)
	c := httpsClient(s, ca)

	resp, body := fetch(t, c, "https://app.test/x?q=1")
	if resp.StatusCode != 200 || body != "https /x?q=1" || resp.Proto != "HTTP/2.0" {
		t.Errorf("HTTPS: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600; includeSubDomains" {
		t.Errorf("HSTS %q", got)
	}
	if resp.Header.Get("Alt-Svc") != "" {
		t.Error("Alt-Svc without HTTP/3")
	}

	// Plain HTTP to a TLS route: 308 to the same path and query.
	code, _, h := plainGet(t, s, "app.test", "/x/y?q=1&r=2")
	if want := "https://app.test:" + port + "/x/y?q=1&r=2"; code != http.StatusPermanentRedirect || h.Get("Location") != want {
		t.Errorf("HTTP: %d to %q, want 308 to %q", code, h.Get("Location"), want)
	}
	// no_redirect serves plain HTTP too, without HSTS.
	if code, body, h := plainGet(t, s, "nored.test", "/n"); code != 200 || body != "http /n" || h.Get("Strict-Transport-Security") != "" {
		t.Errorf("no_redirect over HTTP: %d %q %v", code, body, h)
	}
	if resp, body := fetch(t, c, "https://nored.test/n"); resp.StatusCode != 200 || body != "https /n" {
		t.Errorf("no_redirect over HTTPS: %d %q", resp.StatusCode, body)
	}
	// A route with TLS off: HTTP only; over HTTPS, 421.
	if code, body, _ := plainGet(t, s, "plain.test", "/p"); code != 200 || body != "http /p" {
		t.Errorf("TLS off over HTTP: %d %q", code, body)
	}
	if resp, _ := fetch(t, c, "https://plain.test/p"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("TLS off over HTTPS: %d, want 421", resp.StatusCode)
	}
	if resp, _ := fetch(t, c, "https://app.test:443/x"); resp.StatusCode != 200 {
		t.Errorf("host with a port: %d", resp.StatusCode)
	}

	// The access line says TLS version and protocol.
	waitFor(t, "the access line of an HTTPS request", func() bool { return strings.Contains(access.String(), `"route":"secure"`) })
	for _, line := range strings.Split(strings.TrimSpace(access.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["route"] == "secure" && m["status"] == float64(200) {
			if m["tls"] != "TLS 1.3" || m["proto"] != "HTTP/2.0" {
				t.Errorf("access line: %s", line)
			}
			return
		}
	}
	t.Errorf("no access line of the HTTPS request in:\n%s", access.String())
}

func TestACMEChallenges(t *testing.T) {
	ca := newCA(t)
	s := startTLSEdge(t, Options{})
	up := addr(upstream(t, "u", nil))
	alpnCert := ca.issue(t, "challenge", "", "alpn.test")
	s.Update(Config{
		Routes: []*ccv1.EdgeRoute{tlsRoute("app", "app.test", "auto", up)},
		Challenges: []*ccv1.ACMEChallenge{
			{Type: ChallengeHTTP01, Host: "app.test", Token: "tok-1", KeyAuthorization: "tok-1.thumb"},
			{Type: ChallengeTLSALPN01, Host: "alpn.test", CertPem: alpnCert.ChainPem, KeyPem: alpnCert.KeyPem},
		},
	})
	// HTTP-01, before routing (the route would redirect).
	code, body, h := plainGet(t, s, "app.test", "/.well-known/acme-challenge/tok-1")
	if code != 200 || body != "tok-1.thumb" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("HTTP-01: %d %q %q", code, body, h.Get("Content-Type"))
	}
	if code, _, _ := plainGet(t, s, "other.test", "/.well-known/acme-challenge/tok-1"); code != 404 {
		t.Errorf("token for another host: %d", code)
	}
	if code, _, _ := plainGet(t, s, "app.test", "/.well-known/acme-challenge/nope"); code != http.StatusPermanentRedirect {
		t.Errorf("unknown token: %d, want the route's redirect", code)
	}
	if code, _, _ := plainGet(t, s, "nothing.test", "/.well-known/acme-challenge/nope"); code != 404 {
		t.Errorf("unknown token, no route: %d", code)
	}

	// TLS-ALPN-01: the challenge's certificate, acme-tls/1, then the end.
	conn, err := tls.Dial("tcp", s.HTTPSAddr().String(), &tls.Config{ServerName: "alpn.test", NextProtos: []string{ALPNACME}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS-ALPN-01 handshake: %v", err)
	}
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != ALPNACME || st.PeerCertificates[0].Subject.CommonName != "challenge" {
		t.Errorf("TLS-ALPN-01: protocol %q, certificate %q", st.NegotiatedProtocol, st.PeerCertificates[0].Subject.CommonName)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after the TLS-ALPN-01 handshake: read %d, %v; want the connection closed", n, err)
	}
	conn.Close()
	if _, _, err := handshake(t, s, "app.test", &tls.Config{NextProtos: []string{ALPNACME}}); err == nil {
		t.Error("acme-tls/1 for a host without a challenge succeeded")
	}

	// The challenges go: nothing answers them any more.
	s.Update(Config{Routes: []*ccv1.EdgeRoute{tlsRoute("app", "app.test", "auto", up)}})
	if code, _, _ := plainGet(t, s, "app.test", "/.well-known/acme-challenge/tok-1"); code == 200 {
		t.Error("a removed HTTP-01 challenge still answered")
	}
	if _, _, err := handshake(t, s, "alpn.test", &tls.Config{NextProtos: []string{ALPNACME}}); err == nil {
		t.Error("a removed TLS-ALPN-01 challenge still answered")
	}
}

func TestHTTP3(t *testing.T) {
	ca := newCA(t)
	s := startTLSEdge(t, Options{})
	up := addr(upstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Header.Get("X-Forwarded-Proto"), r.URL.Path)
	}))
	cfg := Config{
		Routes: []*ccv1.EdgeRoute{tlsRoute("app", "app.test", "auto", up)},
		Certs:  []*ccv1.EdgeCert{ca.issue(t, "app", "", "app.test")},
		TLS:    &ccv1.EdgeTLSSettings{Http3: true},
	}
	s.Update(cfg)
	port := s.HTTPSAddr().(*net.TCPAddr).Port
	resp, _ := fetch(t, httpsClient(s, ca), "https://app.test/")
	if want := fmt.Sprintf(`h3=":%d"; ma=86400`, port); resp.Header.Get("Alt-Svc") != want {
		t.Errorf("Alt-Svc %q, want %q", resp.Header.Get("Alt-Svc"), want)
	}

	h3 := func() (*http.Response, string, error) {
		tr := &http3.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.pool},
			QUICConfig:      &quic.Config{HandshakeIdleTimeout: 2 * time.Second},
			Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
				return quic.DialAddrEarly(ctx, s.HTTPSAddr().String(), tc, qc)
			},
		}
		defer tr.Close()
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get(fmt.Sprintf("https://app.test:%d/h3", port))
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, body, err := h3()
	if err != nil {
		t.Fatalf("HTTP/3: %v", err)
	}
	if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" || body != "https /h3" {
		t.Errorf("HTTP/3: %d %s %q", resp.StatusCode, resp.Proto, body)
	}

	// Off at run time: no more Alt-Svc, and the UDP port closes.
	cfg.TLS = nil
	s.Update(cfg)
	if resp, _ := fetch(t, httpsClient(s, ca), "https://app.test/"); resp.Header.Get("Alt-Svc") != "" {
		t.Errorf("Alt-Svc after HTTP/3 went off: %q", resp.Header.Get("Alt-Svc"))
	}
	waitFor(t, "the UDP port to close", func() bool {
		pc, err := net.ListenPacket("udp", s.HTTPSAddr().String())
		if err == nil {
			pc.Close()
		}
		return err == nil
	})
	// And on again.
	cfg.TLS = &ccv1.EdgeTLSSettings{Http3: true}
	s.Update(cfg)
	if resp, _, err := h3(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP/3 on again: %v", err)
	}
}

func TestCertSwapKeepsOpenConnections(t *testing.T) {
	ca := newCA(t)
	s := startTLSEdge(t, Options{})
	up := addr(upstream(t, "u", nil))
	route := tlsRoute("app", "app.test", "auto", up)
	v1 := ca.issue(t, "v1", "", "app.test")
	v1.Name = "app"
	s.Update(Config{Routes: []*ccv1.EdgeRoute{route}, Certs: []*ccv1.EdgeCert{v1}})

	c := httpsClient(s, ca)
	var mu sync.Mutex
	var reused bool
	var leaf string
	get := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", "https://app.test/", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				mu.Lock()
				defer mu.Unlock()
				reused = i.Reused
				if tc, ok := i.Conn.(*tls.Conn); ok {
					leaf = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				}
			},
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(c); code != 200 || leaf != "v1" {
		t.Fatalf("before: %d, certificate %q", code, leaf)
	}
	v2 := ca.issue(t, "v2", "", "app.test")
	v2.Name, v2.Version = "app", 2
	s.Update(Config{Routes: []*ccv1.EdgeRoute{route}, Certs: []*ccv1.EdgeCert{v2}})
	if code := get(c); code != 200 || !reused || leaf != "v1" {
		t.Errorf("the open connection after the swap: %d, reused %v, certificate %q", code, reused, leaf)
	}
	if code := get(httpsClient(s, ca)); code != 200 || reused || leaf != "v2" {
		t.Errorf("a new connection after the swap: %d, reused %v, certificate %q", code, reused, leaf)
	}
}

func TestUnparsableCertSkipped(t *testing.T) {
	ca := newCA(t)
	var logs syncBuffer
	s := startTLSEdge(t, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	good := ca.issue(t, "good", "", "good.test")
	other := ca.issue(t, "other", "", "bad.test")
	bad := &ccv1.EdgeCert{Name: "bad", ChainPem: other.ChainPem, KeyPem: good.KeyPem} // key of another cert
	garbage := &ccv1.EdgeCert{Name: "garbage", ChainPem: []byte("not a certificate"), KeyPem: []byte("-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n")}
	s.Update(Config{Certs: []*ccv1.EdgeCert{bad, garbage, good}})
	if got, _, err := handshake(t, s, "good.test", nil); err != nil || got != "good" {
		t.Errorf("good certificate: %q, %v", got, err)
	}
	if _, _, err := handshake(t, s, "bad.test", nil); err == nil {
		t.Error("a certificate whose key does not match was served")
	}
	out := logs.String()
	for _, name := range []string{"cert=bad", "cert=garbage"} {
		if !strings.Contains(out, name) {
			t.Errorf("no log line names %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "c2VjcmV0") || strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("key material in the log:\n%s", out)
	}
}

func TestOCSPStapling(t *testing.T) {
	ca := newCA(t)
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		}, crypto.Signer(ca.key))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(responder.Close)
	s := startTLSEdge(t, Options{Log: logging.Test(t)})
	s.Update(Config{Certs: []*ccv1.EdgeCert{ca.issue(t, "stapled", responder.URL, "ocsp.test"), ca.issue(t, "plain", "", "plain.test")}})
	var staple []byte
	waitFor(t, "a stapled OCSP response", func() bool {
		_, st, err := handshake(t, s, "ocsp.test", nil)
		staple = st.OCSPResponse
		return err == nil && len(staple) > 0
	})
	or, err := ocsp.ParseResponse(staple, ca.cert)
	if err != nil || or.Status != ocsp.Good {
		t.Fatalf("staple: %v, %v", or, err)
	}
	if _, st, err := handshake(t, s, "plain.test", nil); err != nil || len(st.OCSPResponse) != 0 {
		t.Errorf("a certificate without a responder: %v, staple of %d bytes", err, len(st.OCSPResponse))
	}
}
