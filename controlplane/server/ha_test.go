package server_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func tokenCount(t *testing.T, s *testcluster.Server) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := s.Client()
	for {
		r, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
		if err == nil {
			return len(r.Tokens)
		}
		// A leader change under load refuses linearizable reads for a
		// moment: try again.
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("list tokens on %s: %v", s.Config.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Three servers: writes on any server are forwarded to the leader, reads
// anywhere see every acknowledged write, and the cluster survives the loss
// of its leader; the lost server catches up when it comes back.
func TestThreeServers(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Every server healthy with an API address, one leader (polled: on a
	// busy machine an election may be under way).
	var servers *ccv1.ListServersResponse
	settled := func() bool {
		r, err := c.Leader().Client().Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
		if err != nil {
			return false
		}
		servers = r
		leaders := 0
		for _, s := range r.Servers {
			if s.Leader {
				leaders++
			}
			if !s.Healthy || s.ApiAddress == "" {
				return false
			}
		}
		return len(r.Servers) == 3 && leaders == 1
	}
	for deadline := time.Now().Add(30 * time.Second); !settled(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("servers never all healthy with one leader: %v", servers.GetServers())
		}
	}
	leader := c.Leader()

	// A write on a follower is forwarded; a read right after it on another
	// server sees it (linearizable reads).
	before := tokenCount(t, leader)
	f := c.Followers()
	if _, err := f[0].Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "via follower"}); err != nil {
		t.Fatalf("write on a follower: %v", err)
	}
	for _, s := range c.Servers {
		if n := tokenCount(t, s); n != before+1 {
			t.Errorf("%s sees %d tokens, want %d", s.Config.Name, n, before+1)
		}
	}
	// A refusal on the leader crosses back with its code.
	_, err := f[1].Client().Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: "0000000000000000"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("forwarded refusal: %v, want NotFound", err)
	}

	// Lose the leader: a new one is elected and writes go on.
	leader.Stop()
	next := c.Leader()
	if next == leader {
		t.Fatal("the stopped server is still the leader")
	}
	if _, err := next.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "after failover"}); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	for _, s := range c.Followers() {
		if _, err := s.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "on a follower after failover"}); err != nil {
			t.Fatalf("write on %s after failover: %v", s.Config.Name, err)
		}
	}
	// The old leader comes back and catches up.
	leader.Restart()
	want := before + 3
	deadline := time.Now().Add(30 * time.Second)
	for tokenCount(t, leader) != want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := tokenCount(t, leader); n != want {
		t.Errorf("restarted server sees %d tokens, want %d", n, want)
	}
}

