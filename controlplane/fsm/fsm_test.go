package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/logging"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// t0 carries nanoseconds so that a truncated timestamp would be noticed.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// ---- helpers ----

func openAt(t *testing.T, path string) *fsm.FSM {
	t.Helper()
	f, err := fsm.Open(path, logging.Test(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func newFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "state.db"))
}

func entry(idx uint64, data []byte) *raft.Log {
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func asResult(t *testing.T, v interface{}, idx uint64) fsm.Result {
	t.Helper()
	r, ok := v.(fsm.Result)
	if !ok {
		t.Fatalf("entry %d: result is %T, want fsm.Result", idx, v)
	}
	if r.Index != idx {
		t.Fatalf("entry %d: Result.Index = %d", idx, r.Index)
	}
	return r
}

// apply applies one entry and returns its result's error.
func apply(t *testing.T, f *fsm.FSM, idx uint64, data []byte) error {
	t.Helper()
	return asResult(t, f.Apply(entry(idx, data)), idx).Err
}

// mustApply applies one entry that must succeed.
func mustApply(t *testing.T, f *fsm.FSM, idx uint64, data []byte) {
	t.Helper()
	if err := apply(t, f, idx, data); err != nil {
		t.Fatalf("apply %d: %v", idx, err)
	}
}

func encode(t *testing.T, typ statev1.CommandType, msg proto.Message, at time.Time) []byte {
	t.Helper()
	data, err := fsm.Encode(typ, msg, at)
	if err != nil {
		t.Fatalf("Encode(%v): %v", typ, err)
	}
	return data
}

func rawCommand(t *testing.T, cmd *statev1.Command) []byte {
	t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatalf("marshal command: %v", err)
	}
	return data
}

func initMsg(id string) *statev1.InitCluster {
	return &statev1.InitCluster{ClusterId: id, CaCertPem: []byte("cert-" + id), CaKeyPem: []byte("key-" + id)}
}

func initCmd(t *testing.T, id string) []byte {
	return encode(t, statev1.CommandType_COMMAND_TYPE_INIT_CLUSTER, initMsg(id), t0)
}

func tokenRec(id string, role ccv1.Role) *statev1.TokenRecord {
	sum := sha256.Sum256([]byte("secret-" + id))
	return &statev1.TokenRecord{Id: id, Role: int32(role), Description: "token " + id, SecretSha256: sum[:]}
}

func createCmdAt(t *testing.T, rec *statev1.TokenRecord, at time.Time) []byte {
	return encode(t, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: rec}, at)
}

func createCmd(t *testing.T, id string) []byte {
	return createCmdAt(t, tokenRec(id, ccv1.Role_ROLE_ADMIN), t0)
}

func revokeCmd(t *testing.T, id string) []byte {
	return encode(t, statev1.CommandType_COMMAND_TYPE_REVOKE_TOKEN, &statev1.RevokeToken{Id: id}, t0)
}

// dump returns every bucket's contents as bucket -> key -> hex(value).
func dump(t *testing.T, f *fsm.FSM) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	err := f.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = hex.EncodeToString(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}

// dumpData is dump without the meta bucket, which holds the applied index:
// the part of the state a command changes.
func dumpData(t *testing.T, f *fsm.FSM) map[string]map[string]string {
	t.Helper()
	d := dump(t, f)
	if _, ok := d["meta"]; !ok {
		t.Fatalf("no meta bucket in %v", d)
	}
	delete(d, "meta")
	return d
}

func sameState(t *testing.T, what string, got, want map[string]map[string]string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: state differs\n got: %v\nwant: %v", what, got, want)
	}
}

func tokenIDs(t *testing.T, f *fsm.FSM) []string {
	t.Helper()
	toks, err := f.Tokens()
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	ids := []string{}
	for _, tok := range toks {
		ids = append(ids, tok.Id)
	}
	return ids
}

// memSink is a raft.SnapshotSink over a buffer.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

func takeSnapshot(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	sink := &memSink{}
	err = snap.Persist(sink)
	snap.Release()
	if err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed and not cancelled", sink.closed, sink.cancelled)
	}
	if sink.Len() == 0 {
		t.Fatal("snapshot is empty")
	}
	return sink.Bytes()
}

// ---- commands ----

