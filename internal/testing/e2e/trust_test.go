package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ctlContext writes a ccctl context for srv (its admin token and CA) into
// a fresh config file and returns the environment that uses it.
func ctlContext(t *testing.T, srv *testcluster.Server) []string {
	t.Helper()
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(tokenFile, []byte(srv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, srv.Srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(), "CC_CONFIG="+filepath.Join(dir, "ccctl", "config.json"))
	ccctl(t, env, "context", "set", "test", "--server", srv.Addr(), "--token-file", tokenFile, "--ca-cert-file", caFile, "--use")
	return env
}

// handshake dials addr with cfg and returns the handshake's error.
func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

// A server removed from the cluster still runs and still holds a
// certificate signed by the cluster CA, but agents and ccctl refuse it:
// their trust record (from the session, and refreshed by ccctl) names it.
func TestRemovedServerRefusedByAgentAndCcctl(t *testing.T) {
	skipShort(t)
	c := testcluster.StartCluster(t, 3)
	leader := c.Leader()
	victim := c.Followers()[0]
	victimID := victim.ID()
	agent := leader.StartAgent("trust-a1")
	env := ctlContext(t, leader)
	// The first command refreshes the context's trust record.
	ccctl(t, env, "server", "ls")
	if !waitFor(30*time.Second, func() bool { return len(agent.ID.Trust().Members) == 3 }) {
		t.Fatalf("the agent's trust record never listed the 3 servers: %+v", agent.ID.Trust())
	}
	// Before the removal both talk to the victim.
	if err := handshake(victim.Addr(), agent.ID.TLSConfig()); err != nil {
		t.Fatalf("agent to a member: %v", err)
	}
	ccctl(t, env, "--addr", victim.Addr(), "status")

	ccctl(t, env, "server", "rm", victimID)
	removed := func(tr pki.Trust) bool {
		return slices.ContainsFunc(tr.Removed, func(k pki.ServerKey) bool { return k.ID == victimID })
	}
	if !waitFor(30*time.Second, func() bool { return removed(agent.ID.Trust()) }) {
		t.Fatalf("the agent's trust record never named %s as removed: %+v", victimID, agent.ID.Trust())
	}
	err := handshake(victim.Addr(), agent.ID.TLSConfig())
	if err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("agent to the removed server: err = %v, want a refusal that says it was removed", err)
	}
	// It stays refused after the agent restarts (the record is on disk).
	agent.Restart()
	if err := handshake(victim.Addr(), agent.ID.TLSConfig()); err == nil {
		t.Error("agent to the removed server after a restart: accepted")
	}
	r := run(t, env, ctlBin, "--addr", victim.Addr(), "status")
	if r.code == 0 || !strings.Contains(r.stderr, "removed") {
		t.Errorf("ccctl to the removed server: want a refusal that says it was removed\n%s", r)
	}
	// The members still answer both.
	ccctl(t, env, "status")
	if err := handshake(leader.Addr(), agent.ID.TLSConfig()); err != nil {
		t.Errorf("agent to the leader: %v", err)
	}
}

