package pki

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcerts"
)

func TestLoadOperatorCert(t *testing.T) {
	ca := testcerts.NewCA(t)
	good := ca.IssueNow(t, "api.localhost", "*.apps.localhost")
	other := ca.IssueNow(t, "api.localhost")
	now := time.Now()
	expired := ca.Issue(t, []string{"api.localhost"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	future := ca.Issue(t, []string{"api.localhost"}, now.Add(24*time.Hour), now.Add(48*time.Hour))

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodCert, goodKey := write("good.crt", good.CertPEM), write("good.key", good.KeyPEM)
	otherKey := write("other.key", other.KeyPEM)

	op, err := LoadOperatorCert(goodCert, goodKey, now)
	if err != nil {
		t.Fatalf("good pair: %v", err)
	}
	for host, want := range map[string]bool{"api.localhost": true, "x.apps.localhost": true, "API.LOCALHOST": true,
		"a.b.apps.localhost": false, "localhost": false, "": false, "127.0.0.1": false} {
		if got := op.Covers(host); got != want {
			t.Errorf("Covers(%q) = %v, want %v", host, got, want)
		}
	}

	tests := []struct {
		name, cert, key string
		keyFile         bool
		want            string
	}{
		{"mismatched key", goodCert, otherKey, true, "does not match the certificate in " + goodCert},
		{"missing cert", filepath.Join(dir, "nope.crt"), goodKey, false, "does not exist"},
		{"missing key", goodCert, filepath.Join(dir, "nope.key"), true, "does not exist"},
		{"key as cert", goodKey, goodKey, false, "holds a private key"},
		{"cert as key", goodCert, goodCert, true, "holds no PEM private key"},
		{"not pem", write("junk.crt", []byte("hello")), goodKey, false, "holds no PEM certificate"},
		{"expired", write("expired.crt", expired.CertPEM), write("expired.key", expired.KeyPEM), false, "expired on"},
		{"not yet valid", write("future.crt", future.CertPEM), write("future.key", future.KeyPEM), false, "not valid until"},
		{"ca cert", write("ca.crt", ca.CertPEM), goodKey, true, "does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadOperatorCert(tc.cert, tc.key, now)
			var fe *CertFileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *CertFileError", err, err)
			}
			wantPath := tc.cert
			if tc.keyFile {
				wantPath = tc.key
			}
			if fe.KeyFile != tc.keyFile || fe.Path != wantPath || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (key file %v), want one about %s containing %q", err, fe.KeyFile, wantPath, tc.want)
			}
			if strings.Contains(err.Error(), string(other.KeyPEM[40:60])) || strings.Contains(err.Error(), string(good.KeyPEM[40:60])) {
				t.Errorf("the error shows key material: %v", err)
			}
		})
	}
}

func TestOfferClusterALPN(t *testing.T) {
	orig := &tls.Config{ServerName: "x"}
	c := OfferClusterALPN(orig)
	if len(orig.NextProtos) != 0 {
		t.Error("OfferClusterALPN changed its argument")
	}
	if got := strings.Join(c.NextProtos, ","); got != "h2,"+ALPNCluster {
		t.Errorf("NextProtos = %s", got)
	}
	if !OffersClusterALPN(&tls.ClientHelloInfo{SupportedProtos: c.NextProtos}) || OffersClusterALPN(&tls.ClientHelloInfo{SupportedProtos: []string{"h2"}}) {
		t.Error("OffersClusterALPN is wrong")
	}
}
