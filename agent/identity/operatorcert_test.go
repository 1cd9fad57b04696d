package identity_test

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/internal/testing/testcerts"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// An agent joins and speaks mutual TLS by a name the API port's operator
// certificate covers: it asks for the cluster certificate (ALPN
// cc-cluster-ca), so the pin of its join token and its CA still hold.
func TestJoinByTheOperatorCertificatesName(t *testing.T) {
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.IssueNow(t, "localhost").Write(t, t.TempDir())
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	addr := "localhost:" + port
	id, err := identity.Join(ctx, filepath.Join(t.TempDir(), "identity"), identity.JoinOptions{
		Addr: addr, Token: tok.Secret, Name: "n1", Version: "test",
	})
	if err != nil {
		t.Fatalf("join by %s: %v", addr, err)
	}
	cfg := id.TLSConfig()
	cfg.ServerName = "localhost"
	d := &tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		t.Fatalf("the agent's mutual TLS by localhost: %v", err)
	}
	defer conn.Close()
	if got := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("negotiated %q, want h2", got)
	}
}
