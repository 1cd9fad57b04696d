package server

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
)

// Files of a server's data directory.
const (
	fileServerID     = "server-id"
	fileState        = "state.db"
	dirRaft          = "raft"
	dirTLS           = "tls"
	fileCACert       = "ca.crt"
	fileServerCert   = "server.crt"
	fileServerKey    = "server.key"
	fileServerNext   = "server-next.crt"  // during a CA rotation: the new CA's certificate for server.key
	filePendingCAKey = "bootstrap-ca.key" // held only until InitCluster is applied
	FileAdminToken   = "admin.token"
)

// identity is what the server presents and trusts.
type identity struct {
	clusterID string // known before InitCluster only for a bootstrapping server
	// ca is the signing CA as loaded at start (its key only when the state
	// or a bootstrap had it); trust is what the server trusts now, which a
	// CA rotation changes (followCA).
	ca    *pki.CA
	trust atomic.Pointer[caTrust]
	// cert is the server certificate in use, with the CA in its chain and
	// Leaf set. It changes when renewed; every handshake (API and raft,
	// either side) reads it through getCertificate or getClientCertificate.
	cert atomic.Pointer[tls.Certificate]
	// next is, during a CA rotation, a certificate of the new CA for the
	// same key, presented once the old CA is retired (or once the one in
	// use is due for renewal): until then clients that know only the old
	// CA still trust the server. nil otherwise.
	next    atomic.Pointer[tls.Certificate]
	pending bool // the CA still has to be written to raft

	serverID string
	hosts    []string // the names the certificate must carry
	tlsDir   string
}

// caTrust is the set of CA certificates a server trusts: the signing one
// first, then those a rotation is retiring.
type caTrust struct {
	pem  []byte
	cas  []*x509.Certificate
	pool *x509.CertPool
}

func newCATrust(pemBundle []byte) (*caTrust, error) {
	t := &caTrust{pem: pemBundle, pool: x509.NewCertPool()}
	for rest := pemBundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trusted CA: %w", err)
		}
		t.cas = append(t.cas, c)
		t.pool.AddCert(c)
	}
	if len(t.cas) == 0 {
		return nil, errors.New("no trusted CA certificate")
	}
	return t, nil
}