func TestInitCluster(t *testing.T) {
	tests := []struct {
		name    string
		msg     *statev1.InitCluster
		wantErr error
	}{
		{"ok", initMsg("c1"), nil},
		{"no cluster id", &statev1.InitCluster{CaCertPem: []byte("c"), CaKeyPem: []byte("k")}, fsm.ErrInvalid},
		{"no ca cert", &statev1.InitCluster{ClusterId: "c1", CaKeyPem: []byte("k")}, fsm.ErrInvalid},
		{"no ca key", &statev1.InitCluster{ClusterId: "c1", CaCertPem: []byte("c")}, fsm.ErrInvalid},
		{"empty", &statev1.InitCluster{}, fsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			err := apply(t, f, 1, encode(t, statev1.CommandType_COMMAND_TYPE_INIT_CLUSTER, tt.msg, t0))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if _, err := f.Cluster(); !errors.Is(err, fsm.ErrNotInitialized) {
					t.Fatalf("Cluster after refused init: err = %v, want ErrNotInitialized", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("init: %v", err)
			}
			got, err := f.Cluster()
			if err != nil {
				t.Fatalf("Cluster: %v", err)
			}
			want := &statev1.ClusterRecord{ClusterId: tt.msg.ClusterId, CaCertPem: tt.msg.CaCertPem, CaKeyPem: tt.msg.CaKeyPem, CreatedAt: timestamppb.New(t0)}
			if !proto.Equal(got, want) {
				t.Fatalf("Cluster = %v, want %v", got, want)
			}
		})
	}
}

func TestInitClusterTwiceRefused(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, initCmd(t, "first"))
	before := dumpData(t, f)
	if err := apply(t, f, 2, initCmd(t, "second")); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("second init: err = %v, want ErrExists", err)
	}
	sameState(t, "after second init", dumpData(t, f), before)
	c, err := f.Cluster()
	if err != nil || c.ClusterId != "first" {
		t.Fatalf("Cluster = %v, %v; want cluster first", c, err)
	}
	if got := f.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex = %d, want 2", got)
	}
}

func TestCreateToken(t *testing.T) {
	f := newFSM(t)
	issued := t0.Add(90 * time.Minute)
	rec := tokenRec("b-admin", ccv1.Role_ROLE_ADMIN)
	rec.ExpiresAt = timestamppb.New(t0.Add(24 * time.Hour))
	// The proposer's created_at and revoked must be overridden by the FSM.
	rec.CreatedAt = timestamppb.New(t0.Add(-time.Hour))
	rec.Revoked = true
	mustApply(t, f, 1, createCmdAt(t, rec, issued))
	mustApply(t, f, 2, createCmdAt(t, tokenRec("a-viewer", ccv1.Role_ROLE_VIEWER), issued))

	got, err := f.Token("b-admin")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	want := proto.Clone(rec).(*statev1.TokenRecord)
	want.CreatedAt = timestamppb.New(issued)
	want.Revoked = false
	if !proto.Equal(got, want) {
		t.Fatalf("Token = %v\nwant %v", got, want)
	}
	if !got.CreatedAt.AsTime().Equal(issued) {
		t.Fatalf("CreatedAt = %v, want %v", got.CreatedAt.AsTime(), issued)
	}

	toks, err := f.Tokens()
	if err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	if len(toks) != 2 || toks[0].Id != "a-viewer" || toks[1].Id != "b-admin" {
		t.Fatalf("Tokens = %v, want a-viewer then b-admin", toks)
	}
	if !proto.Equal(toks[1], want) {
		t.Fatalf("Tokens()[1] = %v, want %v", toks[1], want)
	}
	if toks[0].Role != int32(ccv1.Role_ROLE_VIEWER) || !toks[0].CreatedAt.AsTime().Equal(issued) {
		t.Fatalf("Tokens()[0] = %v", toks[0])
	}
}

