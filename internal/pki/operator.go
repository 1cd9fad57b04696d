package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ALPNCluster is the application protocol a client of the API port offers,
// beside "h2", when it verifies the server against the cluster CA (agents,
// peer servers, joins, ccctl with a pinned CA). A server with an operator's
// certificate (OperatorCert) then presents its cluster certificate whatever
// name the client asked for; the server never selects this protocol, so
// "h2" is still negotiated. The same pattern selects the ACME TLS-ALPN-01
// certificate.
const ALPNCluster = "cc-cluster-ca"

// ALPNGRPC is the application protocol a client of the API port offers,
// beside "h2", when all it calls on the connection is gRPC (agents, ccctl,
// servers calling each other): the server then serves the connection
// with gRPC's own HTTP/2 transport, which holds far less per connection
// than the HTTP server that also serves REST. Like ALPNCluster it is never
// selected; "h2" is negotiated. A client that does not offer it is served
// as before.
const ALPNGRPC = "cc-grpc-only"

// OffersGRPCOnly says whether a client hello asks for gRPC's own
// transport (see ALPNGRPC).
func OffersGRPCOnly(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, ALPNGRPC)
}

// OfferGRPCOnly returns cfg with "h2" and ALPNGRPC among its application
// protocols (a copy; cfg is not changed), for a client that makes only
// gRPC calls on its connections.
func OfferGRPCOnly(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	if !slices.Contains(c.NextProtos, "h2") {
		c.NextProtos = append([]string{"h2"}, c.NextProtos...)
	}
	if !slices.Contains(c.NextProtos, ALPNGRPC) {
		c.NextProtos = append(c.NextProtos, ALPNGRPC)
	}
	return c
}

// OfferClusterALPN returns cfg with "h2" and ALPNCluster among its
// application protocols (a copy; cfg is not changed).
func OfferClusterALPN(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	if !slices.Contains(c.NextProtos, "h2") {
		c.NextProtos = append([]string{"h2"}, c.NextProtos...)
	}
	if !slices.Contains(c.NextProtos, ALPNCluster) {
		c.NextProtos = append(c.NextProtos, ALPNCluster)
	}
	return c
}

// OffersClusterALPN says whether a client hello asks for the cluster
// certificate (see ALPNCluster).
func OffersClusterALPN(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, ALPNCluster)
}

// OperatorCert is a certificate and key an operator supplies for the API
// port (tls_cert_file and tls_key_file): issued by a public or company CA
// for the names browsers and other HTTPS clients use.
type OperatorCert struct {
	// Cert is the chain as the file holds it, with its key and Leaf set.
	Cert tls.Certificate
	// Leaf is the certificate itself, the first of the chain.
	Leaf *x509.Certificate
}

// Covers says whether the certificate is for host, one of its DNS names or
// a name its wildcard matches. An empty host (a client that sent no server
// name) is never covered.
func (c *OperatorCert) Covers(host string) bool {
	if host == "" || c == nil || c.Leaf == nil {
		return false
	}
	return c.Leaf.VerifyHostname(host) == nil
}

// CertFileError is a problem with an operator's certificate or key file.
type CertFileError struct {
	// Path is the file.
	Path string
	// KeyFile is true for the key file, false for the certificate file.
	KeyFile bool
	// Msg says what is wrong and what to do; it never holds key material.
	Msg string
}

// Error formats the error as "<path>: <msg>".
func (e *CertFileError) Error() string { return e.Path + ": " + e.Msg }

// LoadOperatorCert reads and checks an operator's certificate (PEM, the
// certificate first, then its intermediates) and its private key (PEM):
// both readable, the key the one of the certificate, the certificate valid
// at now, for server authentication, and naming at least one DNS name.
// Every error is a *CertFileError.
func LoadOperatorCert(certFile, keyFile string, now time.Time) (*OperatorCert, error) {
	certErr := func(format string, args ...any) error {
		return &CertFileError{Path: certFile, Msg: fmt.Sprintf(format, args...)}
	}
	keyErr := func(format string, args ...any) error {
		return &CertFileError{Path: keyFile, KeyFile: true, Msg: fmt.Sprintf(format, args...)}
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, certErr("cannot read the certificate: %s; check the path and that cc-controlplane may read the file", readWhy(err))
	}
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, certErr("certificate %d of the file cannot be parsed (%v); write the certificate in PEM, as your CA issued it", len(chain)+1, err)
			}
			chain = append(chain, c)
		case strings.Contains(b.Type, "PRIVATE KEY"):
			return nil, certErr("holds a private key; put only the certificate and its chain here, and the key in tls_key_file")
		}
	}
	if len(chain) == 0 {
		return nil, certErr("holds no PEM certificate (-----BEGIN CERTIFICATE-----); point tls_cert_file at the certificate with its chain (for Let's Encrypt: fullchain.pem)")
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, keyErr("cannot read the private key: %s; check the path and that cc-controlplane may read the file", readWhy(err))
	}
	if !bytes.Contains(keyPEM, []byte("PRIVATE KEY-----")) {
		return nil, keyErr("holds no PEM private key (-----BEGIN ... PRIVATE KEY-----); point tls_key_file at the certificate's key (for Let's Encrypt: privkey.pem)")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The messages of crypto/tls name the problem, never the key; still,
		// only a few words of them are passed on.
		msg := err.Error()
		switch {
		case strings.Contains(msg, "does not match"):
			return nil, keyErr("this key does not match the certificate in %s; use the key the certificate was issued for (or the certificate of this key)", certFile)
		case strings.Contains(msg, "unknown private key type") || strings.Contains(msg, "failed to parse private key"):
			return nil, keyErr("the private key cannot be parsed; write it unencrypted in PEM (PKCS#8, PKCS#1 RSA or SEC 1 EC)")
		default:
			return nil, keyErr("the key cannot be used with the certificate in %s: %s", certFile, strings.TrimPrefix(msg, "tls: "))
		}
	}
	leaf := chain[0]
	pair.Leaf = leaf
	const day = "2006-01-02 15:04 MST"
	switch {
	case now.After(leaf.NotAfter):
		return nil, certErr("the certificate expired on %s; renew it and write the new certificate and key", leaf.NotAfter.UTC().Format(day))
	case now.Before(leaf.NotBefore):
		return nil, certErr("the certificate is not valid until %s; check this machine's clock, or use a certificate valid now", leaf.NotBefore.UTC().Format(day))
	case leaf.IsCA:
		return nil, certErr("the first certificate of the file is a CA certificate; put the server's certificate first, then its chain")
	case len(leaf.DNSNames) == 0:
		return nil, certErr("the certificate names no DNS name (subject alternative name); the API presents it to clients that ask for one of its names, so issue it for the name clients use, like api.example.com")
	case len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny):
		return nil, certErr("the certificate is not for server authentication (extended key usage); issue a TLS server certificate")
	}
	return &OperatorCert{Cert: pair, Leaf: leaf}, nil
}

// readWhy is the reason a file cannot be read, without the path (which
// the message names already).
func readWhy(err error) string {
	var pe *os.PathError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "it does not exist"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	case errors.As(err, &pe):
		return pe.Err.Error()
	default:
		return err.Error()
	}
}
