// Package pki creates the cluster's certificate authority, signs the
// certificates of servers and agents (nodes), and computes the CA digest that
// join tokens pin.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Roles carried in the OrganizationalUnit of a certificate's subject.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Lifetimes of the certificates this package signs. Server certificates
// are short-lived: each server renews its own in the background (see
// RenewAt), so that a removed server's certificate soon stops working and
// no certificate of a long-running cluster expires all at once.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 30 * 24 * time.Hour
)

// backdate is how far before its issue a certificate is valid, for clocks
// a little behind the signer's.
const backdate = 5 * time.Minute

// RenewAt is when a certificate is due for renewal: once two thirds of its
// lifetime (not counting the backdating for clock skew) have passed.
func RenewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if life > backdate {
		life -= backdate
	}
	return leaf.NotAfter.Add(-life / 3)
}

// CA is the cluster's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates a self-signed CA for the cluster clusterID.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	return newCA(clusterID, "Container Codes CA "+clusterID, now)
}

// NextCA creates the CA that replaces prev in a rotation: the same cluster,
// a new key, and a name that tells the two apart.
func NextCA(prev *CA, now time.Time) (*CA, error) {
	org := prev.Cert.Subject.Organization
	if len(org) == 0 {
		return nil, errors.New("the current CA names no cluster")
	}
	return newCA(org[0], fmt.Sprintf("Container Codes CA %s (%s)", org[0], now.UTC().Format("2006-01-02T15:04:05Z")), now)
}

func newCA(clusterID, commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{clusterID}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// ParseCA loads a CA from its PEM certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key pair: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	return &CA{Cert: cert, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Identity is a certificate and key signed by the cluster CA.
type Identity struct {
	CertPEM []byte
	KeyPEM  []byte
}

// IssueServer signs a certificate for a server: both server and client
// authentication (servers dial each other for raft), the server id as common
// name, RoleServer as organizational unit, and the given DNS names and IPs.
func (ca *CA) IssueServer(serverID string, hosts []string, now time.Time) (*Identity, error) {
	return ca.IssueServerFor(serverID, hosts, now, ServerLifetime)
}

// IssueServerFor is IssueServer with a certificate valid for lifetime from
// now.
func (ca *CA) IssueServerFor(serverID string, hosts []string, now time.Time, lifetime time.Duration) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	return ca.IssueServerWithKey(key, serverID, hosts, now, lifetime)
}

// IssueServerWithKey is IssueServerFor for an existing key: a renewed
// certificate keeps the server's key, which its peers pin (KeyHash).
func (ca *CA) IssueServerWithKey(key crypto.Signer, serverID string, hosts []string, now time.Time, lifetime time.Duration) (*Identity, error) {
	tmpl, err := serverTemplate(ca, serverID, hosts, now, lifetime)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &Identity{CertPEM: encodeCert(der), KeyPEM: keyPEM}, nil
}

// serverTemplate is the certificate of a server.
func serverTemplate(ca *CA, serverID string, hosts []string, now time.Time, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         serverID,
			OrganizationalUnit: []string{RoleServer},
			Organization:       ca.Cert.Subject.Organization,
		},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// Digest returns the hex SHA-256 of a certificate's DER bytes: the value a
// join token pins.
func Digest(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// KeyHash returns the SHA-256 of a certificate's SubjectPublicKeyInfo: what
// a server record pins, the same for every certificate of one key.
func KeyHash(cert *x509.Certificate) []byte {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return sum[:]
}

// KeyHashOf is KeyHash for a public key.
func KeyHashOf(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return sum[:]
}

// KeyMatches says whether cert is for the key whose KeyHash is pin.
func KeyMatches(pin []byte, cert *x509.Certificate) bool {
	return bytes.Equal(pin, KeyHash(cert))
}

// ParseCertPEM parses the first certificate of a PEM block.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Pool returns a certificate pool holding the given PEM certificates.
func Pool(certPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// WriteFile writes data to path with the given mode, atomically: a crash
// leaves the old file or the new one, never a torn one.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return serial, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// VerifyServer checks a TLS peer the way cluster members are checked: a
// chain to the cluster CA and the server role, whatever address was dialled
// (servers are reached by any of their addresses, and the CA is the
// cluster's own).
func VerifyServer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the server's certificate is not from this cluster's CA: %w", err)
	}
	if Role(leaf) != RoleServer {
		return errors.New("the server's certificate is not a server certificate")
	}
	return nil
}