// A server removed from the cluster cannot come back with its identity.
func TestRemovedServerIsRefused(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader()
	victim := c.Followers()[0]
	st, err := victim.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	victim.Stop()
	if _, err := leader.Client().Cluster.RemoveServer(ctx, &ccv1.RemoveServerRequest{Id: st.ServerId}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	list, err := leader.Client().Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Servers) != 2 {
		t.Errorf("after remove: %d servers", len(list.Servers))
	}
	// Its certificate is refused from then on.
	cert, err := tls.LoadX509KeyPair(filepath.Join(victim.Config.DataDir, "tls", "server.crt"), filepath.Join(victim.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := leader.TLSConfig()
	cfg.Certificates = []tls.Certificate{cert}
	conn, err := grpc.NewClient(leader.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = ccv1.NewPeerServiceClient(conn).PeerStatus(ctx, &ccv1.PeerStatusRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("a removed server's certificate: %v, want Unauthenticated", err)
	}
	// A live server's certificate is accepted (the check above can fail).
	live := c.Followers()[0]
	lcert, err := tls.LoadX509KeyPair(filepath.Join(live.Config.DataDir, "tls", "server.crt"), filepath.Join(live.Config.DataDir, "tls", "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = leader.TLSConfig()
	cfg.Certificates = []tls.Certificate{lcert}
	conn2, err := grpc.NewClient(leader.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := ccv1.NewPeerServiceClient(conn2).PeerStatus(ctx, &ccv1.PeerStatusRequest{}); err != nil {
		t.Errorf("a live server's certificate: %v", err)
	}
	// Removing the last follower while it is down would leave the leader
	// alone: 1 healthy of 1 voter is a quorum, so that is allowed; removing
	// an unknown server is NotFound.
	_, err = leader.Client().Cluster.RemoveServer(ctx, &ccv1.RemoveServerRequest{Id: "no-such-server"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("remove unknown: %v", err)
	}
}

// Membership calls work through any server: a follower passes them, with
// the caller's token, to the leader.
func TestTransferLeadershipThroughAFollower(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := c.Leader()
	oldStatus, err := old.Client().Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	via := c.Followers()[0]
	resp, err := via.Client().Cluster.TransferLeadership(ctx, &ccv1.TransferLeadershipRequest{})
	if err != nil {
		t.Fatalf("transfer through a follower: %v", err)
	}
	if resp.LeaderId == "" || resp.LeaderId == oldStatus.ServerId {
		t.Errorf("leader after transfer: %q (was %s)", resp.LeaderId, oldStatus.ServerId)
	}
	// A viewer token is still refused when forwarded.
	tok, err := old.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Followers()[0]
	_, err = ccv1.NewClusterServiceClient(follower.Conn(tok.Secret)).TransferLeadership(ctx, &ccv1.TransferLeadershipRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("viewer transfer: %v, want PermissionDenied", err)
	}
}

// A follower that missed more than the leader keeps in its log catches up
// from a snapshot sent over the raft transport.
func TestFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := testcluster.StartCluster(t, 3, func(cfg *testcluster.Config) {
		cfg.Raft.SnapshotThreshold = 32
		cfg.Raft.TrailingLogs = 8
		cfg.Raft.SnapshotInterval.Duration = time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.Leader()
	behind := c.Followers()[0]
	behind.Stop()
	cl := leader.Client()
	for i := 0; i < 200; i++ {
		_, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: strings.Repeat("x", 200)})
		if status.Code(err) == codes.Unavailable {
			// A leader change under load: the server forwards the retry to
			// the new leader. The count below is read afterwards.
			time.Sleep(100 * time.Millisecond)
			i--
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.Srv.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	want := tokenCount(t, leader)
	behind.Restart()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := ccv1.NewTokenServiceClient(behind.Conn("")).ListTokens(ctx, &ccv1.ListTokensRequest{})
		if err == nil && len(r.Tokens) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not catch up to %d tokens (last error %v)", want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A leader whose process is gone (its raft port refuses connections) is
// replaced without waiting for the heartbeat timeout: with a timeout of a
// minute, the followers elect a new leader because they found the port
// closed, and writes go on.
func TestDeadLeaderReplacedBeforeHeartbeatTimeout(t *testing.T) {
	// The first server (the leader: it bootstraps) keeps the harness's
	// timeouts; the two that join wait a minute for heartbeats.
	n := 0
	c := testcluster.StartCluster(t, 3, func(cfg *testcluster.Config) {
		if n++; n == 1 {
			return
		}
		cfg.Raft.HeartbeatTimeout.Duration = time.Minute
		cfg.Raft.ElectionTimeout.Duration = time.Minute
	})
	old := c.Leader()
	if old != c.Servers[0] {
		t.Skip("the bootstrapped server is not the leader; this test needs the followers to be the two that wait")
	}
	followers := c.Followers()
	old.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	// The write is refused (Unavailable) until there is a new leader: well
	// before the heartbeat timeout of a minute, unless the followers
	// waited for it.
	cl := followers[0].Client()
	for {
		_, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("write after the leader stopped: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var started uint64
	for _, f := range followers {
		started += f.Srv.ElectionsOnLeaderGone()
	}
	if started == 0 {
		t.Fatal("no follower started an election because the leader's port was closed")
	}
}

// A write made through a follower just after the leader's process ended
// succeeds without the caller retrying: the follower's forward to the
// gone leader was never sent, so it is tried again with the next leader.
func TestWriteThroughFollowerAsLeaderDies(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	old := c.Leader()
	f := c.Followers()[0]
	cl := f.Client()
	old.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatalf("a write through a follower as the leader stopped: %v", err)
	}
}
