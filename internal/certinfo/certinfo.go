// Package certinfo reads a PEM certificate chain and its key: it checks
// that they belong together and are valid now, and describes the leaf
// (names, issuer, dates, fingerprint, key type) as the API shows it. Both
// the control plane (adding a certificate, recording an ACME one) and
// tests use it.
package certinfo

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Chain is a parsed chain, leaf first.
type Chain struct {
	Certs []*x509.Certificate
	// PEM is the chain as given, certificates only, normalized.
	PEM []byte
}

// Leaf is the chain's first certificate.
func (c *Chain) Leaf() *x509.Certificate { return c.Certs[0] }

// ParseChain reads the CERTIFICATE blocks of chainPEM, leaf first, and
// checks that each one is signed by the next.
func ParseChain(chainPEM []byte) (*Chain, error) {
	var out Chain
	rest := chainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, errors.New("the certificate file holds a private key: give the chain with --cert and the key with --key")
		default:
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain: %w", len(out.Certs)+1, err)
		}
		out.Certs = append(out.Certs, c)
		out.PEM = append(out.PEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})...)
	}
	if len(out.Certs) == 0 {
		return nil, errors.New("no PEM certificate found (want -----BEGIN CERTIFICATE-----, the leaf first, then its intermediates)")
	}
	for i := 0; i+1 < len(out.Certs); i++ {
		if err := out.Certs[i].CheckSignatureFrom(out.Certs[i+1]); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain is not signed by certificate %d: put the leaf first, then the certificate that issued it, and so on", i+1, i+2)
		}
	}
	if len(out.Leaf().DNSNames) == 0 {
		return nil, errors.New("the leaf certificate names no DNS host (subject alternative names): the edge picks certificates by host name")
	}
	return &out, nil
}

// Check reads a chain and its key: the key must match the leaf, and the
// leaf must be valid at now.
func Check(chainPEM, keyPEM []byte, now time.Time) (*Chain, error) {
	ch, err := ParseChain(chainPEM)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(keyPEM), "PRIVATE KEY") {
		return nil, errors.New("no PEM private key found in the key (want -----BEGIN PRIVATE KEY----- or EC/RSA PRIVATE KEY)")
	}
	if _, err := tls.X509KeyPair(ch.PEM, keyPEM); err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, errors.New("the private key does not match the leaf certificate: give the key the certificate was issued for")
		}
		return nil, fmt.Errorf("key: %w", err)
	}
	leaf := ch.Leaf()
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("the certificate expired on %s (not after); get a new one", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("the certificate is not valid before %s (not before); check the clocks or wait", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return ch, nil
}

// Describe fills the public fields of a certificate from its chain:
// hosts, issuer, subject, dates, serial, fingerprint, key type, OCSP
// server and the chain's PEM.
func Describe(ch *Chain) *ccv1.Cert {
	leaf := ch.Leaf()
	sum := sha256.Sum256(leaf.Raw)
	c := &ccv1.Cert{
		Hosts:     append([]string(nil), leaf.DNSNames...),
		Issuer:    name(leaf.Issuer.CommonName, leaf.Issuer.String()),
		Subject:   name(leaf.Subject.CommonName, leaf.Subject.String()),
		NotBefore: timestamppb.New(leaf.NotBefore),
		NotAfter:  timestamppb.New(leaf.NotAfter),
		Serial:    leaf.SerialNumber.Text(16),
		Sha256:    hex.EncodeToString(sum[:]),
		KeyType:   keyType(leaf),
		ChainPem:  string(ch.PEM),
	}
	if len(leaf.OCSPServer) > 0 {
		c.OcspServer = leaf.OCSPServer[0]
	}
	return c
}

func name(cn, full string) string {
	if cn != "" {
		return cn
	}
	return full
}

func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}
