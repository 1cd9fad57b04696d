package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// joinToken creates a join token on srv.
func joinToken(t *testing.T, cl *testcluster.Client, req *ccv1.CreateTokenRequest) *ccv1.CreateTokenResponse {
	t.Helper()
	req.Role = ccv1.Role_ROLE_AGENT
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Tokens.CreateToken(ctx, req)
	if err != nil {
		t.Fatalf("create join token: %v", err)
	}
	return r
}

// tryJoin calls identity.Join into a fresh directory and returns the
// directory with the result.
func tryJoin(t *testing.T, addr, token, name string) (string, *identity.Identity, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "identity")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := identity.Join(ctx, dir, identity.JoinOptions{
		Addr: addr, Token: token, Name: name,
		Resources: &ccv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30}, Address: "127.0.0.1", Version: "test",
	})
	return dir, id, err
}

func listNodes(t *testing.T, cl *testcluster.Client) []*ccv1.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	return r.Nodes
}

func nodeNamed(nodes []*ccv1.Node, name string) *ccv1.Node {
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// wantRefused checks that a join failed with a message holding one of words
// (case-sensitive),
// stored no identity and added no node.
func wantRefused(t *testing.T, cl *testcluster.Client, nodesBefore int, dir string, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("join succeeded; want an error mentioning one of %q", words)
	}
	found := false
	for _, w := range words {
		if strings.Contains(err.Error(), w) {
			found = true
		}
	}
	if !found {
		t.Errorf("join error %q mentions none of %q", err, words)
	}
	if _, lerr := identity.Load(dir); !errors.Is(lerr, identity.ErrNotJoined) {
		t.Errorf("a refused join left an identity in %s (Load: %v)", dir, lerr)
	}
	if n := len(listNodes(t, cl)); n != nodesBefore {
		t.Errorf("a refused join changed the node count from %d to %d", nodesBefore, n)
	}
}

func TestJoinTokens(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()

	t.Run("good token", func(t *testing.T) {
		tok := joinToken(t, cl, &ccv1.CreateTokenRequest{})
		_, id, err := tryJoin(t, srv.Addr(), tok.Secret, "good-node")
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		n := nodeNamed(listNodes(t, cl), "good-node")
		if n == nil {
			t.Fatal("the joined node is not listed")
		}
		if n.Id != id.NodeID {
			t.Errorf("listed node id %s, the agent got %s", n.Id, id.NodeID)
		}
		if n.State != ccv1.NodeState_NODE_STATE_READY {
			t.Errorf("node state %v, want READY", n.State)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		good, err := pki.ParseJoinToken(joinToken(t, cl, &ccv1.CreateTokenRequest{}).Secret)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := pki.NewJoinToken(good.CADigest) // right CA digest, another secret
		if err != nil {
			t.Fatal(err)
		}
		before := len(listNodes(t, cl))
		dir, _, err := tryJoin(t, srv.Addr(), forged.String(), "forged-node")
		wantRefused(t, cl, before, dir, err, "refused", "token")
	})

	t.Run("token of another cluster", func(t *testing.T) {
		other := testcluster.Start(t)
		tok := joinToken(t, other.Client(), &ccv1.CreateTokenRequest{})
		before := len(listNodes(t, cl))
		dir, _, err := tryJoin(t, srv.Addr(), tok.Secret, "foreign-node")
		wantRefused(t, cl, before, dir, err, "digest", "CA")
	})

	t.Run("revoked token", func(t *testing.T) {
		tok := joinToken(t, cl, &ccv1.CreateTokenRequest{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cl.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: tok.Token.Id}); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		before := len(listNodes(t, cl))
		dir, _, err := tryJoin(t, srv.Addr(), tok.Secret, "revoked-node")
		wantRefused(t, cl, before, dir, err, "revoked")
	})

	t.Run("single-use token used twice", func(t *testing.T) {
		tok := joinToken(t, cl, &ccv1.CreateTokenRequest{MaxUses: 1})
		if _, _, err := tryJoin(t, srv.Addr(), tok.Secret, "once-node"); err != nil {
			t.Fatalf("first join: %v", err)
		}
		before := len(listNodes(t, cl))
		dir, _, err := tryJoin(t, srv.Addr(), tok.Secret, "twice-node")
		wantRefused(t, cl, before, dir, err, "used")
	})

	t.Run("expired token", func(t *testing.T) {
		tok := joinToken(t, cl, &ccv1.CreateTokenRequest{Ttl: durationpb.New(time.Second)})
		if tok.Token.GetExpiresAt() == nil {
			t.Fatal("a token with a ttl has no expires_at")
		}
		exp := tok.Token.ExpiresAt.AsTime()
		if exp.Sub(time.Now()) > time.Minute {
			t.Fatalf("a 1s token expires at %v", exp)
		}
		for !time.Now().After(exp.Add(200 * time.Millisecond)) {
			time.Sleep(100 * time.Millisecond)
		}
		before := len(listNodes(t, cl))
		dir, _, err := tryJoin(t, srv.Addr(), tok.Secret, "late-node")
		wantRefused(t, cl, before, dir, err, "expired")
	})
}

// nodeConn dials the API with a node identity's mutual TLS and no token.
func nodeConn(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func renewCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func renew(conn *grpc.ClientConn, csr []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := ccv1.NewAgentServiceClient(conn).RenewCertificate(ctx, &ccv1.RenewCertificateRequest{CsrDer: csr})
	return err
}

// TestNodeCredentials: node certificates and API tokens do not stand in for
// each other, and a removed node's certificate is refused.
func TestNodeCredentials(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	// Only the certificate matters here: join without running an agent.
	_, id, err := tryJoin(t, srv.Addr(), joinToken(t, cl, &ccv1.CreateTokenRequest{MaxUses: 1}).Secret, "cred-node")
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	nodeCC := nodeConn(t, srv.Addr(), id.TLSConfig())
	csr := renewCSR(t)

	t.Run("node certificate renews", func(t *testing.T) {
		if err := renew(nodeCC, csr); err != nil {
			t.Fatalf("RenewCertificate with the node's certificate: %v", err)
		}
	})

	t.Run("node certificate cannot call the admin API", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, err := ccv1.NewNodeServiceClient(nodeCC).ListNodes(ctx, &ccv1.ListNodesRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListNodes with a node certificate and no token: %v, want Unauthenticated", err)
		}
	})

	t.Run("API token cannot act as a node", func(t *testing.T) {
		err := renew(srv.Conn(""), csr) // admin token, no client certificate
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("RenewCertificate with the admin token: %v, want Unauthenticated", err)
		}
	})

	t.Run("removed node is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cl.Nodes.RemoveNode(ctx, &ccv1.RemoveNodeRequest{Id: id.NodeID, Force: true}); err != nil {
			t.Fatalf("remove node: %v", err)
		}
		for _, n := range listNodes(t, cl) {
			if n.Id == id.NodeID || n.Name == "cred-node" {
				t.Errorf("removed node still listed: %v", n)
			}
		}
		var err error
		ok := waitFor(15*time.Second, func() bool {
			err = renew(nodeCC, csr)
			return status.Code(err) == codes.Unauthenticated
		})
		if !ok {
			t.Errorf("RenewCertificate with a removed node's certificate: %v, want Unauthenticated", err)
		}
		// A fresh connection too, not only the one opened before removal.
		if err := renew(nodeConn(t, srv.Addr(), id.TLSConfig()), csr); status.Code(err) != codes.Unauthenticated {
			t.Errorf("RenewCertificate on a new connection with a removed node's certificate: %v, want Unauthenticated", err)
		}
	})
}
