package edge

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ACME challenge types the edge answers.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	// ALPNACME is the ALPN protocol of TLS-ALPN-01 (RFC 8737).
	ALPNACME = "acme-tls/1"
	// acmePath is where HTTP-01 tokens are asked for (RFC 8555 §8.3).
	acmePath = "/.well-known/acme-challenge/"
)

// certEntry is one parsed certificate. It lives as long as its name keeps
// the same chain and key: its OCSP staple is refreshed in place, and a
// handshake takes whatever cert holds at that moment.
type certEntry struct {
	name   string
	chain  []byte // as given, to see whether an update changed it
	key    []byte
	cert   atomic.Pointer[tls.Certificate]
	leaf   *x509.Certificate
	issuer *x509.Certificate // nil when the chain has only the leaf
	stop   func()            // ends its OCSP stapler; nil: none runs
}

// certTable is what handshakes look certificates and challenges up in;
// Update swaps in a new one, so a change applies to the next handshake
// and never to a connection already open.
type certTable struct {
	byName   map[string]*certEntry
	exact    map[string]*certEntry // SAN "a.example.com"
	wild     map[string]*certEntry // SAN "*.example.com", keyed "example.com"
	explicit map[string]string     // host of a TLS route or site (exact or "*.x") -> cert it names
	def      *certEntry            // EdgeTLSSettings.default_cert
	alpn     map[string]*tls.Certificate
	http01   map[string]string // host "\x00" token -> key authorization
}

// lookup picks the certificate for a handshake's server name: the one a
// route or site names for that host (exact host, then its one-label
// wildcard), else a certificate whose SAN is the name, else one with the
// name's one-label wildcard SAN, else the default; nil when none.
func (t *certTable) lookup(name string) *certEntry {
	name = normalHost(name)
	parent := ""
	if i := strings.IndexByte(name, '.'); i > 0 {
		parent = name[i+1:]
	}
	if name != "" {
		if e := t.byName[t.explicit[name]]; e != nil {
			return e
		}
		if parent != "" {
			if e := t.byName[t.explicit["*."+parent]]; e != nil {
				return e
			}
		}
		if e := t.exact[name]; e != nil {
			return e
		}
		if e := t.wild[parent]; parent != "" && e != nil {
			return e
		}
	}
	return t.def
}

// normalHost lowercases a host and drops a trailing dot and a port.
func normalHost(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// tlsPolicy is what a route's or site's tls options make of a request.
type tlsPolicy struct {
	on       bool   // a TLS route: served on HTTPS
	redirect bool   // plain HTTP gets 308 to HTTPS
	hsts     string // Strict-Transport-Security value, "" for none
}

func newTLSPolicy(o *ccv1.EdgeTLSOptions) tlsPolicy {
	if c := o.GetCert(); c == "" || c == "off" {
		return tlsPolicy{}
	}
	p := tlsPolicy{on: true, redirect: !o.GetNoRedirect()}
	if n := o.GetHstsMaxAgeSeconds(); n > 0 {
		p.hsts = "max-age=" + strconv.FormatUint(uint64(n), 10)
		if o.GetHstsIncludeSubdomains() {
			p.hsts += "; includeSubDomains"
		}
	}
	return p
}

// namedCert is the certificate a route's or site's tls options name
// explicitly ("" for none, off or auto).
func namedCert(o *ccv1.EdgeTLSOptions) string {
	switch c := o.GetCert(); c {
	case "", "off", "auto":
		return ""
	default:
		return c
	}
}

// modernCiphers are the TLS 1.2 suites the edge accepts: ECDHE with
// AES-GCM or ChaCha20-Poly1305 (TLS 1.3 suites are not configurable).
var modernCiphers = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsConfig is the HTTPS listener's configuration: certificates come
// from the current certTable at each handshake.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       modernCiphers,
		NextProtos:         []string{"h2", "http/1.1"},
		GetCertificate:     s.getCertificate,
		GetConfigForClient: s.getConfigForClient,
		// Called once a handshake has all it needs: counted as done (a
		// failed one is counted when its connection closes, connState).
		VerifyConnection: func(tls.ConnectionState) error {
			s.opts.Metrics.TLSHandshake(true)
			return nil
		},
	}
}

// getCertificate serves a handshake from the current table.
func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if e := s.certs.Load().lookup(hello.ServerName); e != nil {
		return e.cert.Load(), nil
	}
	if hello.ServerName == "" {
		return nil, fmt.Errorf("edge: the client sent no server name (SNI) and no default certificate is set")
	}
	return nil, fmt.Errorf("edge: no certificate for %q: no route or site names one, none covers the name, and no default certificate is set", hello.ServerName)
}

// getConfigForClient answers a TLS-ALPN-01 validation: a hello offering
// only acme-tls/1 gets the pending challenge's certificate for its name,
// and the connection ends after the handshake (net/http closes a
// connection whose negotiated protocol it has no handler for).
func (s *Server) getConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != ALPNACME {
		return nil, nil
	}
	c := s.certs.Load().alpn[normalHost(hello.ServerName)]
	if c == nil {
		return nil, fmt.Errorf("edge: no pending tls-alpn-01 challenge for %q", hello.ServerName)
	}
	s.opts.Metrics.ACMEChallengeAnswered(ChallengeTLSALPN01)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: modernCiphers,
		Certificates: []tls.Certificate{*c},
		NextProtos:   []string{ALPNACME},
	}, nil
}

