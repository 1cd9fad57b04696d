// Package pebbletest runs Pebble, Let's Encrypt's test ACME CA, in-process
// for tests of ACME clients: the directory on 127.0.0.1 (a random port) over
// HTTPS with a certificate made at start, and a DNS server of its own that
// answers every A query with 127.0.0.1, so the validation authority's HTTP-01
// and TLS-ALPN-01 connections really go to the test's listeners on loopback.
// Validation is never skipped; Pebble's random validation sleeps, nonce
// rejections and authorization reuse are off unless asked for, so tests are
// deterministic.
//
// A test starts a listener for the challenge first (its port is the edge's
// HTTP or HTTPS port), then the CA:
//
//	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort})
//	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
package pebbletest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options configures a CA. The zero value is a CA whose challenges cannot
// succeed: set the port of each challenge type the test uses.
type Options struct {
	// HTTPPort is the port the validation authority connects to on
	// 127.0.0.1 for HTTP-01 (the edge's HTTP port).
	HTTPPort int
	// TLSPort is the port the validation authority connects to on
	// 127.0.0.1 for TLS-ALPN-01 (the edge's HTTPS port).
	TLSPort int
	// CertValidity is the validity of the leaf certificates the CA issues,
	// rounded up to a second (0: Pebble's default, 90 days). A short one
	// tests renewal.
	CertValidity time.Duration
	// AuthzReuse is the percentage (0 to 100) of new orders for which Pebble
	// reuses an account's valid authorization of the same name instead of
	// validating again. 0, the default, validates every order.
	AuthzReuse int
	// Verbose sends Pebble's log to t.Log as it is written; otherwise it is
	// kept and written to t.Log only if the test fails.
	Verbose bool
}

// CA is a running Pebble. Start registers its Close with t.Cleanup.
type CA struct {
	directoryURL string
	dirRootPEM   []byte
	dirRoots     *x509.CertPool
	db           *db.MemoryStore
	ca           *ca.CAImpl
	srv          *http.Server
	served       chan struct{}
	dns          *dnsServer
	logs         *logWriter

	mu       sync.Mutex
	accounts map[string]bool // account IDs seen in Location headers
	closed   bool
}

// envMu serializes the construction of Pebble's parts, which read their
// switches from the environment (see pebbleEnv).
var envMu sync.Mutex

// pebbleEnv is what Pebble's validation authority and web front end read
// from the environment when they are made, and nowhere else: no random
// sleep before a validation, no rejected good nonces, validation always
// done for real, the authorization reuse asked for.
func pebbleEnv(o Options) map[string]string {
	return map[string]string{
		"PEBBLE_VA_NOSLEEP":      "1",
		"PEBBLE_VA_SLEEPTIME":    "",
		"PEBBLE_VA_ALWAYS_VALID": "",
		"PEBBLE_WFE_NONCEREJECT": "0",
		"PEBBLE_AUTHZREUSE":      strconv.Itoa(o.AuthzReuse),
	}
}