// issuer is the trusted CA that signed leaf, or nil.
func (t *caTrust) issuer(leaf *x509.Certificate) *x509.Certificate {
	for _, c := range t.cas {
		if leaf.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}

// pool is the trusted CAs.
func (id *identity) pool() *x509.CertPool { return id.trust.Load().pool }

// issuerDigest is the digest of the CA that signed the newest certificate
// the server holds: next during a rotation, else the one in use.
func (id *identity) issuerDigest() string {
	leaf := id.current().Leaf
	if n := id.next.Load(); n != nil {
		leaf = n.Leaf
	}
	if c := id.trust.Load().issuer(leaf); c != nil {
		return pki.Digest(c)
	}
	return ""
}

// presentedCA is the CA of the certificate in use: the one join tokens
// name, since a joining agent finds it in the chain the server presents.
func (id *identity) presentedCA() *x509.Certificate {
	if c := id.trust.Load().issuer(id.current().Leaf); c != nil {
		return c
	}
	return id.trust.Load().cas[0]
}

// loadNext loads server-next.crt when it is for the key in use, signed by
// a trusted CA and valid at now; otherwise it removes the file.
func (id *identity) loadNext(now time.Time) {
	path := filepath.Join(id.tlsDir, fileServerNext)
	certPEM, err := os.ReadFile(path)
	if err != nil {
		return
	}
	cur := id.current()
	next, err := pairFor(certPEM, cur.PrivateKey)
	if err == nil && id.trust.Load().issuer(next.Leaf) != nil && now.Before(next.Leaf.NotAfter) {
		id.next.Store(next)
		return
	}
	_ = os.Remove(path)
}

// pairFor is a certificate for a private key already in use.
func pairFor(certPEM []byte, key crypto.PrivateKey) (*tls.Certificate, error) {
	leaf, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok || !bytes.Equal(pki.KeyHash(leaf), pki.KeyHashOf(signer.Public())) {
		return nil, errors.New("the certificate is not for the server's key")
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// issueNext signs, during a CA rotation, a certificate of ca (the new
// signing CA) for the key in use, writes it as server-next.crt and keeps it
// as next.
func (id *identity) issueNext(ca *pki.CA, now time.Time, lifetime time.Duration) error {
	cur := id.current()
	key, ok := cur.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("the server key cannot sign")
	}
	issued, err := ca.IssueServerWithKey(key, id.serverID, id.hosts, now, lifetime)
	if err != nil {
		return err
	}
	next, err := pairFor(issued.CertPEM, cur.PrivateKey)
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(id.tlsDir, fileServerNext), issued.CertPEM, 0o644); err != nil {
		return err
	}
	id.next.Store(next)
	return nil
}

// promoteNext makes next the certificate in use (the rotation's old CA is
// retired, or the certificate in use is due), or reports false when there
// is no next certificate of a trusted CA.
func (id *identity) promoteNext() (bool, error) {
	next := id.next.Load()
	if next == nil || id.trust.Load().issuer(next.Leaf) == nil {
		return false, nil
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: next.Leaf.Raw})
	if err := pki.WriteFile(filepath.Join(id.tlsDir, fileServerCert), certPEM, 0o644); err != nil {
		return false, err
	}
	if err := id.setCert(tls.Certificate{Certificate: [][]byte{next.Leaf.Raw}, PrivateKey: next.PrivateKey}); err != nil {
		return false, err
	}
	id.dropNext()
	return true, nil
}

// dropNext forgets the next certificate.
func (id *identity) dropNext() {
	id.next.Store(nil)
	_ = os.Remove(filepath.Join(id.tlsDir, fileServerNext))
}

// current is the server certificate in use.
func (id *identity) current() *tls.Certificate { return id.cert.Load() }

// setCert makes cert (a pair from the files or just issued) the one in use.
// The chain presented carries the CA that signed it.
func (id *identity) setCert(cert tls.Certificate) error {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	ca := id.trust.Load().issuer(leaf)
	if ca == nil {
		return errors.New("the server certificate is not signed by a CA this cluster trusts")
	}
	c := withCA(cert, ca)
	c.Leaf = leaf
	id.cert.Store(&c)
	return nil
}

// keyHash is the pin of the server's key (pki.KeyHash of the certificate in
// use).
func (id *identity) keyHash() []byte { return pki.KeyHash(id.current().Leaf) }

func (id *identity) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return id.current(), nil
}

func (id *identity) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return id.current(), nil
}

func randomID(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b)
}

