package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/pebbletest"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// acmeHost is the name the tests get certificates for: Pebble's resolver
// (pebbletest's DNS server) sends every name to 127.0.0.1.
const acmeHost = "app.example.test"

// acmeSetup is a cluster with one edge agent on 127.0.0.1, Pebble
// validating against that edge's ports, the cluster's ACME settings
// pointing at Pebble, and an upstream that says who it is.
type acmeSetup struct {
	srv   *testcluster.Server
	cl    *testcluster.Client
	agent *testcluster.Agent
	ca    *pebbletest.CA
	roots *x509.CertPool
}

func startACME(t *testing.T, settings *ccv1.EdgeSettings, o pebbletest.Options, opts ...testcluster.Option) *acmeSetup {
	t.Helper()
	srv := testcluster.Start(t, opts...)
	cl := srv.Client()
	ag := srv.StartAgent("edge", testcluster.WithEdgeHTTPAddr("127.0.0.1:0"), testcluster.WithEdgeHTTPSAddr("127.0.0.1:0"))
	o.HTTPPort, o.TLSPort = port(t, ag.EdgeAddr), port(t, ag.EdgeHTTPSAddr)
	ca := pebbletest.Start(t, o)
	settings.AcmeDirectory, settings.AcmeCaRootsPem, settings.AcmeEmail = ca.DirectoryURL(), string(ca.DirectoryRootsPEM()), "ops@example.test"
	if _, err := cl.Cluster.UpdateSettings(edgeCtx(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Edge: settings}}); err != nil {
		t.Fatalf("ACME settings: %v", err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "upstream") }))
	t.Cleanup(up.Close)
	if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "app", Spec: &ccv1.RouteSpec{
		Hosts: []string{acmeHost}, Upstreams: []*ccv1.Upstream{{Address: up.Listener.Addr().String()}},
		Tls: &ccv1.EdgeTLSOptions{Cert: "auto", HstsMaxAgeSeconds: 3600}}}); err != nil {
		t.Fatalf("create route: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.IssuerRootsPEM())
	return &acmeSetup{srv: srv, cl: cl, agent: ag, ca: ca, roots: roots}
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

// waitCert waits until the certificate has a chain other than not (a
// fingerprint), and returns it.
func (a *acmeSetup) waitCert(t *testing.T, not string) *ccv1.Cert {
	t.Helper()
	var last *ccv1.Cert
	if !waitFor(90*time.Second, func() bool {
		r, err := a.cl.Certs.GetCert(edgeCtx(t), &ccv1.GetCertRequest{Name: acmeHost})
		if err != nil {
			return false
		}
		last = r.Cert
		return last.RenewalState == ccv1.RenewalState_RENEWAL_STATE_VALID && last.Sha256 != "" && last.Sha256 != not
	}) {
		t.Fatalf("no certificate for %s in time; last record: %v", acmeHost, last)
	}
	return last
}

// httpsClient trusts only Pebble's issuing roots and dials the edge for
// every name.
func (a *acmeSetup) httpsClient() *http.Client {
	addr := a.agent.EdgeHTTPSAddr
	tr := &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: a.roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// serveAndCheck waits until the edge serves the certificate with the
// fingerprint want over HTTP/2, verified against Pebble's roots.
func (a *acmeSetup) serveAndCheck(t *testing.T, hc *http.Client, want string) *http.Response {
	t.Helper()
	var last string
	var resp *http.Response
	if !waitFor(30*time.Second, func() bool {
		r, err := hc.Get("https://" + acmeHost + "/")
		if err != nil {
			last = err.Error()
			hc.CloseIdleConnections()
			return false
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if got := fingerprint(r.TLS); got != want {
			last = "serving " + got
			hc.CloseIdleConnections()
			return false
		}
		resp = r
		return true
	}) {
		t.Fatalf("the edge does not serve certificate %s: %s", want, last)
	}
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Fatalf("HTTPS: %s %s", resp.Proto, resp.Status)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=3600") {
		t.Fatalf("HSTS header %q", hsts)
	}
	return resp
}

func fingerprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return certSHA(cs.PeerCertificates[0])
}

// TestACMEHTTP01 is a real order: Pebble validates HTTP-01 by connecting
// to the agent's edge, which got the challenge through its session; the
// certificate is then served through the edge over HTTP/2 and verified
// against Pebble's root, HTTP redirects to HTTPS, and a renewal asked for
// replaces it without dropping an open connection.
func TestACMEHTTP01(t *testing.T) {
	skipShort(t)
	a := startACME(t, &ccv1.EdgeSettings{AcmeDisableTlsAlpn01: true}, pebbletest.Options{CertValidity: time.Hour})
	c := a.waitCert(t, "")
	if c.Source != ccv1.CertSource_CERT_SOURCE_ACME || len(c.Hosts) != 1 || c.Hosts[0] != acmeHost || c.RenewAfter == nil {
		t.Fatalf("record: %v", c)
	}
	hc := a.httpsClient()
	a.serveAndCheck(t, hc, c.Sha256)
	if n := a.ca.Issued(); n != 1 {
		t.Fatalf("Pebble issued %d certificates, want 1", n)
	}

	// HTTP redirects to HTTPS with 308.
	r := edgeGet(a.agent.EdgeAddr, acmeHost, "/x?y=1")
	if r.err != nil || r.status != http.StatusPermanentRedirect || !strings.HasPrefix(r.header.Get("Location"), "https://"+acmeHost) {
		t.Fatalf("HTTP: %d %q %v", r.status, r.header.Get("Location"), r.err)
	}

	// A renewal on request: a new certificate, served to new handshakes,
	// while the connection opened before keeps working.
	if _, err := a.cl.Certs.RenewCert(edgeCtx(t), &ccv1.RenewCertRequest{Name: acmeHost}); err != nil {
		t.Fatalf("renew: %v", err)
	}
	c2 := a.waitCert(t, c.Sha256)
	fresh := a.httpsClient()
	a.serveAndCheck(t, fresh, c2.Sha256)
	old, err := hc.Get("https://" + acmeHost + "/")
	if err != nil {
		t.Fatalf("the connection opened before the renewal: %v", err)
	}
	io.Copy(io.Discard, old.Body)
	old.Body.Close()
	if fingerprint(old.TLS) != c.Sha256 || old.StatusCode != http.StatusOK {
		t.Fatalf("the kept connection changed: %s %s", fingerprint(old.TLS), old.Status)
	}
	if n := a.ca.Issued(); n != 2 {
		t.Fatalf("Pebble issued %d certificates after one renewal, want 2", n)
	}
	// In use: cert rm is refused, naming the route.
	_, err = a.cl.Certs.RemoveCert(edgeCtx(t), &ccv1.RemoveCertRequest{Name: acmeHost})
	if err == nil || !strings.Contains(err.Error(), "route/app") {
		t.Fatalf("remove in use: %v", err)
	}
}

// TestACMETLSALPN01 gets the certificate by TLS-ALPN-01 on the edge's
// HTTPS port (HTTP-01 turned off).
func TestACMETLSALPN01(t *testing.T) {
	skipShort(t)
	a := startACME(t, &ccv1.EdgeSettings{AcmeDisableHttp01: true}, pebbletest.Options{})
	c := a.waitCert(t, "")
	a.serveAndCheck(t, a.httpsClient(), c.Sha256)
	if n := a.ca.Issued(); n != 1 {
		t.Fatalf("Pebble issued %d certificates, want 1", n)
	}
}

// certSHA is a certificate's fingerprint as the API shows it.
func certSHA(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// TestACMELeaderFailover kills the leader between the order and its
// finalization (while the CA has not validated the challenge yet): the
// new leader takes over the lock the dead one held, finds the order in the
// cluster's storage and resumes it, so the cluster ends with the one order
// and exactly one certificate issued and recorded.
func TestACMELeaderFailover(t *testing.T) {
	skipShort(t)
	c := testcluster.StartCluster(t, 3, func(cfg *testcluster.Config) {
		cfg.ACME.ChallengeGrace.Duration = 3 * time.Second
	})
	leader := c.Leader()
	var follower *testcluster.Server
	for _, s := range c.Followers() {
		follower = s
	}
	ag := follower.StartAgent("edge", testcluster.WithEdgeHTTPAddr("127.0.0.1:0"), testcluster.WithEdgeHTTPSAddr("127.0.0.1:0"))
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, ag.EdgeAddr), TLSPort: port(t, ag.EdgeHTTPSAddr)})
	cl := follower.Client()
	if _, err := cl.Cluster.UpdateSettings(edgeCtx(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Edge: &ccv1.EdgeSettings{
		AcmeDirectory: ca.DirectoryURL(), AcmeCaRootsPem: string(ca.DirectoryRootsPEM()), AcmeDisableTlsAlpn01: true}}}); err != nil {
		t.Fatalf("settings: %v", err)
	}
	if _, err := cl.Edge.CreateRoute(edgeCtx(t), &ccv1.CreateRouteRequest{Name: "app", Spec: &ccv1.RouteSpec{
		Hosts: []string{acmeHost}, Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9"}}, Tls: &ccv1.EdgeTLSOptions{Cert: "auto"}}}); err != nil {
		t.Fatalf("create route: %v", err)
	}
	// The leader has ordered (the CA saw the order) and waits before
	// asking for validation: kill it there.
	if !waitFor(60*time.Second, func() bool { return ca.Orders() >= 1 }) {
		t.Fatal("the leader made no order")
	}
	// The order's URL is written to the cluster's storage just after the
	// CA creates it (a leader dying in between loses that order: nobody
	// knows it); the 3 s grace keeps the challenge unvalidated well past
	// this wait.
	time.Sleep(700 * time.Millisecond)
	if ca.Issued() != 0 {
		t.Fatal("issued before the leader was killed: the window was missed")
	}
	leader.Stop()

	a := &acmeSetup{cl: cl, agent: ag, ca: ca}
	cert := a.waitCert(t, "")
	if n := ca.Issued(); n != 1 {
		t.Fatalf("Pebble issued %d certificates, want exactly 1", n)
	}
	if n := ca.Orders(); n != 1 {
		t.Fatalf("the CA saw %d orders, want 1: the new leader should resume the order, not place another", n)
	}
	certs, err := cl.Certs.ListCerts(edgeCtx(t), &ccv1.ListCertsRequest{})
	if err != nil || len(certs.Certs) != 1 || certs.Certs[0].Sha256 != cert.Sha256 {
		t.Fatalf("certificates after the failover: %v %v", certs, err)
	}
	// Give a late, duplicate order a moment to show up, then check again.
	time.Sleep(2 * time.Second)
	if n := ca.Issued(); n != 1 {
		t.Fatalf("Pebble issued %d certificates, want exactly 1", n)
	}
}

// TestACMEAutoRenewal: a short-lived certificate is renewed before it
// expires, with nobody asking, and a connection opened before keeps
// working while new handshakes get the new certificate.
func TestACMEAutoRenewal(t *testing.T) {
	skipShort(t)
	a := startACME(t, &ccv1.EdgeSettings{AcmeDisableTlsAlpn01: true}, pebbletest.Options{CertValidity: 45 * time.Second},
		func(cfg *testcluster.Config) { cfg.ACME.RenewCheckInterval.Duration = time.Second })
	c := a.waitCert(t, "")
	hc := a.httpsClient()
	a.serveAndCheck(t, hc, c.Sha256)
	c2 := a.waitCert(t, c.Sha256)
	if !c2.NotAfter.AsTime().After(c.NotAfter.AsTime()) {
		t.Fatalf("the renewed certificate ends %v, the first %v", c2.NotAfter.AsTime(), c.NotAfter.AsTime())
	}
	a.serveAndCheck(t, a.httpsClient(), c2.Sha256)
	old, err := hc.Get("https://" + acmeHost + "/")
	if err != nil {
		t.Fatalf("the connection opened before the renewal: %v", err)
	}
	io.Copy(io.Discard, old.Body)
	old.Body.Close()
	if fingerprint(old.TLS) != c.Sha256 {
		t.Fatalf("the kept connection changed certificate")
	}
}
