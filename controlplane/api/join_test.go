package api_test

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// lastIndex is the index of the last entry in the server's raft log, read
// through PeerService with the server's own certificate.
func lastIndex(t *testing.T, srv *testcluster.Server) uint64 {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(srv.Config.DataDir, "tls", "server.crt"), filepath.Join(srv.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ccv1.NewPeerServiceClient(certConn(t, srv, cert)).PeerStatus(ctxT(t), &ccv1.PeerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st.LastIndex
}

// connFrom dials the API from a local address of the loopback network, so
// that the server sees the call come from that address.
func connFrom(t *testing.T, srv *testcluster.Server, local string) *grpc.ClientConn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(srv.TLSConfig())),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func joinReq(t *testing.T, token, name string) *ccv1.JoinRequest {
	t.Helper()
	_, csr, err := pki.NewKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	return &ccv1.JoinRequest{Token: token, CsrDer: csr, Name: name}
}

// A join with a token this cluster would refuse (unknown, of another role,
// revoked, used up) is refused before anything is signed or proposed: no
// raft entry is written, and a request whose CSR could not even be signed
// is refused for its token.
func TestJoinChecksTokenBeforeSigningOrProposing(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) { c.JoinLimit.Burst = 1000 })
	cl := srv.Client()
	ca, err := pki.ParseCertPEM(srv.CACert)
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := pki.NewJoinToken(pki.Digest(ca))
	if err != nil {
		t.Fatal(err)
	}
	serverTok := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_SERVER}).Secret
	agentTok := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT})
	revoked := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT})
	if _, err := cl.Tokens.RevokeToken(ctxT(t), &ccv1.RevokeTokenRequest{Id: revoked.Token.Id}); err != nil {
		t.Fatal(err)
	}
	once := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: 1})
	agents := ccv1.NewAgentServiceClient(srv.Conn("-"))
	peers := ccv1.NewPeerServiceClient(srv.Conn("-"))
	if _, err := agents.Join(ctxT(t), joinReq(t, once.Secret, "first")); err != nil {
		t.Fatalf("first use of a one-use token: %v", err)
	}

	before := lastIndex(t, srv)
	for name, tc := range map[string]struct {
		token, why string
		server     bool
	}{
		"unknown":        {unknown.String(), "unknown token", false},
		"server token":   {serverTok, "not a agent join token", false},
		"revoked":        {revoked.Secret, "revoked", false},
		"used up":        {once.Secret, "already used 1 times", false},
		"server unknown": {unknown.String(), "unknown token", true},
		"agent token":    {agentTok.Secret, "not a server join token", true},
	} {
		if tc.server {
			_, csr, err := pki.NewKeyAndCSR("s2")
			if err != nil {
				t.Fatal(err)
			}
			req := &ccv1.JoinServerRequest{Token: tc.token, CsrDer: csr, ServerId: "s-" + name, Name: "s2", RaftAddress: "127.0.0.1:1", ApiAddress: "127.0.0.1:2"}
			_, err = peers.JoinServer(ctxT(t), req)
			wantCode(t, err, codes.Unauthenticated, tc.why)
			req.CsrDer = []byte("not a CSR")
			_, err = peers.JoinServer(ctxT(t), req)
			wantCode(t, err, codes.Unauthenticated, tc.why)
			continue
		}
		_, err := agents.Join(ctxT(t), joinReq(t, tc.token, "n-bad"))
		wantCode(t, err, codes.Unauthenticated, tc.why)
		// A CSR that cannot be signed: refused for the token, so the
		// token was checked before any signing.
		_, err = agents.Join(ctxT(t), &ccv1.JoinRequest{Token: tc.token, CsrDer: []byte("not a CSR"), Name: "n-bad"})
		wantCode(t, err, codes.Unauthenticated, tc.why)
	}
	if after := lastIndex(t, srv); after != before {
		t.Fatalf("refused joins wrote %d raft entries", after-before)
	}
	// The good token still joins.
	if _, err := agents.Join(ctxT(t), joinReq(t, agentTok.Secret, "n-good")); err != nil {
		t.Fatalf("join with a good token: %v", err)
	}
}

// Failed joins are throttled per source address: past the burst, an
// address is refused with ResourceExhausted and the wait, even with a good
// token; other addresses join, and successful joins cost nothing.
func TestJoinRateLimitedPerAddress(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) {
		// About one attempt a month: the bucket does not refill during
		// the test.
		c.JoinLimit = config.JoinLimitConfig{PerMinute: 0.00002, Burst: 3}
	})
	cl := srv.Client()
	good := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT}).Secret
	serverTok := createToken(t, cl, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_SERVER}).Secret
	bad := "CCTKN-1-nonsense"

	// Successful joins from one address are not counted.
	other := ccv1.NewAgentServiceClient(connFrom(t, srv, "127.0.0.3"))
	for _, n := range []string{"g1", "g2", "g3", "g4", "g5"} {
		if _, err := other.Join(ctxT(t), joinReq(t, good, n)); err != nil {
			t.Fatalf("good join %s: %v", n, err)
		}
	}

	spam := connFrom(t, srv, "127.0.0.2")
	agents := ccv1.NewAgentServiceClient(spam)
	for i := 0; i < 3; i++ {
		_, err := agents.Join(ctxT(t), joinReq(t, bad, "spam"))
		wantCode(t, err, codes.Unauthenticated, "")
	}
	_, err := agents.Join(ctxT(t), joinReq(t, bad, "spam"))
	wantCode(t, err, codes.ResourceExhausted, "too many failed join attempts from 127.0.0.2: retry in")
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Fatalf("no retry delay in %v", status.Convert(err).Details())
	}
	// The address is throttled whatever it sends, server joins too.
	_, err = agents.Join(ctxT(t), joinReq(t, good, "late"))
	wantCode(t, err, codes.ResourceExhausted, "")
	_, csr, err := pki.NewKeyAndCSR("s2")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ccv1.NewPeerServiceClient(spam).JoinServer(ctxT(t), &ccv1.JoinServerRequest{Token: serverTok, CsrDer: csr, ServerId: "s2", Name: "s2", RaftAddress: "127.0.0.1:1", ApiAddress: "127.0.0.1:2"})
	wantCode(t, err, codes.ResourceExhausted, "")
	// Another address joins.
	if _, err := other.Join(ctxT(t), joinReq(t, good, "g6")); err != nil {
		t.Fatalf("good join from another address: %v", err)
	}
}