// loadServerID returns the server's raft id, creating it on first start.
func loadServerID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, fileServerID)
	data, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if id == "" {
			return "", fmt.Errorf("%s is empty: remove it only if this data dir holds no cluster", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := randomID("s-", 6)
	return id, pki.WriteFile(path, []byte(id+"\n"), 0o600)
}

// loadIdentity finds the cluster CA (in the state machine, or pending from
// an interrupted bootstrap, or new for a bootstrap) and the server's
// certificate, issuing one when it is missing or no longer valid.
func loadIdentity(dataDir, serverID string, f *fsm.FSM, bootstrap, hasRaft bool, hosts []string, now time.Time, lifetime time.Duration) (*identity, error) {
	tlsDir := filepath.Join(dataDir, dirTLS)
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	id := &identity{serverID: serverID, hosts: hosts, tlsDir: tlsDir}
	caCertPath := filepath.Join(tlsDir, fileCACert)
	pendingKeyPath := filepath.Join(tlsDir, filePendingCAKey)

	trusted := func() []byte { return id.ca.CertPEM }
	cl, err := f.Cluster()
	switch {
	case err == nil:
		id.clusterID = cl.ClusterId
		if id.ca, err = pki.ParseCA(cl.CaCertPem, cl.CaKeyPem); err != nil {
			return nil, fmt.Errorf("cluster CA in state: %w", err)
		}
		trusted = func() []byte { return fsm.TrustedCAPEM(cl) }
		// A bootstrap interrupted after the identity reached raft still
		// has its admin token to create.
		id.pending = fileExists(pendingKeyPath)
	case !errors.Is(err, fsm.ErrNotInitialized):
		return nil, err
	case fileExists(pendingKeyPath):
		certPEM, err := os.ReadFile(caCertPath)
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(pendingKeyPath)
		if err != nil {
			return nil, err
		}
		if id.ca, err = pki.ParseCA(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("pending bootstrap CA: %w", err)
		}
		id.clusterID = id.ca.Cert.Subject.Organization[0]
		id.pending = true
	case bootstrap && !hasRaft:
		id.clusterID = randomID("c-", 8)
		if id.ca, err = pki.NewCA(id.clusterID, now); err != nil {
			return nil, err
		}
		if err := pki.WriteFile(pendingKeyPath, id.ca.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		id.pending = true
	case fileExists(caCertPath) && fileExists(filepath.Join(tlsDir, fileServerCert)):
		// A server that joined (its state arrives from the leader), or whose
		// state database is behind the log (lost, say): the CA key comes
		// with the replicated state, and until then the certificates on disk
		// identify the server.
		// ca.crt holds every trusted CA, the signing one first.
		certPEM, err := os.ReadFile(caCertPath)
		if err != nil {
			return nil, err
		}
		cert, err := pki.ParseCertPEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caCertPath, err)
		}
		id.ca = &pki.CA{Cert: cert, CertPEM: certPEM}
		id.clusterID = cert.Subject.Organization[0]
	case hasRaft:
		return nil, fmt.Errorf("data dir %s holds raft state but no cluster identity; it may be damaged: restore it from a backup", dataDir)
	default:
		return nil, fmt.Errorf("no cluster in data dir %s: start with --bootstrap to create one", dataDir)
	}
	if err := pki.WriteFile(caCertPath, trusted(), 0o644); err != nil {
		return nil, err
	}
	trust, err := newCATrust(trusted())
	if err != nil {
		return nil, err
	}
	id.trust.Store(trust)

	certPath, keyPath := filepath.Join(tlsDir, fileServerCert), filepath.Join(tlsDir, fileServerKey)
	// Without the CA key (a server whose state is not rebuilt yet) any
	// certificate still valid will do until the background renewal can
	// sign a new one.
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && (certValid(cert, trust.pool, hosts, now) || id.ca.Key == nil && certUsable(cert, trust.pool, now)) {
		if err := id.setCert(cert); err != nil {
			return nil, err
		}
		id.loadNext(now)
		return id, nil
	}
	if id.ca.Key == nil {
		return nil, fmt.Errorf("the server certificate in %s is missing or no longer valid, and the CA key is not available until the state is rebuilt: restore the data dir from a backup", tlsDir)
	}
	// An expired certificate, or one for other names, is replaced by one
	// for the same key: the key is what the server's peers pin.
	var key crypto.Signer
	if err == nil {
		key, _ = cert.PrivateKey.(crypto.Signer)
	}
	if err := id.issueKey(id.ca, key, now, lifetime); err != nil {
		return nil, err
	}
	return id, nil
}

// issue signs a new server certificate with ca for the key in use (a new
// key when there is none), writes it to the data dir and makes it the one
// in use.
func (id *identity) issue(ca *pki.CA, now time.Time, lifetime time.Duration) error {
	var key crypto.Signer
	if cur := id.current(); cur != nil {
		key, _ = cur.PrivateKey.(crypto.Signer)
	}
	return id.issueKey(ca, key, now, lifetime)
}

