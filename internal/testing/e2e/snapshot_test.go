package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// saveSnapshotAPI saves a snapshot through the API into path, checking its
// checksum, and returns its raft index.
func saveSnapshotAPI(t *testing.T, cl *testcluster.Client, path string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := cl.Cluster.SaveSnapshot(ctx, &ccv1.SaveSnapshotRequest{})
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	var data []byte
	var index uint64
	var sum string
	for first := true; ; first = false {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SaveSnapshot: %v", err)
		}
		if first {
			index = m.GetIndex()
		}
		data = append(data, m.GetData()...)
		sum = m.GetSha256()
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
		t.Fatalf("snapshot sha256 %x, the server says %q", got, sum)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return index
}

// startRestored starts an in-process server on a restored data dir. It is
// testcluster.Start without its check for a bootstrap admin token, which a
// restored cluster does not get.
func startRestored(t *testing.T, dataDir string) *server.Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.Bootstrap = true
	cfg.APIAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.Raft.HeartbeatTimeout.Duration = 200 * time.Millisecond
	cfg.Raft.ElectionTimeout.Duration = 200 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout.Duration = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg, server.Options{Logger: logging.Test(t).With("server", "restored")})
	if err != nil {
		t.Fatalf("start the restored server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("stop the restored server: %v", err)
		}
	})
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

// clientFor dials srv with token, trusting caPEM.
func clientFor(t *testing.T, addr string, caPEM []byte, token string) *testcluster.Client {
	t.Helper()
	pool, err := pki.Pool(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(addr)
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})),
		grpc.WithPerRPCCredentials(clusterdial.Bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testcluster.Client{
		Cluster:    ccv1.NewClusterServiceClient(conn),
		Nodes:      ccv1.NewNodeServiceClient(conn),
		Tokens:     ccv1.NewTokenServiceClient(conn),
		Containers: ccv1.NewContainerServiceClient(conn),
		Images:     ccv1.NewImageServiceClient(conn),
	}
}

func clusterStatus(t *testing.T, cl *testcluster.Client) *ccv1.GetStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatalf("GetStatus: %v", err)
	}
	return st
}

func tokenIDSet(t *testing.T, cl *testcluster.Client) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cl.Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	ids := map[string]bool{}
	for _, tok := range r.Tokens {
		ids[tok.Id] = true
	}
	return ids
}

