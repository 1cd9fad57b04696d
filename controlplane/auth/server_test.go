package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

type serverMap map[string]*statev1.ServerRecord

func (m serverMap) Server(id string) (*statev1.ServerRecord, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return nil, errors.New("not found")
}

// A server certificate of the cluster CA for a member's id but another key
// than the one its record pins is refused on the peer API; the member's own
// key passes, and a record with no pin accepts any key.
func TestAuthenticateServerChecksPinnedKey(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("c-test", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func() *x509.Certificate {
		t.Helper()
		issued, err := ca.IssueServerFor("s-1", []string{"127.0.0.1"}, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.ParseCertPEM(issued.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctxFor := func(c *x509.Certificate) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c, ca.Cert}}}},
		})
	}
	own, forged := leaf(), leaf()
	servers := serverMap{"s-1": {Id: "s-1", RaftAddress: "127.0.0.1:1", PublicKeySha256: pki.KeyHash(own)}}
	a := NewAuthenticator(nil, nil).WithServers(servers)
	if id, err := a.AuthenticateServer(ctxFor(own)); err != nil || id != "s-1" {
		t.Errorf("own key: %q, %v", id, err)
	}
	if _, err := a.AuthenticateServer(ctxFor(forged)); !errors.Is(err, ErrKeyNotPinned) {
		t.Errorf("forged key: %v, want ErrKeyNotPinned", err)
	}
	servers["s-1"].PublicKeySha256 = nil
	if _, err := a.AuthenticateServer(ctxFor(forged)); err != nil {
		t.Errorf("record with no pin: %v", err)
	}
}