// issueKey is issue for a given key; nil makes a new one.
func (id *identity) issueKey(ca *pki.CA, key crypto.Signer, now time.Time, lifetime time.Duration) error {
	var issued *pki.Identity
	var err error
	if key == nil {
		issued, err = ca.IssueServerFor(id.serverID, id.hosts, now, lifetime)
	} else {
		issued, err = ca.IssueServerWithKey(key, id.serverID, id.hosts, now, lifetime)
	}
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(issued.CertPEM, issued.KeyPEM)
	if err != nil {
		return err
	}
	// Key first: a crash between the two writes leaves a pair that does
	// not load, and the next start issues a new one.
	if err := pki.WriteFile(filepath.Join(id.tlsDir, fileServerKey), issued.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(id.tlsDir, fileServerCert), issued.CertPEM, 0o644); err != nil {
		return err
	}
	return id.setCert(cert)
}

// withCA appends the CA certificate to the chain the server presents, so that
// a joining agent can check it against the CA digest in its join token before
// it trusts anything.
func withCA(cert tls.Certificate, ca *x509.Certificate) tls.Certificate {
	cert.Certificate = append(cert.Certificate[:1:1], ca.Raw)
	return cert
}

// certValid: signed by the CA, not yet due for renewal (pki.RenewAt), and
// naming every host the server answers on.
func certValid(cert tls.Certificate, pool *x509.CertPool, hosts []string, now time.Time) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || !now.Before(pki.RenewAt(leaf)) {
		return false
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h, CurrentTime: now}); err != nil {
			return false
		}
	}
	return true
}

// certUsable: signed by the CA and not expired.
func certUsable(cert tls.Certificate, pool *x509.CertPool, now time.Time) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// serverHosts are the names the server certificate carries.
func serverHosts(apiAddr, raftAdvertise string, extra []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		if h == "" || seen[h] {
			return
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			return
		}
		seen[h] = true
		out = append(out, h)
	}
	add("localhost")
	add("127.0.0.1")
	add("::1")
	if hn, err := os.Hostname(); err == nil {
		add(hn)
	}
	for _, a := range []string{apiAddr, raftAdvertise} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			add(h)
		}
	}
	for _, h := range extra {
		add(h)
	}
	return out
}

// apiTLS is the API listener's configuration: the certificate certs choose
// for each handshake (the operator's or the server's), and client
// certificates (agents, servers) verified when given.
func (id *identity) apiTLS(certs *apiCerts) *tls.Config {
	return id.withClientCAs(&tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.getCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		NextProtos:     []string{"h2", "http/1.1"},
	})
}

// withClientCAs makes base check client certificates against the CAs
// trusted at each handshake, which a CA rotation changes.
func (id *identity) withClientCAs(base *tls.Config) *tls.Config {
	out := base.Clone()
	out.ClientCAs = id.pool()
	out.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = id.pool()
		return c, nil
	}
	return out
}

// raftServerTLS and raftClientTLS make the raft transport mutual TLS between
// holders of server certificates of this cluster.
func (id *identity) raftServerTLS() *tls.Config {
	return id.withClientCAs(&tls.Config{
		MinVersion:       tls.VersionTLS12,
		GetCertificate:   id.getCertificate,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: requireRole(pki.RoleServer),
	})
}

func (id *identity) raftClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: id.getClientCertificate,
		// Peers are known by raft address, not by name: the chain (to a CA
		// trusted at the handshake) and the role are checked in
		// VerifyConnection instead of the host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return pki.VerifyServer(cs, id.pool())
		},
	}
}

func requireRole(role string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		for _, ou := range cs.PeerCertificates[0].Subject.OrganizationalUnit {
			if ou == role {
				return nil
			}
		}
		return fmt.Errorf("peer certificate is not a %s certificate", role)
	}
}