// TestSnapshotRestoreInProcess: a snapshot saved through the API, prepared
// with fsm.PrepareRestore and bootstrapped, is the same cluster: same id,
// CA, tokens and nodes; its raft log starts anew and takes writes.
func TestSnapshotRestoreInProcess(t *testing.T) {
	skipShort(t)
	old := testcluster.Start(t)
	cl := old.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	viewer, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // a longer log than the restored one will have
		if _, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, Description: "filler " + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, node, err := tryJoin(t, old.Addr(), joinToken(t, cl, &ccv1.CreateTokenRequest{}).Secret, "snap-node")
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	before := clusterStatus(t, cl)
	snapFile := filepath.Join(t.TempDir(), "backup.db")
	index := saveSnapshotAPI(t, cl, snapFile)
	if index < before.AppliedIndex {
		t.Fatalf("snapshot index %d < applied index %d before it", index, before.AppliedIndex)
	}
	beforeTokens := tokenIDSet(t, cl)
	old.Stop() // the old cluster is lost

	dir := t.TempDir()
	if err := fsm.PrepareRestore(snapFile, filepath.Join(dir, "state.db")); err != nil {
		t.Fatalf("PrepareRestore: %v", err)
	}
	srv := startRestored(t, dir)
	if tok := srv.AdminToken(); tok != "" {
		t.Errorf("the restored server created an admin token %q; the snapshot's tokens should do", tok)
	}
	if _, err := os.Stat(filepath.Join(dir, server.FileAdminToken)); !os.IsNotExist(err) {
		t.Errorf("%s in the restored data dir: %v, want none", server.FileAdminToken, err)
	}
	if got := srv.CACertPEM(); string(got) != string(old.CACert) {
		t.Error("the restored server has another CA certificate")
	}

	// The old admin token and CA work against the new server.
	admin := clientFor(t, srv.Addr(), old.CACert, old.Token)
	after := clusterStatus(t, admin)
	if after.ClusterId != before.ClusterId {
		t.Fatalf("cluster id %s after restore, want %s", after.ClusterId, before.ClusterId)
	}
	if after.LastIndex >= index {
		t.Errorf("restored raft last index %d, want a new log (below the snapshot's %d)", after.LastIndex, index)
	}
	if got := tokenIDSet(t, admin); len(got) != len(beforeTokens) {
		t.Errorf("restored tokens %v, want %v", got, beforeTokens)
	} else {
		for id := range beforeTokens {
			if !got[id] {
				t.Errorf("token %s lost in the restore", id)
			}
		}
	}
	if st := clusterStatus(t, clientFor(t, srv.Addr(), old.CACert, viewer.Secret)); st.ClusterId != before.ClusterId {
		t.Errorf("status with the old viewer token: cluster %s", st.ClusterId)
	}
	if n := nodeNamed(listNodes(t, admin), "snap-node"); n == nil || n.Id != node.NodeID {
		t.Errorf("node snap-node (%s) not restored: %v", node.NodeID, n)
	}
	// The node's certificate, from the same CA, is accepted.
	if err := renew(nodeConn(t, srv.Addr(), node.TLSConfig()), renewCSR(t)); err != nil {
		t.Errorf("RenewCertificate with the node's old certificate: %v", err)
	}

	// New writes work, and land after the new log's start.
	created, err := admin.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "after restore"})
	if err != nil {
		t.Fatalf("CreateToken after restore: %v", err)
	}
	if !tokenIDSet(t, admin)[created.Token.Id] {
		t.Error("the token created after the restore is not listed")
	}
	if st := clusterStatus(t, admin); st.LastIndex <= after.LastIndex {
		t.Errorf("last index %d after a write, want above %d", st.LastIndex, after.LastIndex)
	}
}

var savedRE = regexp.MustCompile(`^Snapshot at raft index (\d+) saved to (\S+) \(([0-9.]+) MiB, sha256 ([0-9a-f]{64})\)\n$`)

