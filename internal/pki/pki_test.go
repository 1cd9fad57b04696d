package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestServerCertificateVerifiesAgainstCA(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("c-test", now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	id, err := again.IssueServer("s-1", []string{"127.0.0.1", "localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool, err := Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "evil.example"}); err == nil {
		t.Error("certificate verified for a name it does not carry")
	}
	if leaf.Subject.CommonName != "s-1" || leaf.Subject.OrganizationalUnit[0] != RoleServer {
		t.Errorf("subject = %v", leaf.Subject)
	}
	other, err := NewCA("c-other", now)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(other.Cert) == Digest(ca.Cert) {
		t.Error("two CAs share a digest")
	}
	otherPool, _ := Pool(other.CertPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: otherPool, DNSName: "localhost"}); err == nil {
		t.Error("certificate verified against another cluster's CA")
	}
}