func TestCreateTokenRefused(t *testing.T) {
	withHash := func(n int) *statev1.TokenRecord {
		r := tokenRec("t2", ccv1.Role_ROLE_ADMIN)
		r.SecretSha256 = bytes.Repeat([]byte{7}, n)
		return r
	}
	withRole := func(role int32) *statev1.TokenRecord {
		r := tokenRec("t2", ccv1.Role_ROLE_ADMIN)
		r.Role = role
		return r
	}
	// A duplicate that differs from t1 in every field.
	impostor := tokenRec("t1", ccv1.Role_ROLE_VIEWER)
	impostor.Description = "impostor"
	impostor.SecretSha256 = bytes.Repeat([]byte{9}, 32)
	tests := []struct {
		name    string
		payload *statev1.CreateToken
		wantErr error
	}{
		{"duplicate id", &statev1.CreateToken{Token: impostor}, fsm.ErrExists},
		{"no token", &statev1.CreateToken{}, fsm.ErrInvalid},
		{"empty id", &statev1.CreateToken{Token: tokenRec("", ccv1.Role_ROLE_ADMIN)}, fsm.ErrInvalid},
		{"no hash", &statev1.CreateToken{Token: withHash(0)}, fsm.ErrInvalid},
		{"short hash", &statev1.CreateToken{Token: withHash(31)}, fsm.ErrInvalid},
		{"long hash", &statev1.CreateToken{Token: withHash(33)}, fsm.ErrInvalid},
		{"unspecified role", &statev1.CreateToken{Token: withRole(int32(ccv1.Role_ROLE_UNSPECIFIED))}, fsm.ErrInvalid},
		{"unknown role", &statev1.CreateToken{Token: withRole(99)}, fsm.ErrInvalid},
		{"negative role", &statev1.CreateToken{Token: withRole(-1)}, fsm.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, 1, createCmd(t, "t1"))
			before := dumpData(t, f)
			err := apply(t, f, 2, encode(t, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, tt.payload, t0.Add(time.Hour)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			sameState(t, "after refused create", dumpData(t, f), before)
			if got := f.AppliedIndex(); got != 2 {
				t.Fatalf("AppliedIndex = %d, want 2", got)
			}
		})
	}
}

func TestRevokeToken(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, createCmd(t, "t1"))
	mustApply(t, f, 2, createCmd(t, "t2"))
	want, err := f.Token("t1")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if want.Revoked {
		t.Fatal("new token is revoked")
	}

	mustApply(t, f, 3, revokeCmd(t, "t1"))
	got, err := f.Token("t1")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	want.Revoked = true
	if !proto.Equal(got, want) {
		t.Fatalf("revoked token = %v, want %v", got, want)
	}
	if other, err := f.Token("t2"); err != nil || other.Revoked {
		t.Fatalf("t2 = %v, %v; want not revoked", other, err)
	}

	// Revoking twice is fine and changes nothing.
	before := dumpData(t, f)
	mustApply(t, f, 4, revokeCmd(t, "t1"))
	sameState(t, "after second revoke", dumpData(t, f), before)

	// Unknown id.
	for i, id := range []string{"nope", ""} {
		idx := uint64(5 + i)
		if err := apply(t, f, idx, revokeCmd(t, id)); !errors.Is(err, fsm.ErrNotFound) {
			t.Fatalf("revoke %q: err = %v, want ErrNotFound", id, err)
		}
		sameState(t, "after revoke of unknown id", dumpData(t, f), before)
		if _, err := f.Token(id); !errors.Is(err, fsm.ErrNotFound) {
			t.Fatalf("Token(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	if got := f.AppliedIndex(); got != 6 {
		t.Fatalf("AppliedIndex = %d, want 6", got)
	}
}

// ---- entries the FSM cannot apply ----

func TestRejectedEntries(t *testing.T) {
	goodPayload, err := proto.Marshal(&statev1.CreateToken{Token: tokenRec("x", ccv1.Role_ROLE_ADMIN)})
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(typ statev1.CommandType, version uint32, payload []byte) *statev1.Command {
		return &statev1.Command{Type: typ, Version: version, IssuedAt: timestamppb.New(t0), Payload: payload}
	}
	create := statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN
	tests := []struct {
		name    string
		data    func(t *testing.T) []byte
		wantErr error
	}{
		{"unknown type 99", func(t *testing.T) []byte {
			return rawCommand(t, cmd(statev1.CommandType(99), 1, goodPayload))
		}, fsm.ErrUnknownCommand},
		{"unspecified type", func(t *testing.T) []byte {
			return rawCommand(t, cmd(statev1.CommandType_COMMAND_TYPE_UNSPECIFIED, 1, goodPayload))
		}, fsm.ErrUnknownCommand},
		{"version too new", func(t *testing.T) []byte {
			return rawCommand(t, cmd(create, 2, goodPayload))
		}, fsm.ErrUnsupportedVersion},
		{"version 0", func(t *testing.T) []byte {
			return rawCommand(t, cmd(create, 0, goodPayload))
		}, fsm.ErrUnsupportedVersion},
		{"undecodable entry", func(t *testing.T) []byte {
			return []byte{0xff, 0xff, 0xff, 0xff, 0xff}
		}, fsm.ErrInvalid},
		{"undecodable payload", func(t *testing.T) []byte {
			return rawCommand(t, cmd(create, 1, []byte{0x0a, 0x7f, 0x01}))
		}, fsm.ErrInvalid},
		{"empty entry", func(t *testing.T) []byte { return nil }, fsm.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			mustApply(t, f, 1, initCmd(t, "c1"))
			mustApply(t, f, 2, createCmd(t, "t1"))
			before := dumpData(t, f)

			if err := apply(t, f, 3, tt.data(t)); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := f.AppliedIndex(); got != 3 {
				t.Fatalf("AppliedIndex = %d, want 3", got)
			}
			sameState(t, "after rejected entry", dumpData(t, f), before)

			// The FSM still works afterwards.
			mustApply(t, f, 4, createCmd(t, "t2"))
			if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t1", "t2"}) {
				t.Fatalf("tokens = %v, want [t1 t2]", ids)
			}
		})
	}
}