// TestSnapshotSaveAndRestoreCLI drives the real binaries: `ccctl snapshot
// save`, the old server gone, `cc-controlplane snapshot restore` into a new
// data dir, then a plain start of it.
func TestSnapshotSaveAndRestoreCLI(t *testing.T) {
	skipShort(t)
	s1 := startServer(t, t.TempDir(), true)
	admin := s1.adminToken(t)
	env := ctlEnv(t)
	before := parseStatusJSON(t, ccctl(t, env, append([]string{"-o", "json"}, append(s1.flags(admin), "status")...)...))
	viewerID, viewerSecret := createToken(t, env, s1.flags(admin), "viewer")
	caPEM, err := os.ReadFile(s1.caPath())
	if err != nil {
		t.Fatal(err)
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	r := ccctl(t, env, append(s1.flags(admin), "snapshot", "save", backup)...)
	m := savedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("snapshot save output does not match %s\n%s", savedRE, r)
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m[4] || m[2] != backup {
		t.Errorf("saved file %s has sha256 %x, output says %s of %s", backup, sum, m[4], m[2])
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := os.Stat(backup + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", backup, err)
	}
	index, _ := strconv.ParseUint(m[1], 10, 64)
	if index < before.LastIndex-1 {
		t.Errorf("snapshot index %d, want about the last index %d", index, before.LastIndex)
	}
	// No overwrite without --force; with it, a new copy.
	r = run(t, env, ctlBin, append(s1.flags(admin), "snapshot", "save", backup)...)
	if r.code == 0 || !strings.Contains(r.stderr, "exists") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("snapshot save over an existing file: want a refusal naming --force\n%s", r)
	}
	ccctl(t, env, append(s1.flags(admin), "snapshot", "save", "--force", backup)...)
	// A viewer may not take one.
	r = run(t, env, ctlBin, append(s1.flags(viewerSecret), "snapshot", "save", filepath.Join(t.TempDir(), "v.db"))...)
	if r.code == 0 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("snapshot save with a viewer token: want permission denied\n%s", r)
	}
	if err := s1.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s1.output())
	}

	// Restore into a new data dir, with the addresses the server will have.
	dir := filepath.Join(t.TempDir(), "restored")
	addrs := freePorts(t, 2)
	restoreArgs := []string{"snapshot", "restore", backup, "--data-dir", dir, "--api-addr", addrs[0], "--raft-addr", addrs[1]}
	r = run(t, baseEnv(), controlplaneBin, restoreArgs...)
	if r.code != 0 {
		t.Fatalf("restore failed\n%s", r)
	}
	for _, want := range []string{before.ClusterID, "Start it with", "--data-dir " + dir, "--api-addr " + addrs[0]} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("restore output lacks %q\n%s", want, r)
		}
	}
	// The raft log no longer holds index 1: a server that joins later gets
	// the restored state as a raft snapshot, not by replaying the log.
	checkRaftCompacted(t, filepath.Join(dir, "raft"))
	// A second restore into the same dir is refused.
	r = run(t, baseEnv(), controlplaneBin, restoreArgs...)
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore into a non-empty dir: want a refusal\n%s", r)
	}
	// Garbage is refused, and leaves nothing behind.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("not a snapshot"), 0o600)
	junkDir := filepath.Join(t.TempDir(), "junk")
	r = run(t, baseEnv(), controlplaneBin, "snapshot", "restore", junk, "--data-dir", junkDir)
	if r.code == 0 || !strings.Contains(r.stderr, "not a state snapshot") {
		t.Errorf("restore of garbage: want a refusal\n%s", r)
	}
	if _, err := os.Stat(junkDir); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s: %v", junkDir, err)
	}

	// Start it as the restore says: same cluster, old tokens, a new log.
	s2 := startServer(t, dir, false, addrs[0], addrs[1])
	if got, _ := os.ReadFile(s2.caPath()); string(got) != string(caPEM) {
		t.Error("the restored server's CA certificate differs")
	}
	after := parseStatusJSON(t, ccctl(t, env, append([]string{"-o", "json"}, append(s2.flags(admin), "status")...)...))
	if after.ClusterID != before.ClusterID {
		t.Errorf("cluster id %s after restore, want %s", after.ClusterID, before.ClusterID)
	}
	if after.LastIndex >= index {
		t.Errorf("last index %d after restore, want a new log below the snapshot's %d", after.LastIndex, index)
	}
	r = ccctl(t, env, append(s2.flags(viewerSecret), "status")...)
	if !strings.Contains(r.stdout, before.ClusterID) {
		t.Errorf("status with the old viewer token\n%s", r)
	}
	newID, _ := createToken(t, env, s2.flags(admin), "viewer")
	r = ccctl(t, env, append([]string{"-o", "json"}, append(s2.flags(admin), "token", "ls")...)...)
	for _, id := range []string{viewerID, newID} {
		if !strings.Contains(r.stdout, id) {
			t.Errorf("token ls after restore lacks %s\n%s", id, r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); !os.IsNotExist(err) {
		t.Errorf("the restored data dir has an admin.token: %v", err)
	}
}

// checkRaftCompacted checks that the raft dir has a snapshot and a log that
// does not start at 1.
func checkRaftCompacted(t *testing.T, raftDir string) {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStore(raftDir, 3, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("raft snapshots in %s: %v, %v; want one", raftDir, list, err)
	}
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db"), BoltOptions: nil})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	first, err := logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first == 1 {
		t.Errorf("the restored raft log still starts at index 1 (snapshot at %d)", list[0].Index)
	}
}
