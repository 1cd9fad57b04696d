package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestJoinTokenRoundTrip(t *testing.T) {
	ca, err := NewCA("c-join", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewJoinToken(Digest(ca.Cert))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseJoinToken(tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if got != tok || got.ID() != tok.ID() || string(got.SecretHash()) != string(tok.SecretHash()) {
		t.Errorf("round trip: %+v != %+v", got, tok)
	}
	other, _ := NewJoinToken(Digest(ca.Cert))
	if other.ID() == tok.ID() || other.Secret == tok.Secret {
		t.Error("two tokens share an id or a secret")
	}
	digest := Digest(ca.Cert)
	for _, bad := range []string{
		"", "CCTKN-1-", "CCAPI-1-" + digest + "-abcdefghijklmnopqrst",
		"CCTKN-2-" + digest + "-abcdefghijklmnopqrst",
		"CCTKN-1-" + digest[:63] + "-abcdefghijklmnopqrst",
		"CCTKN-1-" + strings.ToUpper(digest) + "-abcdefghijklmnopqrst",
		"CCTKN-1-" + digest + "-short",
		"CCTKN-1-" + digest + "-ABCDEFGHIJKLMNOPQRST",
		"CCTKN-1-" + digest + "-abcdefghijklmnopqrs1",
		"CCTKN-1-" + digest + "-" + strings.Repeat("a", 129),
	} {
		if _, err := ParseJoinToken(bad); !errors.Is(err, ErrMalformedJoinToken) {
			t.Errorf("ParseJoinToken(%q) = %v, want ErrMalformedJoinToken", bad, err)
		}
	}
}

func TestIssueNode(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("c-node", now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "asks-to-be-admin", OrganizationalUnit: []string{RoleServer}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.IssueNode(csr, "n-1", now, NodeLifetime)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The subject comes from the server, never from the request.
	if cert.Subject.CommonName != "n-1" || Role(cert) != RoleAgent {
		t.Errorf("subject %v, role %q", cert.Subject, Role(cert))
	}
	pool, _ := Pool(ca.CertPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("node certificate does not verify as a client: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a node certificate must not serve as a server certificate")
	}
	csr[len(csr)-1] ^= 0xff
	if _, err := ca.IssueNode(csr, "n-2", now, NodeLifetime); err == nil {
		t.Error("a request with a broken signature was signed")
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("CCTKN-1-" + strings.Repeat("ab", 32) + "-abcdefghijklmnopqrst")
	f.Add("CCTKN-1--")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedJoinToken) {
				t.Fatalf("error %v is not ErrMalformedJoinToken", err)
			}
			return
		}
		if tok.String() != strings.TrimSpace(s) {
			t.Fatalf("%q parsed to %q", s, tok.String())
		}
	})
}
