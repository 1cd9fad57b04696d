package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// tlsDialer is a raft stream layer that only dials, with a given
// certificate: what a removed server, or anyone holding its files, can do.
type tlsDialer struct {
	cfg *tls.Config
}

func (d tlsDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	// A refusal by the server (it checks the client's certificate after
	// the client's side of the handshake) shows when the answer is read.
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.cfg)
}

func (d tlsDialer) Accept() (net.Conn, error) { return nil, errors.New("dial only") }
func (d tlsDialer) Close() error              { return nil }
func (d tlsDialer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// A removed server keeps its certificate files (valid for months), but the
// raft port of every member refuses it: an AppendEntries with a higher term
// sent with its certificate changes no term and no leader.
func TestRemovedServerRefusedOnRaftPort(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.Leader()
	victim := c.Followers()[0]
	victimID := victim.ID()
	victim.Stop()
	if _, err := leader.Client().Cluster.RemoveServer(ctx, &ccv1.RemoveServerRequest{Id: victimID}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	var target *testcluster.Server
	for _, s := range c.Followers() {
		if s != victim {
			target = s
		}
	}
	before, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}

	cert, err := tls.LoadX509KeyPair(filepath.Join(victim.Config.DataDir, "tls", "server.crt"), filepath.Join(victim.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(victim.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool,
		InsecureSkipVerify: true, // as raft peers do: the chain is checked below
		VerifyConnection:   func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) },
	}
	trans := raft.NewNetworkTransport(tlsDialer{cfg: cfg}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	for _, s := range []*testcluster.Server{target, leader} {
		var resp raft.AppendEntriesResponse
		err := trans.AppendEntries(raft.ServerID(s.ID()), raft.ServerAddress(s.Srv.RaftAddr()), &raft.AppendEntriesRequest{
			RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(victimID), Addr: []byte(victim.Srv.RaftAddr())},
			Term:         before.Term + 100,
			PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: 0,
		}, &resp)
		if err == nil {
			t.Errorf("AppendEntries from removed server %s to %s accepted (term in answer %d)", victimID, s.ID(), resp.Term)
		}
	}

	// Nothing moved: same leader, same term, and the cluster still writes.
	time.Sleep(2 * time.Second)
	after, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.LeaderId != before.LeaderId {
		t.Errorf("after the removed server's RPC: leader %s term %d, before leader %s term %d", after.LeaderId, after.Term, before.LeaderId, before.Term)
	}
	if _, err := leader.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Errorf("write after the removed server's attempt: %v", err)
	}
	// A member's certificate still gets through (the check above can fail).
	lcert, err := tls.LoadX509KeyPair(filepath.Join(target.Config.DataDir, "tls", "server.crt"), filepath.Join(target.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	mcfg := cfg.Clone()
	mcfg.Certificates = []tls.Certificate{lcert}
	mtrans := raft.NewNetworkTransport(tlsDialer{cfg: mcfg}, 1, 5*time.Second, io.Discard)
	defer mtrans.Close()
	var resp raft.AppendEntriesResponse
	// A stale term: the leader answers with its own and changes nothing.
	if err := mtrans.AppendEntries(raft.ServerID(leader.ID()), raft.ServerAddress(leader.Srv.RaftAddr()), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(target.ID()), Addr: []byte(target.Srv.RaftAddr())},
		Term:      0,
	}, &resp); err != nil {
		t.Errorf("a member's raft connection: %v", err)
	} else if resp.Success {
		t.Errorf("stale AppendEntries succeeded")
	}
}