// A CA rotation: a new CA signs at once, servers reissue their
// certificates and the agent renews its own; once none is left on the old
// CA it is retired, after which certificates of the old CA (a copy of a
// server's, the agent's old one) are refused, old join tokens are refused
// with what to do, and ccctl, the agent and new joins work with the new CA.
func TestCARotation(t *testing.T) {
	skipShort(t)
	c := testcluster.StartCluster(t, 3)
	leader := c.Leader()
	agent := leader.StartAgent("rot-a1")
	env := ctlContext(t, leader)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	trust := ccv1.NewTrustServiceClient(leader.Conn(""))

	// What a holder of the old CA key keeps: a server's certificate and
	// the node's, and an unused join token.
	follower := c.Followers()[0]
	oldServer, err := tls.LoadX509KeyPair(filepath.Join(follower.Config.DataDir, "tls", "server.crt"), filepath.Join(follower.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldNode, err := tls.LoadX509KeyPair(filepath.Join(agent.DataDir, "identity", "node.crt"), filepath.Join(agent.DataDir, "identity", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldCA := leader.Srv.CACertPEM()
	oldToken := joinToken(t, leader.Client(), &ccv1.CreateTokenRequest{MaxUses: 1})

	r := ccctl(t, env, "ca", "rotate")
	if !strings.Contains(r.stdout, "rotated") {
		t.Errorf("ca rotate output:\n%s", r)
	}
	st, err := trust.GetCAStatus(ctx, &ccv1.GetCAStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Status.Cas) != 2 || !st.Status.Cas[0].Signing {
		t.Fatalf("after rotate: %d trusted CAs, want 2, the new one signing: %v", len(st.Status.Cas), st.Status)
	}
	newDigest := st.Status.Cas[0].Sha256
	// Retiring now would cut off whoever has not moved yet: refused
	// unless nobody is left (servers and the agent move within seconds).
	if !waitFor(60*time.Second, func() bool {
		st, err := trust.GetCAStatus(ctx, &ccv1.GetCAStatusRequest{})
		return err == nil && len(st.Status.Pending) == 0
	}) {
		st, _ := trust.GetCAStatus(ctx, &ccv1.GetCAStatusRequest{})
		t.Fatalf("servers and the node never all moved to the new CA: pending %v", st.GetStatus().GetPending())
	}
	leaf, err := pki.ParseCertPEM(mustRead(t, filepath.Join(agent.DataDir, "identity", "node.crt")))
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := pki.ParseCertPEM(leader.Srv.CACertPEM())
	if err != nil || pki.Digest(newCA) != newDigest || leaf.CheckSignatureFrom(newCA) != nil {
		t.Fatalf("the agent's certificate is not from the new CA %s (err %v)", newDigest, err)
	}

	ccctl(t, env, "ca", "retire")
	for _, s := range c.Servers {
		if !waitFor(30*time.Second, func() bool { return strings.Count(string(s.Srv.CACertPEM()), "BEGIN CERTIFICATE") == 1 }) {
			t.Fatalf("server %s still trusts %d CAs after retire", s.ID(), strings.Count(string(s.Srv.CACertPEM()), "BEGIN CERTIFICATE"))
		}
	}

	// The old server certificate no longer gets through the API port's
	// mutual TLS, nor does the node's old certificate.
	for name, cert := range map[string]tls.Certificate{"old server certificate": oldServer, "old node certificate": oldNode} {
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, NextProtos: []string{"h2", pki.ALPNCluster}}
		conn, err := grpc.NewClient(leader.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ccv1.NewAgentServiceClient(conn).RenewCertificate(ctx, &ccv1.RenewCertificateRequest{})
		conn.Close()
		if err == nil {
			t.Errorf("%s: RenewCertificate accepted after the old CA was retired", name)
		}
	}
	// ccctl with only the old CA is refused; the context (refreshed by
	// rotate and retire) works.
	caFile := filepath.Join(t.TempDir(), "old-ca.crt")
	if err := os.WriteFile(caFile, oldCA, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, baseEnv(), ctlBin, "--addr", leader.Addr(), "--token", leader.Token, "--ca-cert", caFile, "status"); r.code == 0 {
		t.Errorf("ccctl with only the retired CA: accepted\n%s", r)
	}
	ccctl(t, env, "status")
	// The agent keeps its session with its new certificate.
	agent.Restart()
	if !waitFor(30*time.Second, func() bool {
		n := nodeNamed(listNodes(t, leader.Client()), "rot-a1")
		return n != nil && n.State == ccv1.NodeState_NODE_STATE_READY && n.CertCaSha256 == newDigest
	}) {
		t.Errorf("the agent is not ready with a certificate of the new CA after a restart: %+v", nodeNamed(listNodes(t, leader.Client()), "rot-a1"))
	}
	// A join token of the old CA is refused and says what to do; a new one
	// joins.
	nodes := len(listNodes(t, leader.Client()))
	dir, _, err := tryJoin(t, leader.Addr(), oldToken.Secret, "rot-old")
	wantRefused(t, leader.Client(), nodes, dir, err, "CA")
	fresh := joinToken(t, leader.Client(), &ccv1.CreateTokenRequest{MaxUses: 1})
	if _, id, err := tryJoin(t, leader.Addr(), fresh.Secret, "rot-new"); err != nil {
		t.Errorf("join with a token made after the rotation: %v", err)
	} else if err := handshake(follower.Addr(), id.TLSConfig()); err != nil {
		t.Errorf("the new node to a follower: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
