package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A restart on the same data dir keeps the cluster id, the CA and the
// tokens, and the raft index goes on from where it was.
func TestRestartKeepsClusterState(t *testing.T) {
	srv := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl := srv.Client()
	created, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "survives restart"})
	if err != nil {
		t.Fatal(err)
	}
	before, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	caBefore := string(srv.CACert)

	srv.Restart()
	if srv.Srv.AdminToken() != "" {
		t.Error("restart created a new admin token")
	}
	if string(srv.CACert) != caBefore {
		t.Error("restart changed the cluster CA")
	}
	cl = srv.Client()
	after, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ClusterId != before.ClusterId || after.ServerId != before.ServerId {
		t.Errorf("identity changed: %s/%s -> %s/%s", before.ClusterId, before.ServerId, after.ClusterId, after.ServerId)
	}
	if after.LastIndex < before.LastIndex || after.AppliedIndex < before.AppliedIndex {
		t.Errorf("raft index went back: last %d -> %d, applied %d -> %d", before.LastIndex, after.LastIndex, before.AppliedIndex, after.AppliedIndex)
	}
	viewer := ccv1.NewClusterServiceClient(srv.Conn(created.Secret))
	if _, err := viewer.GetStatus(ctx, &ccv1.GetStatusRequest{}); err != nil {
		t.Errorf("token created before the restart: %v", err)
	}
	// A write after the restart lands at a higher index.
	if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatal(err)
	}
	later, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if later.LastIndex <= after.LastIndex {
		t.Errorf("write after restart did not advance the index: before %d, after restart %d, after write %d", before.LastIndex, after.LastIndex, later.LastIndex)
	}
	toks, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(toks.Tokens) != 3 {
		t.Errorf("want 3 tokens (admin, two viewers), got %d", len(toks.Tokens))
	}
}

// Snapshots and log compaction: with a low threshold the server snapshots,
// and a restart restores nothing twice and loses nothing.
func TestSnapshotThenRestart(t *testing.T) {
	srv := testcluster.Start(t, func(c *testcluster.Config) {
		c.Raft.SnapshotThreshold = 16
		c.Raft.TrailingLogs = 4
		c.Raft.SnapshotInterval.Duration = time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := srv.Client()
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Srv.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	srv.Restart()
	toks, err := srv.Client().Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(toks.Tokens) != n+1 {
		t.Errorf("after snapshot and restart: %d tokens, want %d", len(toks.Tokens), n+1)
	}
}

// A server whose state database is lost rebuilds it from the newest raft
// snapshot and the log after it, before it serves.
func TestLostStateDatabaseIsRebuilt(t *testing.T) {
	srv := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := srv.Client()
	for i := 0; i < 5; i++ {
		if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Srv.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Written after the snapshot: only the raft log has these.
	for i := 0; i < 3; i++ {
		if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	if err := os.Remove(filepath.Join(srv.Config.DataDir, "state.db")); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	toks, err := srv.Client().Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(toks.Tokens) != 1+5+3 {
		t.Errorf("after losing state.db: %d tokens, want %d", len(toks.Tokens), 9)
	}
}

// Without any snapshot, a lost state database is rebuilt from the whole log;
// the server starts on the certificates in its data dir meanwhile.
func TestLostStateDatabaseWithoutSnapshotIsRebuilt(t *testing.T) {
	srv := testcluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatal(err)
	}
	clusterID := srv.Srv.ClusterID()
	srv.Stop()
	if err := os.Remove(filepath.Join(srv.Config.DataDir, "state.db")); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	cl := srv.Client()
	toks, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(toks.Tokens) != 2 {
		t.Errorf("after losing state.db: %d tokens, want 2", len(toks.Tokens))
	}
	st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ClusterId != clusterID {
		t.Errorf("cluster id %q after rebuild, want %q", st.ClusterId, clusterID)
	}
}

// The state database is written without an fsync per commit, so after the
// host went down with it open (its marker names another boot) the server
// sets it aside and rebuilds the state from the latest raft snapshot and
// the log after it: every token is there again and old secrets still work.
func TestStateRebuiltAfterHostRestart(t *testing.T) {
	srv := testcluster.Start(t, func(cfg *testcluster.Config) {
		cfg.Raft.SnapshotThreshold = 8
		cfg.Raft.TrailingLogs = 4
		cfg.Raft.SnapshotInterval.Duration = time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := srv.Client()
	var secrets []string
	for i := 0; i < 30; i++ {
		r, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, r.Secret)
		if i == 15 {
			time.Sleep(2 * time.Second) // a snapshot in the middle
		}
	}
	before, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(srv.Config.DataDir, "raft", "snapshots", "*"))
	srv.Stop()
	// As if the host went down with the database open: a marker of
	// another boot.
	state := filepath.Join(srv.Config.DataDir, "state.db")
	if err := os.WriteFile(state+".open", []byte("a-boot-before-this-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Config.Bootstrap = false
	srv.Restart()
	if _, err := os.Stat(state + ".unsynced"); err != nil {
		t.Fatalf("the database was not set aside: %v", err)
	}
	cl = srv.Client()
	var after *ccv1.ListTokensResponse
	for {
		if after, err = cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{}); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // replaying the log
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Tokens) != len(before.Tokens) {
		t.Fatalf("tokens after the rebuild: %d, want %d (snapshots before the restart: %d)", len(after.Tokens), len(before.Tokens), len(snaps))
	}
	for _, s := range []string{secrets[0], secrets[len(secrets)-1]} {
		if _, err := ccv1.NewClusterServiceClient(srv.Conn(s)).GetStatus(ctx, &ccv1.GetStatusRequest{}); err != nil {
			t.Errorf("a token created before the restart: %v", err)
		}
	}
}