// A raft connection a server opened while it was a member is closed once it
// is removed: it cannot keep sending RPCs over a connection it holds.
func TestRemovedServerPooledRaftConnClosed(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.Leader()
	fs := c.Followers()
	victim, target := fs[0], fs[1]
	victimID := victim.ID()

	cert, err := tls.LoadX509KeyPair(filepath.Join(victim.Config.DataDir, "tls", "server.crt"), filepath.Join(victim.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(victim.CACert)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool,
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) },
	}
	// One pooled connection: every RPC below goes over the same one.
	trans := raft.NewNetworkTransport(tlsDialer{cfg: cfg}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	send := func(term uint64) (raft.AppendEntriesResponse, error) {
		var resp raft.AppendEntriesResponse
		err := trans.AppendEntries(raft.ServerID(target.ID()), raft.ServerAddress(target.Srv.RaftAddr()), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(victimID), Addr: []byte(victim.Srv.RaftAddr())},
			Term:      term,
		}, &resp)
		return resp, err
	}
	// While a member, its connection is accepted (a stale term changes
	// nothing).
	if _, err := send(0); err != nil {
		t.Fatalf("a member's raft connection: %v", err)
	}
	victim.Stop()
	if _, err := leader.Client().Cluster.RemoveServer(ctx, &ccv1.RemoveServerRequest{Id: victimID}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	time.Sleep(3 * time.Second) // the target applies the removal and sweeps
	before, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := send(before.Term + 100); err == nil {
		t.Errorf("AppendEntries over the removed server's open connection accepted (term in answer %d)", resp.Term)
	}
	time.Sleep(time.Second)
	after, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.LeaderId != before.LeaderId {
		t.Errorf("after the removed server's RPC: leader %s term %d, before leader %s term %d", after.LeaderId, after.Term, before.LeaderId, before.Term)
	}
}

// Every server holds the cluster CA key (it is in the replicated state), so
// a removed server, or anyone with a copy of a server's state, can sign a
// certificate with a current member's id. It cannot sign one for that
// member's key: the raft port of every member refuses a certificate whose
// key is not the one the member's record pins, and an AppendEntries with a
// higher term sent with it changes no term and no leader.
func TestForgedMemberCertRefusedOnRaftPort(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.Leader()
	fs := c.Followers()
	owner, target := fs[0], fs[1]
	ownerID := owner.ID()
	// The owner stays a member; stopped, its state can be read for the CA
	// key, as a removed server could read its own.
	owner.Stop()
	st, err := fsm.Open(filepath.Join(owner.Config.DataDir, "state.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := st.Cluster()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(cl.CaCertPem, cl.CaKeyPem)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := ca.IssueServerFor(ownerID, []string{"127.0.0.1", "localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(forged.CertPEM, forged.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool,
		InsecureSkipVerify: true, // as raft peers do: the chain is checked below
		VerifyConnection:   func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) },
	}
	before, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(tlsDialer{cfg: cfg}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	for _, s := range []*testcluster.Server{target, leader} {
		var resp raft.AppendEntriesResponse
		err := trans.AppendEntries(raft.ServerID(s.ID()), raft.ServerAddress(s.Srv.RaftAddr()), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(ownerID), Addr: []byte(owner.Srv.RaftAddr())},
			Term:      before.Term + 100,
		}, &resp)
		if err == nil {
			t.Errorf("AppendEntries to %s with a forged certificate for member %s accepted (term in answer %d)", s.ID(), ownerID, resp.Term)
		}
	}

	time.Sleep(2 * time.Second)
	after, err := leader.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.LeaderId != before.LeaderId {
		t.Errorf("after the forged RPC: leader %s term %d, before leader %s term %d", after.LeaderId, after.Term, before.LeaderId, before.Term)
	}

	// The owner's own certificate, with the pinned key, still gets through.
	own, err := tls.LoadX509KeyPair(filepath.Join(owner.Config.DataDir, "tls", "server.crt"), filepath.Join(owner.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	ocfg := cfg.Clone()
	ocfg.Certificates = []tls.Certificate{own}
	otrans := raft.NewNetworkTransport(tlsDialer{cfg: ocfg}, 1, 5*time.Second, io.Discard)
	defer otrans.Close()
	var resp raft.AppendEntriesResponse
	if err := otrans.AppendEntries(raft.ServerID(target.ID()), raft.ServerAddress(target.Srv.RaftAddr()), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(ownerID), Addr: []byte(owner.Srv.RaftAddr())},
		Term:      0,
	}, &resp); err != nil {
		t.Errorf("the member's own certificate: %v", err)
	}
}