// serveChallenge answers an HTTP-01 validation; false when r is not one
// for a pending challenge.
func (s *Server) serveChallenge(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.URL.Path, acmePath)
	if !ok || token == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	t := s.certs.Load()
	if len(t.http01) == 0 {
		return false
	}
	ka, ok := t.http01[normalHost(r.Host)+"\x00"+token]
	if !ok {
		return false
	}
	s.opts.Metrics.ACMEChallengeAnswered(ChallengeHTTP01)
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(ka)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte(ka))
	}
	return true
}

// redirectHTTPS answers a plain HTTP request for a TLS route with 308 to
// the same host, path and query over HTTPS.
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := normalHost(r.Host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := s.httpsPort; p != 443 && p != 0 {
		host += ":" + strconv.Itoa(p)
	}
	loc := "https://" + host + r.URL.RequestURI()
	w.Header().Set("Location", loc)
	plain(w, http.StatusPermanentRedirect, "this site is served over HTTPS: "+loc)
}

// buildCerts makes the certificate table of cfg. Certificates whose chain
// and key did not change keep their entry (and OCSP staple); a new or
// changed one is parsed once here, and one that does not parse is logged
// by name and left out. It returns the table and the entries no longer
// used, whose staplers the caller stops. Called with s.mu held.
func (s *Server) buildCerts(cfg Config) (*certTable, []*certEntry) {
	t := &certTable{
		byName:   map[string]*certEntry{},
		exact:    map[string]*certEntry{},
		wild:     map[string]*certEntry{},
		explicit: map[string]string{},
		alpn:     map[string]*tls.Certificate{},
		http01:   map[string]string{},
	}
	for _, ec := range cfg.Certs {
		if ec == nil || ec.GetName() == "" || t.byName[ec.GetName()] != nil {
			continue
		}
		e := s.certEntries[ec.GetName()]
		if e == nil || !bytes.Equal(e.chain, ec.GetChainPem()) || !bytes.Equal(e.key, ec.GetKeyPem()) {
			var err error
			if e, err = parseCert(ec); err != nil {
				s.log.Warn("edge: certificate unusable; skipped", "cert", ec.GetName(), "err", err)
				continue
			}
			s.startStapler(e)
		}
		t.byName[e.name] = e
	}
	var retired []*certEntry
	for name, e := range s.certEntries {
		if t.byName[name] != e {
			retired = append(retired, e)
		}
	}
	s.certEntries = t.byName

	// SAN index; when two certificates cover a name, the one valid longer.
	names := make([]string, 0, len(t.byName))
	for name := range t.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	better := func(cur, e *certEntry) bool { return cur == nil || e.leaf.NotAfter.After(cur.leaf.NotAfter) }
	for _, name := range names {
		e := t.byName[name]
		for _, san := range e.leaf.DNSNames {
			san = strings.ToLower(san)
			if parent, ok := strings.CutPrefix(san, "*."); ok {
				if better(t.wild[parent], e) {
					t.wild[parent] = e
				}
			} else if better(t.exact[san], e) {
				t.exact[san] = e
			}
		}
	}
	if d := cfg.TLS.GetDefaultCert(); d != "" {
		if t.def = t.byName[d]; t.def == nil {
			s.log.Warn("edge: the default certificate is not here (or unusable); handshakes no certificate covers fail", "cert", d)
		}
	}
	name := func(hosts []string, o *ccv1.EdgeTLSOptions) {
		if c := namedCert(o); c != "" {
			for _, h := range hosts {
				h = strings.ToLower(h)
				if _, ok := t.explicit[h]; !ok {
					t.explicit[h] = c
				}
			}
		}
	}
	for _, r := range cfg.Routes {
		name(r.GetSpec().GetHosts(), r.GetSpec().GetTls())
	}
	for _, st := range cfg.Sites {
		name(st.GetSpec().GetHosts(), st.GetSpec().GetTls())
	}

	for _, ch := range cfg.Challenges {
		host := normalHost(ch.GetHost())
		switch ch.GetType() {
		case ChallengeHTTP01:
			if ch.GetToken() != "" {
				t.http01[host+"\x00"+ch.GetToken()] = ch.GetKeyAuthorization()
			}
		case ChallengeTLSALPN01:
			c, err := tls.X509KeyPair(ch.GetCertPem(), ch.GetKeyPem())
			if err != nil {
				s.log.Warn("edge: tls-alpn-01 challenge certificate unusable; skipped", "host", host, "err", err)
				continue
			}
			t.alpn[host] = &c
		default:
			s.log.Warn("edge: ACME challenge of an unknown type; skipped", "type", ch.GetType(), "host", host)
		}
	}
	return t, retired
}

// parseCert parses a certificate and its key.
func parseCert(ec *ccv1.EdgeCert) (*certEntry, error) {
	c, err := tls.X509KeyPair(ec.GetChainPem(), ec.GetKeyPem())
	if err != nil {
		return nil, err // names what is wrong, never the key's content
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	e := &certEntry{name: ec.GetName(), chain: ec.GetChainPem(), key: ec.GetKeyPem(), leaf: c.Leaf}
	if len(c.Certificate) > 1 {
		if iss, err := x509.ParseCertificate(c.Certificate[1]); err == nil {
			e.issuer = iss
		}
	}
	e.cert.Store(&c)
	return e, nil
}
