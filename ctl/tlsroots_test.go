package ctl

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcerts"
	"github.com/containercodes/cc/internal/testing/testcluster"
)

// Against a server whose tls_cert_file names localhost: ccctl with the
// system roots (here the operator's test CA) verifies it by that name, ccctl
// with the pinned cluster CA keeps working by the same name, and the system
// roots do not vouch for an address the certificate does not name.
func TestSystemRootsAndPinnedCA(t *testing.T) {
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.IssueNow(t, "localhost").Write(t, t.TempDir())
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	old := systemRoots
	systemRoots = ca.Pool()
	t.Cleanup(func() { systemRoots = old })
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("CC_CONFIG", cfgPath)

	_, port, _ := net.SplitHostPort(srv.Addr())
	byName := "localhost:" + port
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(srv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if r := runCtl([]string{"--addr", byName, "--token", srv.Token, "--tls-system-roots"}, "status"); r.code != 0 {
		t.Errorf("--tls-system-roots by the certificate's name: %+v", r)
	}
	if r := runCtl([]string{"--addr", byName, "--token", srv.Token, "--ca-cert", caFile}, "status"); r.code != 0 {
		t.Errorf("--ca-cert by the operator certificate's name: %+v", r)
	}
	r := runCtl([]string{"--addr", srv.Addr(), "--token", srv.Token, "--tls-system-roots"}, "status")
	if r.code == 0 || !strings.Contains(r.stderr, "did not present a certificate the system's trusted roots vouch for") {
		t.Errorf("--tls-system-roots by IP, which the certificate does not name: %+v", r)
	}
	if r := runCtl([]string{"--addr", byName, "--token", srv.Token, "--tls-system-roots", "--ca-cert", caFile}, "status"); r.code == 0 || !strings.Contains(r.stderr, "exclude each other") {
		t.Errorf("--tls-system-roots with --ca-cert: %+v", r)
	}

	// Contexts: one with the system roots, one pinned; neither or both is
	// refused.
	if r := runCtl(nil, "context", "set", "public", "--server", byName, "--token-file", tokenFile, "--system-roots", "--use"); r.code != 0 {
		t.Fatalf("context set --system-roots: %+v", r)
	}
	if r := runCtl(nil, "context", "set", "pinned", "--server", byName, "--token-file", tokenFile, "--ca-cert-file", caFile); r.code != 0 {
		t.Fatalf("context set --ca-cert-file: %+v", r)
	}
	for _, args := range [][]string{{}, {"--system-roots", "--ca-cert-file", caFile}} {
		r := runCtl(nil, append([]string{"context", "set", "bad", "--server", byName, "--token-file", tokenFile}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "--system-roots") {
			t.Errorf("context set %v: %+v", args, r)
		}
	}
	cfg, err := LoadContexts(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Contexts["public"]; c == nil || !c.SystemRoots || c.CACert != "" {
		t.Errorf("context public = %+v", c)
	}
	if c := cfg.Contexts["pinned"]; c == nil || c.SystemRoots || c.CACert == "" {
		t.Errorf("context pinned = %+v", c)
	}
	if r := runCtl(nil, "status"); r.code != 0 {
		t.Errorf("status with the system-roots context: %+v", r)
	}
	if r := runCtl([]string{"--context", "pinned"}, "status"); r.code != 0 {
		t.Errorf("status with the pinned context: %+v", r)
	}
}