func TestEncodeUnknownType(t *testing.T) {
	_, err := fsm.Encode(statev1.CommandType(99), &statev1.RevokeToken{Id: "x"}, t0)
	if !errors.Is(err, fsm.ErrUnknownCommand) {
		t.Fatalf("Encode(99): err = %v, want ErrUnknownCommand", err)
	}
}

func TestNonCommandEntriesAdvanceIndex(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, createCmd(t, "t1"))
	before := dumpData(t, f)
	l := &raft.Log{Index: 2, Term: 1, Type: raft.LogNoop}
	if r := asResult(t, f.Apply(l), 2); r.Err != nil {
		t.Fatalf("noop: %v", r.Err)
	}
	if got := f.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex = %d, want 2", got)
	}
	sameState(t, "after noop", dumpData(t, f), before)
}

// ---- batches, replay, persistence ----

func TestApplyBatchMixed(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, createCmd(t, "t0"))
	logs := []*raft.Log{
		entry(2, createCmd(t, "t1")),
		entry(3, createCmd(t, "t0")), // duplicate: refused
		entry(4, revokeCmd(t, "missing")),
		entry(5, createCmd(t, "t2")),
	}
	wantErrs := []error{nil, fsm.ErrExists, fsm.ErrNotFound, nil}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("ApplyBatch returned %d results, want %d", len(out), len(logs))
	}
	for i, v := range out {
		r := asResult(t, v, logs[i].Index)
		if wantErrs[i] == nil && r.Err != nil || !errors.Is(r.Err, wantErrs[i]) {
			t.Fatalf("result %d: err = %v, want %v", i, r.Err, wantErrs[i])
		}
	}
	if got := f.AppliedIndex(); got != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", got)
	}
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t0", "t1", "t2"}) {
		t.Fatalf("tokens = %v, want [t0 t1 t2]", ids)
	}

	// The refused duplicate left no trace: t0 is exactly as first created.
	ref := newFSM(t)
	mustApply(t, ref, 1, createCmd(t, "t0"))
	mustApply(t, ref, 2, createCmd(t, "t1"))
	mustApply(t, ref, 3, createCmd(t, "t2"))
	sameState(t, "batch vs single applies", dumpData(t, f), dumpData(t, ref))
}

func TestApplyBatchEmpty(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, createCmd(t, "t1"))
	if out := f.ApplyBatch(nil); len(out) != 0 {
		t.Fatalf("ApplyBatch(nil) = %v", out)
	}
	if got := f.AppliedIndex(); got != 1 {
		t.Fatalf("AppliedIndex = %d, want 1", got)
	}
}