// withEnv runs f with the variables of env set ("" unsets), then restores
// them. It holds envMu, so two Starts never see each other's values.
func withEnv(env map[string]string, f func()) {
	envMu.Lock()
	defer envMu.Unlock()
	type saved struct {
		v  string
		ok bool
	}
	old := map[string]saved{}
	for k, v := range env {
		ov, ok := os.LookupEnv(k)
		old[k] = saved{ov, ok}
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	defer func() {
		for k, s := range old {
			if s.ok {
				os.Setenv(k, s.v)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	f()
}

// Start runs Pebble on 127.0.0.1 (a random port) with a DNS server of its own
// that answers every A query with 127.0.0.1 (AAAA: no answer), so Pebble's
// validation authority connects to loopback. It fails the test if anything
// does not start, and closes the CA when the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	if o.AuthzReuse < 0 || o.AuthzReuse > 100 {
		t.Fatalf("pebbletest: AuthzReuse %d is not a percentage", o.AuthzReuse)
	}
	if o.CertValidity < 0 {
		t.Fatalf("pebbletest: negative CertValidity %s", o.CertValidity)
	}
	c := &CA{accounts: map[string]bool{}, served: make(chan struct{})}
	c.logs = &logWriter{t: t, verbose: o.Verbose}
	t.Cleanup(func() {
		c.Close()
		c.logs.finish()
	})
	logger := log.New(c.logs, "pebble ", log.Lmicroseconds)

	dnsSrv, err := startDNS()
	if err != nil {
		t.Fatalf("pebbletest: DNS server: %v", err)
	}
	c.dns = dnsSrv

	certPEM, keyPEM, rootPEM, err := serverCert()
	if err != nil {
		t.Fatalf("pebbletest: HTTPS certificate: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("pebbletest: HTTPS certificate: %v", err)
	}
	c.dirRootPEM = rootPEM
	c.dirRoots = x509.NewCertPool()
	c.dirRoots.AppendCertsFromPEM(rootPEM)

	validity := uint64(0) // Pebble's default
	if o.CertValidity > 0 {
		// Pebble's NotAfter is NotBefore + ValidityPeriod - 1 s.
		validity = uint64((o.CertValidity+time.Second-1)/time.Second) + 1
	}
	profiles := map[string]ca.Profile{
		"default": {Description: "pebbletest", ValidityPeriod: validity},
	}
	c.db = db.NewMemoryStore()
	var front wfe.WebFrontEndImpl
	withEnv(pebbleEnv(o), func() {
		c.ca = ca.New(logger, c.db, "", "ecdsa", 0, 1, profiles)
		v := va.New(logger, o.HTTPPort, o.TLSPort, false, c.dns.addr, c.db)
		front = wfe.New(logger, c.db, v, c.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pebbletest: listen: %v", err)
	}
	c.directoryURL = "https://" + ln.Addr().String() + wfe.DirectoryPath
	c.srv = &http.Server{
		Handler:           c.trackAccounts(front.Handler()),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          logger,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(c.served)
		if err := c.srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			logger.Printf("pebbletest: serve: %v", err)
		}
	}()
	return c
}

// acctPath is the path of an account's URL in Pebble's web front end.
const acctPath = "/my-account/"

// trackAccounts notes the account of every response that names one (a new
// account, an existing one looked up, a key rollover conflict), so Orders
// and Issued can ask Pebble's database for each account's orders.
func (c *CA) trackAccounts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		loc := w.Header().Get("Location")
		if i := strings.Index(loc, acctPath); i >= 0 {
			id := loc[i+len(acctPath):]
			c.mu.Lock()
			c.accounts[id] = true
			c.mu.Unlock()
		}
	})
}

// DirectoryURL is the ACME directory: https://127.0.0.1:PORT/dir.
func (c *CA) DirectoryURL() string { return c.directoryURL }

// DirectoryRootsPEM is the PEM of the throwaway CA that signed the
// directory's HTTPS certificate: what an ACME client must trust to talk to
// this CA (CertMagic's ACMEIssuer.TrustedRoots).
func (c *CA) DirectoryRootsPEM() []byte { return bytes.Clone(c.dirRootPEM) }

// HTTPClient returns an HTTP client that trusts DirectoryRootsPEM, for an
// ACME client's requests to the directory.
func (c *CA) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: c.dirRoots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
		Timeout: 30 * time.Second,
	}
}

// IssuerRootsPEM is the PEM of Pebble's issuing root certificate(s), made
// anew at every Start: what verifies the certificates it issues (the chain
// it returns with a leaf holds the intermediate).
func (c *CA) IssuerRootsPEM() []byte {
	var b bytes.Buffer
	for i := range c.ca.GetNumberOfRootCerts() {
		b.Write(c.ca.GetRootCert(i).PEM())
	}
	return b.Bytes()
}

// Orders is how many orders the CA's accounts have made, whatever their
// state.
func (c *CA) Orders() int {
	n, _ := c.count()
	return n
}

// Issued is how many certificates the CA has issued (finalized orders).
func (c *CA) Issued() int {
	_, n := c.count()
	return n
}

// count reads the orders of every account seen from Pebble's database.
func (c *CA) count() (orders, issued int) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.accounts))
	for id := range c.accounts {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		for _, o := range c.db.GetOrdersByAccountID(id) {
			orders++
			o.RLock()
			if o.CertificateObject != nil {
				issued++
			}
			o.RUnlock()
		}
	}
	return orders, issued
}

// Close stops the directory's server and the DNS server. It is safe to call
// more than once; Start's cleanup calls it.
func (c *CA) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	if c.srv != nil {
		c.srv.Close()
		<-c.served
	}
	if c.dns != nil {
		c.dns.close()
	}
}

// maxKept bounds the log lines kept for a failure: the older half goes when
// it is reached.
const maxKept = 4000

// logWriter takes Pebble's log lines to t.Log: as they come when verbose,
// otherwise kept until the test ends and written only if it failed. After
// finish, lines (from Pebble's goroutines that outlive the test) are dropped.
type logWriter struct {
	t       testing.TB
	verbose bool

	mu   sync.Mutex
	kept []string
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done:
	case w.verbose:
		w.t.Log(line)
	default:
		if len(w.kept) >= maxKept {
			w.kept = append(w.kept[:0], w.kept[maxKept/2:]...)
		}
		w.kept = append(w.kept, line)
	}
	return len(p), nil
}

// finish writes the kept lines if the test failed and stops the writer.
func (w *logWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t.Failed() && len(w.kept) > 0 {
		w.t.Log(fmt.Sprintf("pebble's log:\n%s", strings.Join(w.kept, "\n")))
	}
	w.kept = nil
	w.done = true
}
