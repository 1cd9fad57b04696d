package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NodeLifetime is how long a node certificate is valid; agents renew it
// when a third of it is left.
const NodeLifetime = 30 * 24 * time.Hour

// A join token reads CCTKN-1-<CA digest>-<secret> (the Docker Swarm model):
// the digest lets a new host pin the cluster CA before it trusts anything,
// the secret proves it may join.
const joinPrefix = "CCTKN-1-"

var (
	// ErrMalformedJoinToken is a string that is not a join token.
	ErrMalformedJoinToken = errors.New("malformed join token: expected CCTKN-1-<CA digest>-<secret> (see `ccctl token create`)")
	joinB32               = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// JoinToken is a parsed join token.
type JoinToken struct {
	CADigest string // hex SHA-256 of the CA certificate
	Secret   string
}

// NewJoinToken makes a join token for the cluster whose CA has caDigest.
func NewJoinToken(caDigest string) (JoinToken, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CADigest: caDigest, Secret: strings.ToLower(joinB32.EncodeToString(buf))}, nil
}

// String is the token as users pass it.
func (t JoinToken) String() string { return joinPrefix + t.CADigest + "-" + t.Secret }

// ID is the token's public id: derived from the secret, so the server finds
// the stored record without keeping the secret.
func (t JoinToken) ID() string {
	sum := sha256.Sum256([]byte("cc-join-id:" + t.Secret))
	return hex.EncodeToString(sum[:8])
}

// SecretHash is the stored form of the secret.
func (t JoinToken) SecretHash() []byte {
	sum := sha256.Sum256([]byte(t.Secret))
	return sum[:]
}

// ParseJoinToken parses a join token.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, joinPrefix) {
		return JoinToken{}, ErrMalformedJoinToken
	}
	rest := s[len(joinPrefix):]
	i := strings.IndexByte(rest, '-')
	if i != 64 {
		return JoinToken{}, ErrMalformedJoinToken
	}
	t := JoinToken{CADigest: rest[:i], Secret: rest[i+1:]}
	if _, err := hex.DecodeString(t.CADigest); err != nil || strings.ToLower(t.CADigest) != t.CADigest {
		return JoinToken{}, ErrMalformedJoinToken
	}
	if len(t.Secret) < 16 || len(t.Secret) > 128 {
		return JoinToken{}, ErrMalformedJoinToken
	}
	for _, c := range t.Secret {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return JoinToken{}, ErrMalformedJoinToken
		}
	}
	return t, nil
}

// IssueNode signs a node certificate for a certificate request: the node id
// as common name, RoleAgent as organizational unit, client authentication
// only. The request's signature is checked; its subject is ignored.
func (ca *CA) IssueNode(csrDER []byte, nodeID string, now time.Time, lifetime time.Duration) ([]byte, error) {
	csr, err := ca.checkedCSR(csrDER)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         nodeID,
			OrganizationalUnit: []string{RoleAgent},
			Organization:       ca.Cert.Subject.Organization,
		},
		NotBefore:   now.Add(-5 * time.Minute),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate: %w", err)
	}
	return encodeCert(der), nil
}

// Role returns the role of a certificate (its organizational unit).
func Role(cert *x509.Certificate) string {
	for _, ou := range cert.Subject.OrganizationalUnit {
		if ou == RoleServer || ou == RoleAgent {
			return ou
		}
	}
	return ""
}

// IssueServerFromCSR signs a server certificate for a joining server's
// certificate request: the server id as common name, RoleServer, server and
// client authentication, and the given DNS names and IPs.
func (ca *CA) IssueServerFromCSR(csrDER []byte, serverID string, hosts []string, now time.Time) ([]byte, error) {
	csr, err := ca.checkedCSR(csrDER)
	if err != nil {
		return nil, err
	}
	tmpl, err := serverTemplate(ca, serverID, hosts, now, ServerLifetime)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	return encodeCert(der), nil
}

// ErrCAMismatch is a server whose CA is not the one a join token pins.
var ErrCAMismatch = errors.New("CA digest mismatch")

// PinnedTLS is the TLS configuration of a join: it trusts nothing but a
// server certificate chained to the CA whose digest the token carries (the
// server sends its CA in its chain). addr only serves the error message. It
// offers ALPNCluster, so that a server with an operator's certificate for the
// joined name still presents its cluster certificate.
func PinnedTLS(caDigest, addr string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2", ALPNCluster},
		InsecureSkipVerify: true, // checked against the pinned CA below
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if c.IsCA && Digest(c) == caDigest {
					pool := x509.NewCertPool()
					pool.AddCert(c)
					return VerifyServer(cs, pool)
				}
			}
			return fmt.Errorf("%w: the CA of the server at %s does not match the digest in the join token; check --join and --token (a token made before the cluster CA was last retired names the old CA: create a new one)", ErrCAMismatch, addr)
		},
	}
}

// checkedCSR parses a certificate request and checks its signature, on a CA
// that can sign.
func (ca *CA) checkedCSR(der []byte) (*x509.CertificateRequest, error) {
	if ca.Key == nil {
		return nil, errors.New("the CA key is not available on this server")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return csr, nil
}

// NewKeyAndCSR makes a P-256 key and a certificate request for it with
// commonName: what an agent or a server sends to join or renew.
func NewKeyAndCSR(commonName string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := CSRFor(commonName, key)
	return key, csr, err
}

// CSRFor makes a certificate request with commonName for an existing key.
func CSRFor(commonName string, key crypto.Signer) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}, key)
}

// CheckJoinCA checks that the CA a server answered a join with is the one
// the join token pins.
func (t JoinToken) CheckJoinCA(caPEM []byte) error {
	ca, err := ParseCertPEM(caPEM)
	if err != nil || Digest(ca) != t.CADigest {
		return fmt.Errorf("%w: the server returned a CA that does not match the join token", ErrCAMismatch)
	}
	return nil
}