func TestReplaySkipped(t *testing.T) {
	f := newFSM(t)
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	mustApply(t, f, 3, createCmd(t, "t2"))
	before := dump(t, f)

	// Index 2 again, with a different command that would succeed.
	if err := apply(t, f, 2, createCmd(t, "t3")); err != nil {
		t.Fatalf("replayed entry: err = %v, want nil", err)
	}
	// Index 3 again with one that would fail.
	if err := apply(t, f, 3, revokeCmd(t, "missing")); err != nil {
		t.Fatalf("replayed entry: err = %v, want nil", err)
	}
	// Index 1 again with one that would change the state.
	if err := apply(t, f, 1, revokeCmd(t, "t1")); err != nil {
		t.Fatalf("replayed entry: err = %v, want nil", err)
	}
	sameState(t, "after replay", dump(t, f), before)
	if got := f.AppliedIndex(); got != 3 {
		t.Fatalf("AppliedIndex = %d, want 3", got)
	}

	// A batch straddling the applied index applies only the new part.
	out := f.ApplyBatch([]*raft.Log{entry(3, createCmd(t, "skipped")), entry(4, createCmd(t, "t4"))})
	for i, v := range out {
		if r := asResult(t, v, uint64(3+i)); r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t1", "t2", "t4"}) {
		t.Fatalf("tokens = %v, want [t1 t2 t4]", ids)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Fatalf("AppliedIndex = %d, want 4", got)
	}
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f := openAt(t, path)
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	mustApply(t, f, 3, revokeCmd(t, "t1"))
	if err := apply(t, f, 4, createCmd(t, "t1")); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("dup create: err = %v", err)
	}
	before := dump(t, f)
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	g := openAt(t, path)
	if got := g.AppliedIndex(); got != 4 {
		t.Fatalf("AppliedIndex after reopen = %d, want 4", got)
	}
	sameState(t, "after reopen", dump(t, g), before)
	if c, err := g.Cluster(); err != nil || c.ClusterId != "c1" {
		t.Fatalf("Cluster = %v, %v", c, err)
	}
	if tok, err := g.Token("t1"); err != nil || !tok.Revoked {
		t.Fatalf("Token t1 = %v, %v; want revoked", tok, err)
	}
	// Replayed entries are still skipped after the reopen.
	if err := apply(t, g, 4, createCmd(t, "t9")); err != nil {
		t.Fatalf("replayed entry: %v", err)
	}
	sameState(t, "after replay past reopen", dump(t, g), before)
	mustApply(t, g, 5, createCmd(t, "t9"))
	if got := g.AppliedIndex(); got != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", got)
	}
}

// ---- snapshot and restore ----

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := openAt(t, filepath.Join(dir, "state.db"))
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	mustApply(t, f, 3, createCmd(t, "t2"))
	mustApply(t, f, 4, revokeCmd(t, "t1"))
	atSnap := dump(t, f)
	snap := takeSnapshot(t, f)

	mustApply(t, f, 5, createCmd(t, "later"))
	mustApply(t, f, 6, revokeCmd(t, "t2"))
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"later", "t1", "t2"}) {
		t.Fatalf("tokens before restore = %v", ids)
	}

	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Fatalf("AppliedIndex after restore = %d, want 4", got)
	}
	sameState(t, "after restore", dump(t, f), atSnap)
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t1", "t2"}) {
		t.Fatalf("tokens after restore = %v, want [t1 t2]", ids)
	}
	if tok, err := f.Token("t2"); err != nil || tok.Revoked {
		t.Fatalf("t2 = %v, %v; want not revoked", tok, err)
	}
	if c, err := f.Cluster(); err != nil || c.ClusterId != "c1" {
		t.Fatalf("Cluster = %v, %v", c, err)
	}
	if entries, err := stateFiles(dir); err != nil || len(entries) != 1 {
		t.Fatalf("files beside the database after restore: %v, %v; want only state.db", entries, err)
	}

	// The FSM goes on from the snapshot's index.
	mustApply(t, f, 5, createCmd(t, "later"))
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"later", "t1", "t2"}) {
		t.Fatalf("tokens = %v", ids)
	}
	if got := f.AppliedIndex(); got != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", got)
	}
}

