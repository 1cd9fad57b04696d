package fsm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/simnode"
	"github.com/containercodes/cc/internal/testing/testcerts"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestWriteStateFixture writes the data of a small cluster, as the code of
// this tree writes it, into the directory named by CC_WRITE_STATE_FIXTURE:
// state.db.gz (a compact copy of the state database), snapshot/ (the raft
// snapshot the server took: meta.json and state.bin.gz) and manifest.json
// (the records per bucket). The bbolt files are gzipped: mostly empty
// pages, they shrink from tens of KB to a few. It is skipped otherwise. A fixture, once
// committed, is never regenerated: it stands for the release that wrote
// it, and the next schema gets a fixture of its own beside it
// (TestStateFixtures opens them all).
//
//	CC_WRITE_STATE_FIXTURE=$PWD/controlplane/fsm/testdata/state-v0 go test -run TestWriteStateFixture ./controlplane/fsm/
func TestWriteStateFixture(t *testing.T) {
	out := os.Getenv("CC_WRITE_STATE_FIXTURE")
	if out == "" {
		t.Skip("set CC_WRITE_STATE_FIXTURE=DIR to write a state fixture")
	}
	srv := testcluster.Start(t)
	cl := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Tokens: one of each role, one revoked.
	for _, r := range []ccv1.Role{ccv1.Role_ROLE_VIEWER, ccv1.Role_ROLE_JOBS, ccv1.Role_ROLE_SERVER} {
		_, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: r, Description: "fixture " + r.String(), Ttl: durationpb.New(24 * time.Hour)})
		must("create token", err)
	}
	gone, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "fixture revoked"})
	must("create token", err)
	_, err = cl.Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: gone.Token.Id})
	must("revoke token", err)
	join, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, Description: "fixture agent", MaxUses: 2})
	must("create join token", err)

	// One simulated node, which runs what it is given.
	fleet, err := simnode.Start(ctx, simnode.Config{Servers: []string{srv.Addr()}, Token: join.Secret, Count: 1, NamePrefix: "fixture",
		Labels: func(int) map[string]string { return map[string]string{"zone": "a"} }})
	must("simnode", err)
	defer fleet.Close()

	cl.LoadBusybox(t, "fixture/busybox:1")
	const image = "fixture/busybox:1"
	_, err = cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: "one", Spec: &ccv1.ContainerSpec{
		Image: image, Command: []string{"/bin/busybox", "sleep", "3600"}, Env: []string{"A=1"}}})
	must("create container", err)
	_, err = cl.Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{Replicas: 2,
		Task: &ccv1.ContainerSpec{Image: image, Command: []string{"/bin/busybox", "httpd", "-f", "-p", "80"}}}})
	must("create service", err)

	_, err = cl.Jobs.SetQueue(ctx, &ccv1.SetQueueRequest{Name: "batch", MaxRunning: 1})
	must("set queue", err)
	input := tarGz(t, map[string]string{"in.txt": "hello"})
	up, err := cl.Jobs.UploadInput(ctx)
	must("upload input", err)
	sum := sha256.Sum256(input)
	must("upload header", up.Send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Header{Header: &ccv1.UploadHeader{Size: int64(len(input)), Sha256: hex.EncodeToString(sum[:])}}}))
	must("upload chunk", up.Send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Chunk{Chunk: input}}))
	in, err := up.CloseAndRecv()
	must("upload input", err)
	for i, spec := range []*ccv1.JobSpec{
		{Image: image, Command: []string{"/bin/busybox", "true"}, Queue: "batch", IdempotencyKey: "fixture-1", Labels: map[string]string{"k": "v"}},
		{Image: image, Command: []string{"/bin/busybox", "cat", "/input/in.txt"}, InputDigest: in.Digest, Priority: 5},
		{Image: image, Command: []string{"/bin/busybox", "sleep", "60"}, WebhookUrl: "https://203.0.113.7/hook"},
	} {
		j, err := cl.Jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: spec})
		must("submit job", err)
		if i == 2 {
			_, err = cl.Jobs.CancelJob(ctx, &ccv1.CancelJobRequest{Id: j.Job.Id})
			must("cancel job", err)
		}
	}

	ca := testcerts.NewCA(t)
	leaf := ca.IssueNow(t, "app.localhost")
	_, err = cl.Certs.AddCert(ctx, &ccv1.AddCertRequest{Name: "app", ChainPem: string(leaf.CertPEM), KeyPem: string(leaf.KeyPEM)})
	must("add cert", err)
	_, err = cl.Edge.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "web", Spec: &ccv1.RouteSpec{Hosts: []string{"app.localhost"}, Service: "web", Port: 80,
		Tls: &ccv1.EdgeTLSOptions{Cert: "app"}}})
	must("create route", err)
	_, err = cl.Edge.CreateRoute(ctx, &ccv1.CreateRouteRequest{Name: "api", Spec: &ccv1.RouteSpec{Hosts: []string{"api.localhost"},
		Upstreams: []*ccv1.Upstream{{Address: "127.0.0.1:9000"}}}})
	must("create route", err)
	site := tarGz(t, map[string]string{"index.html": "<h1>fixture</h1>"})
	ds, err := cl.Edge.DeploySite(ctx)
	must("deploy site", err)
	must("site header", ds.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Header{Header: &ccv1.DeploySiteHeader{Name: "docs", Spec: &ccv1.SiteSpec{Hosts: []string{"docs.localhost"}}}}}))
	must("site chunk", ds.Send(&ccv1.DeploySiteRequest{Msg: &ccv1.DeploySiteRequest_Chunk{Chunk: site}}))
	_, err = ds.CloseAndRecv()
	must("deploy site", err)
	_, err = cl.Cluster.UpdateSettings(ctx, &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}})
	must("settings", err)

	// Wait until the node runs the service's tasks and the jobs' attempts.
	for fleet.Tasks() < 4 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if fleet.Tasks() < 4 {
		t.Fatalf("the node runs %d tasks, want 4", fleet.Tasks())
	}
	time.Sleep(500 * time.Millisecond) // the status batch
	must("snapshot", srv.Srv.Snapshot())
	fleet.Close()
	dataDir := srv.Config.DataDir
	srv.Stop()

	must("mkdir", os.MkdirAll(filepath.Join(out, "snapshot"), 0o755))
	snaps, err := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("raft snapshots: %v %v", snaps, err)
	}
	meta, err := os.ReadFile(filepath.Join(snaps[0], "meta.json"))
	must("read snapshot", err)
	must("write snapshot", os.WriteFile(filepath.Join(out, "snapshot", "meta.json"), meta, 0o644))
	bin, err := os.ReadFile(filepath.Join(snaps[0], "state.bin"))
	must("read snapshot", err)
	must("write snapshot", writeGz(filepath.Join(out, "snapshot", "state.bin.gz"), bin))
	db, err := bolt.Open(filepath.Join(dataDir, "state.db"), 0o600, &bolt.Options{ReadOnly: true})
	must("open state", err)
	defer db.Close()
	manifest := map[string]any{"written_by": os.Getenv("CC_FIXTURE_RELEASE"), "written": time.Now().UTC().Format(time.RFC3339)}
	counts := map[string]int{}
	var copyBuf bytes.Buffer
	must("read state", db.View(func(tx *bolt.Tx) error {
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			counts[string(name)] = b.Stats().KeyN
			return nil
		}); err != nil {
			return err
		}
		_, err := tx.WriteTo(&copyBuf)
		return err
	}))
	manifest["records"] = counts
	must("write state", writeGz(filepath.Join(out, "state.db.gz"), copyBuf.Bytes()))
	mj, _ := json.MarshalIndent(manifest, "", "  ")
	must("write manifest", os.WriteFile(filepath.Join(out, "manifest.json"), append(mj, '\n'), 0o644))
	t.Logf("fixture written to %s: %v", out, counts)
}

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func writeGz(path string, data []byte) error {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
