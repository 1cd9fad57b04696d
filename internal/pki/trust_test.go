package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

// serverConn is the state of a TLS connection to a server presenting id.
func serverConn(t *testing.T, id *Identity) tls.ConnectionState {
	t.Helper()
	pair, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
}

func TestTrustRefusesRemovedServersAndOtherKeys(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("c-test", now)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id string) (*Identity, tls.ConnectionState) {
		iss, err := ca.IssueServer(id, []string{"127.0.0.1"}, now)
		if err != nil {
			t.Fatal(err)
		}
		return iss, serverConn(t, iss)
	}
	_, s1 := issue("s-1")
	_, s2 := issue("s-2")
	gone, s3 := issue("s-3")
	pin := func(cs tls.ConnectionState) []byte { return KeyHash(cs.PeerCertificates[0]) }
	trust := Trust{CAPEM: ca.CertPEM,
		Members: []ServerKey{{ID: "s-1", KeySHA256: pin(s1)}, {ID: "s-2", KeySHA256: pin(s2)}},
		Removed: []ServerKey{{ID: "s-3", KeySHA256: pin(s3)}}}
	v, err := NewVerifier(trust)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyServer(s1); err != nil {
		t.Errorf("member s-1 refused: %v", err)
	}
	if err := v.VerifyServer(s3); !errors.Is(err, ErrServerNotTrusted) || !strings.Contains(err.Error(), "removed") {
		t.Errorf("removed s-3: err = %v", err)
	}
	// The removed server signs itself a certificate with the CA key it
	// kept: under a member's id, and under a new id for its old key.
	key, err := parseKey(t, gone)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := ca.IssueServerWithKey(key, "s-1", []string{"127.0.0.1"}, now, ServerLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyServer(serverConn(t, forged)); !errors.Is(err, ErrServerNotTrusted) {
		t.Errorf("a member's id with the removed server's key: err = %v", err)
	}
	renamed, err := ca.IssueServerWithKey(key, "s-9", []string{"127.0.0.1"}, now, ServerLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyServer(serverConn(t, renamed)); !errors.Is(err, ErrServerNotTrusted) {
		t.Errorf("a new id with the removed server's key: err = %v", err)
	}
	// A server that joined since is accepted on its chain, but the record
	// is taken only from members.
	_, s4 := issue("s-4")
	if err := v.VerifyServer(s4); err != nil {
		t.Errorf("new server s-4 refused: %v", err)
	}
	if v.FromMember(s4) || !v.FromMember(s2) || v.FromMember(serverConn(t, forged)) {
		t.Error("FromMember: want only s-1 and s-2 with their keys")
	}
	// Another cluster's server is refused by the chain.
	other, _ := NewCA("c-other", now)
	o1, _ := other.IssueServer("s-1", []string{"127.0.0.1"}, now)
	if err := v.VerifyServer(serverConn(t, o1)); err == nil || errors.Is(err, ErrServerNotTrusted) {
		t.Errorf("another cluster's server: err = %v", err)
	}
}

func parseKey(t *testing.T, id *Identity) (crypto.Signer, error) {
	t.Helper()
	pair, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		return nil, err
	}
	return pair.PrivateKey.(crypto.Signer), nil
}

func TestTrustUpdateKeepsRemovedServers(t *testing.T) {
	old := Trust{CAPEM: []byte("old"), Members: []ServerKey{{ID: "s-1"}, {ID: "s-2"}}, Removed: []ServerKey{{ID: "s-0"}}}
	next := Trust{CAPEM: []byte("new"), Members: []ServerKey{{ID: "s-1"}, {ID: "s-0"}}, Removed: []ServerKey{{ID: "s-2"}}}
	got := old.Update(next)
	want := Trust{CAPEM: []byte("new"), Members: []ServerKey{{ID: "s-1"}}, Removed: []ServerKey{{ID: "s-0"}, {ID: "s-2"}}}
	if !got.Equal(want) {
		t.Errorf("Update = %+v, want %+v (a removed server stays removed; CAs and members come from the update)", got, want)
	}
	if kept := old.Update(Trust{}); string(kept.CAPEM) != "old" {
		t.Errorf("an update without CAs dropped them: %q", kept.CAPEM)
	}
}

func TestNextCAIsAnotherKeyOfTheSameCluster(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("c-test", now)
	if err != nil {
		t.Fatal(err)
	}
	next, err := NextCA(ca, now)
	if err != nil {
		t.Fatal(err)
	}
	if next.Cert.Subject.Organization[0] != "c-test" || next.Cert.Subject.CommonName == ca.Cert.Subject.CommonName || Digest(next.Cert) == Digest(ca.Cert) {
		t.Fatalf("next CA subject %v digest %s", next.Cert.Subject, Digest(next.Cert))
	}
	// Servers of either CA verify against both while both are trusted.
	v, err := NewVerifier(Trust{CAPEM: append(append([]byte{}, next.CertPEM...), ca.CertPEM...)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*CA{ca, next} {
		id, err := c.IssueServer("s-1", []string{"127.0.0.1"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyServer(serverConn(t, id)); err != nil {
			t.Errorf("server of %s refused: %v", c.Cert.Subject.CommonName, err)
		}
	}
	only, _ := NewVerifier(Trust{CAPEM: next.CertPEM})
	id, _ := ca.IssueServer("s-1", []string{"127.0.0.1"}, now)
	if err := only.VerifyServer(serverConn(t, id)); err == nil {
		t.Error("a server of the retired CA was accepted")
	}
}