func TestRestoreIntoFreshFSM(t *testing.T) {
	src := newFSM(t)
	mustApply(t, src, 1, initCmd(t, "c1"))
	mustApply(t, src, 2, createCmdAt(t, tokenRec("t1", ccv1.Role_ROLE_VIEWER), t0.Add(time.Minute)))
	mustApply(t, src, 3, createCmd(t, "t2"))
	mustApply(t, src, 4, revokeCmd(t, "t2"))
	snap := takeSnapshot(t, src)

	dir := t.TempDir()
	path := filepath.Join(dir, "other.db")
	dst := openAt(t, path)
	if _, err := dst.Cluster(); !errors.Is(err, fsm.ErrNotInitialized) {
		t.Fatalf("fresh Cluster: err = %v", err)
	}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dst.AppliedIndex(); got != 4 {
		t.Fatalf("AppliedIndex = %d, want 4", got)
	}
	sameState(t, "restored copy", dump(t, dst), dump(t, src))
	srcToks, _ := src.Tokens()
	dstToks, err := dst.Tokens()
	if err != nil || len(dstToks) != len(srcToks) {
		t.Fatalf("Tokens = %v, %v; want %v", dstToks, err, srcToks)
	}
	for i := range srcToks {
		if !proto.Equal(dstToks[i], srcToks[i]) {
			t.Fatalf("token %d = %v, want %v", i, dstToks[i], srcToks[i])
		}
	}
	srcC, _ := src.Cluster()
	dstC, err := dst.Cluster()
	if err != nil || !proto.Equal(dstC, srcC) {
		t.Fatalf("Cluster = %v, %v; want %v", dstC, err, srcC)
	}
	entries, err := stateFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0] != "other.db" {
		t.Fatalf("files beside the database = %v, want only other.db", entries)
	}

	// The restored state persists across a reopen.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	again := openAt(t, path)
	if got := again.AppliedIndex(); got != 4 {
		t.Fatalf("AppliedIndex after reopen = %d, want 4", got)
	}
	sameState(t, "restored copy reopened", dump(t, again), dump(t, src))
}

// boltWithout writes a valid bbolt file that is not a state database: it has
// a bucket, but no meta bucket.
func boltWithout(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("tokens"))
		if err != nil {
			return err
		}
		return b.Put([]byte("evil"), []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRestoreGarbage(t *testing.T) {
	tests := []struct {
		name string
		data func(t *testing.T) []byte
	}{
		{"short garbage", func(*testing.T) []byte { return []byte("this is not a bbolt database") }},
		{"page-sized garbage", func(*testing.T) []byte { return bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, 4096) }},
		{"empty", func(*testing.T) []byte { return nil }},
		{"bbolt without meta bucket", boltWithout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := openAt(t, filepath.Join(dir, "state.db"))
			mustApply(t, f, 1, initCmd(t, "c1"))
			mustApply(t, f, 2, createCmd(t, "t1"))
			before := dump(t, f)

			if err := f.Restore(io.NopCloser(bytes.NewReader(tt.data(t)))); err == nil {
				t.Fatal("Restore of garbage: err = nil")
			}
			if got := f.AppliedIndex(); got != 2 {
				t.Fatalf("AppliedIndex = %d, want 2", got)
			}
			sameState(t, "after failed restore", dump(t, f), before)
			entries, err := stateFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("%d files beside the database after a failed restore, want 1", len(entries))
			}

			// Still works.
			mustApply(t, f, 3, createCmd(t, "t2"))
			mustApply(t, f, 4, revokeCmd(t, "t1"))
			if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t1", "t2"}) {
				t.Fatalf("tokens = %v", ids)
			}
			if tok, err := f.Token("t1"); err != nil || !tok.Revoked {
				t.Fatalf("t1 = %v, %v; want revoked", tok, err)
			}
			if got := f.AppliedIndex(); got != 4 {
				t.Fatalf("AppliedIndex = %d, want 4", got)
			}
			takeSnapshot(t, f)
		})
	}
}

// ---- reads on a fresh FSM ----

func TestFreshFSMReads(t *testing.T) {
	f := newFSM(t)
	nodes, err := f.Nodes()
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if len(nodes) != 0 {
		t.Fatalf("Nodes = %v, want empty", nodes)
	}
	toks, err := f.Tokens()
	if err != nil || len(toks) != 0 {
		t.Fatalf("Tokens = %v, %v; want empty", toks, err)
	}
	if c, err := f.Cluster(); !errors.Is(err, fsm.ErrNotInitialized) || c != nil {
		t.Fatalf("Cluster = %v, %v; want nil, ErrNotInitialized", c, err)
	}
	if _, err := f.Token("x"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("Token(x): err = %v, want ErrNotFound", err)
	}
	if got := f.AppliedIndex(); got != 0 {
		t.Fatalf("AppliedIndex = %d, want 0", got)
	}
}

// stateFiles lists the files in dir but the marker of an open state
// database (name.open).
func stateFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".open") {
			names = append(names, e.Name())
		}
	}
	return names, err
}
