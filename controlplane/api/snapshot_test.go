package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/api"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// checkSnapshotMessages checks the framing of a snapshot stream and returns
// its index and data: the index on the first message only, the checksum on
// the last only and matching, no chunk over SnapshotChunkSize.
func checkSnapshotMessages(t *testing.T, msgs []*ccv1.SaveSnapshotResponse) (uint64, []byte) {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatal("no snapshot messages")
	}
	var data []byte
	for i, m := range msgs {
		if len(m.GetData()) > api.SnapshotChunkSize {
			t.Errorf("message %d carries %d bytes, more than %d", i, len(m.GetData()), api.SnapshotChunkSize)
		}
		if i > 0 && m.GetIndex() != 0 {
			t.Errorf("message %d carries index %d; only the first may", i, m.GetIndex())
		}
		if i < len(msgs)-1 && m.GetSha256() != "" {
			t.Errorf("message %d of %d carries a checksum; only the last may", i, len(msgs))
		}
		if i < len(msgs)-1 && len(m.GetData()) != api.SnapshotChunkSize {
			t.Errorf("message %d of %d carries %d bytes, want full chunks before the last", i, len(msgs), len(m.GetData()))
		}
		data = append(data, m.GetData()...)
	}
	sum := sha256.Sum256(data)
	if got, want := msgs[len(msgs)-1].GetSha256(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("last message's sha256 = %q, want %q", got, want)
	}
	if msgs[0].GetIndex() == 0 {
		t.Fatal("first message carries no index")
	}
	return msgs[0].GetIndex(), data
}

func saveSnapshot(t *testing.T, c ccv1.ClusterServiceClient) ([]*ccv1.SaveSnapshotResponse, error) {
	t.Helper()
	stream, err := c.SaveSnapshot(ctxT(t), &ccv1.SaveSnapshotRequest{})
	if err != nil {
		return nil, err
	}
	var msgs []*ccv1.SaveSnapshotResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// boltTokens opens snapshot bytes as a bbolt database and returns the keys
// of its tokens bucket.
func boltTokens(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("snapshot does not open as a bbolt database: %v", err)
	}
	defer db.Close()
	ids := map[string]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("tokens"))
		if b == nil {
			return errors.New("no tokens bucket")
		}
		return b.ForEach(func(k, _ []byte) error { ids[string(k)] = true; return nil })
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return ids
}

func TestSaveSnapshot(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	viewer := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "snap viewer"})
	join := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, Description: "snap join"})
	st, err := admin.Cluster.GetStatus(ctxT(t), &ccv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}

	msgs, err := saveSnapshot(t, admin.Cluster)
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	index, data := checkSnapshotMessages(t, msgs)
	if index < st.GetAppliedIndex() {
		t.Errorf("snapshot index %d, want at least %d (applied before it was taken)", index, st.GetAppliedIndex())
	}
	ids := boltTokens(t, data)
	for _, id := range []string{viewer.GetToken().GetId(), join.GetToken().GetId()} {
		if !ids[id] {
			t.Errorf("snapshot holds tokens %v, not %s", ids, id)
		}
	}
	if len(ids) < 3 { // and the bootstrap admin token
		t.Errorf("snapshot holds %d tokens, want at least 3", len(ids))
	}
	path := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := fsm.InspectSnapshot(path)
	if err != nil {
		t.Fatalf("InspectSnapshot: %v", err)
	}
	if info.ClusterID != st.GetClusterId() || info.Index != index {
		t.Errorf("InspectSnapshot = %+v, want cluster %s at index %d", info, st.GetClusterId(), index)
	}

	// Admin only.
	conn := srv.Conn(viewer.GetSecret())
	_, err = saveSnapshot(t, ccv1.NewClusterServiceClient(conn))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SaveSnapshot with a viewer token: %v, want PermissionDenied", err)
	}
	_, err = saveSnapshot(t, ccv1.NewClusterServiceClient(srv.Conn("-")))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("SaveSnapshot without a token: %v, want Unauthenticated", err)
	}
}

func TestSaveSnapshotREST(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	viewer := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	get := func(token string) *http.Response {
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, srv.URL()+"/v1/snapshot", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("GET /v1/snapshot: %v", err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get(viewer.GetSecret()); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET /v1/snapshot with a viewer token: %s, want 403", resp.Status)
	}
	resp := get(srv.Token)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/snapshot: %s %s", resp.Status, body)
	}
	// The gateway streams one JSON object per line, {"result": message}.
	var msgs []*ccv1.SaveSnapshotResponse
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4*api.SnapshotChunkSize)
	for sc.Scan() {
		var line struct {
			Result *struct {
				Index  json.Number `json:"index"`
				Sha256 string      `json:"sha256"`
				Data   []byte      `json:"data"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		if line.Result == nil {
			t.Fatalf("stream error: %s", line.Error)
		}
		idx, _ := line.Result.Index.Int64()
		msgs = append(msgs, &ccv1.SaveSnapshotResponse{Index: uint64(idx), Sha256: line.Result.Sha256, Data: line.Result.Data})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	_, data := checkSnapshotMessages(t, msgs)
	if ids := boltTokens(t, data); !ids[viewer.GetToken().GetId()] {
		t.Fatalf("REST snapshot holds tokens %v, not %s", ids, viewer.GetToken().GetId())
	}
}

// fakeSnapshotStream collects what SaveSnapshot sends.
type fakeSnapshotStream struct {
	grpc.ServerStream
	msgs []*ccv1.SaveSnapshotResponse
	fail int // fail the Send of this message number (1-based), 0: never
}

func (f *fakeSnapshotStream) Context() context.Context { return context.Background() }

func (f *fakeSnapshotStream) Send(m *ccv1.SaveSnapshotResponse) error {
	if f.fail == len(f.msgs)+1 {
		return status.Error(codes.Canceled, "client went away")
	}
	f.msgs = append(f.msgs, m)
	return nil
}

// bigFSM is a state database of several MiB: random padding in a bucket of
// its own, which the state machine ignores and a snapshot copies.
func bigFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("padding"))
		if err != nil {
			return err
		}
		for i := range 40 {
			v := make([]byte, 64<<10)
			rand.Read(v)
			if err := b.Put([]byte{byte(i)}, v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsm.Open(path, logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSaveSnapshotChunks(t *testing.T) {
	f := bigFSM(t)
	var want bytes.Buffer
	wantIndex, err := f.WriteSnapshot(&want)
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewClusterService(&api.Core{FSM: f, Log: logging.Test(t)}, "")

	stream := &fakeSnapshotStream{}
	if err := s.SaveSnapshot(&ccv1.SaveSnapshotRequest{}, stream); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if len(stream.msgs) < 3 {
		t.Fatalf("%d messages for %d bytes, want several chunks", len(stream.msgs), want.Len())
	}
	// The FSM has applied nothing: index 0 is right here, so check the
	// framing on a copy that claims an index.
	if stream.msgs[0].GetIndex() != wantIndex {
		t.Fatalf("first message index %d, want %d", stream.msgs[0].GetIndex(), wantIndex)
	}
	stream.msgs[0].Index = 1
	_, data := checkSnapshotMessages(t, stream.msgs)
	if !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("streamed %d bytes that differ from WriteSnapshot's %d", len(data), want.Len())
	}

	// A client that goes away ends the call with its error.
	stream = &fakeSnapshotStream{fail: 2}
	if err := s.SaveSnapshot(&ccv1.SaveSnapshotRequest{}, stream); status.Code(err) != codes.Canceled {
		t.Fatalf("SaveSnapshot to a failing stream: %v, want the stream's error", err)
	}
}
