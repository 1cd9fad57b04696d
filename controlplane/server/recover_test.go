package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A cluster that lost its quorum comes back from the survivor's data.
func TestRecoverAfterQuorumLoss(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader()
	for i := 0; i < 3; i++ {
		if _, err := leader.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
			t.Fatal(err)
		}
	}
	want := tokenCount(t, leader)
	survivor := c.Followers()[0]
	for _, s := range c.Servers {
		if s != survivor {
			s.Stop()
		}
	}
	raftAddr := survivor.Srv.RaftAddr()
	survivor.Stop()

	dir := survivor.Config.DataDir
	id, err := os.ReadFile(filepath.Join(dir, "server-id"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsm.Open(filepath.Join(dir, "state.db"), logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	self := strings.TrimSpace(string(id))
	if err := raftstore.Recover(filepath.Join(dir, "raft"), self, map[string]string{self: raftAddr}, f, logging.Test(t)); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	survivor.Restart()
	if _, err := survivor.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatalf("write after recover: %v", err)
	}
	if n := tokenCount(t, survivor); n != want+1 {
		t.Errorf("after recover: %d tokens, want %d", n, want+1)
	}
	list, err := survivor.Client().Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Servers) != 1 || !list.Servers[0].Leader {
		t.Errorf("after recover: servers %v", list.Servers)
	}
}
