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
