package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/containercodes/cc/controlplane/fsm"
)

// backupOf returns a backup written by WriteSnapshot, in a file.
func backupOf(t *testing.T, f *fsm.FSM) (path string, index uint64) {
	t.Helper()
	var buf bytes.Buffer
	index, err := f.WriteSnapshot(&buf)
	if err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	path = filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, index
}

// populated is an FSM with a cluster and tokens t1, t2 (t1 revoked), at
// applied index 4.
func populated(t *testing.T) *fsm.FSM {
	t.Helper()
	f := newFSM(t)
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	mustApply(t, f, 3, createCmd(t, "t2"))
	mustApply(t, f, 4, revokeCmd(t, "t1"))
	return f
}

func TestWriteSnapshotIsACopy(t *testing.T) {
	src := populated(t)
	path, index := backupOf(t, src)
	if index != 4 {
		t.Fatalf("WriteSnapshot index = %d, want 4", index)
	}
	cp := openAt(t, path)
	if got := cp.AppliedIndex(); got != 4 {
		t.Fatalf("copy's AppliedIndex = %d, want 4", got)
	}
	sameState(t, "backup", dump(t, cp), dump(t, src))
}

func TestSnapshotTxIsConsistent(t *testing.T) {
	f := populated(t)
	want := dump(t, f)
	snap, err := f.BeginSnapshot()
	if err != nil {
		t.Fatalf("BeginSnapshot: %v", err)
	}
	defer snap.Close()
	// Writes after the snapshot began are not in it.
	mustApply(t, f, 5, createCmd(t, "t3"))
	mustApply(t, f, 6, revokeCmd(t, "t2"))
	if snap.Index() != 4 {
		t.Fatalf("Index = %d, want 4", snap.Index())
	}
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) || n != snap.Size() {
		t.Fatalf("WriteTo wrote %d bytes (buffer %d), Size says %d", n, buf.Len(), snap.Size())
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sameState(t, "snapshot begun before two writes", dump(t, openAt(t, path)), want)
	if got := f.AppliedIndex(); got != 6 {
		t.Fatalf("live AppliedIndex = %d, want 6", got)
	}
}

func TestWriteSnapshotClosed(t *testing.T) {
	f := populated(t)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteSnapshot(&bytes.Buffer{}); err == nil {
		t.Fatal("WriteSnapshot on a closed FSM: err = nil")
	}
}

// addServers puts records in a servers bucket of the bbolt file at path.
func addServers(t *testing.T, path string, ids ...string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("servers"))
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.Put([]byte(id), []byte("record of "+id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func TestPrepareRestore(t *testing.T) {
	src := populated(t)
	want := dumpData(t, src)
	backup, _ := backupOf(t, src)
	addServers(t, backup, "s-old1", "s-old2")
	before := fileSum(t, backup)

	info, err := fsm.InspectSnapshot(backup)
	if err != nil {
		t.Fatalf("InspectSnapshot: %v", err)
	}
	if info.Index != 4 || info.ClusterID != "c1" || info.Tokens != 2 || info.Nodes != 0 {
		t.Fatalf("InspectSnapshot = %+v, want index 4, cluster c1, 2 tokens, no nodes", info)
	}

	dst := filepath.Join(t.TempDir(), "state.db")
	info, err = fsm.PrepareRestoreInfo(backup, dst)
	if err != nil {
		t.Fatalf("PrepareRestore: %v", err)
	}
	if info.Index != 4 || info.ClusterID != "c1" {
		t.Fatalf("PrepareRestoreInfo = %+v, want the backup's index 4 and cluster c1", info)
	}
	if fileSum(t, backup) != before {
		t.Fatal("PrepareRestore changed the backup")
	}
	if _, err := os.Stat(dst + ".restore"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}

	f := openAt(t, dst)
	if got := f.AppliedIndex(); got != 0 {
		t.Fatalf("restored AppliedIndex = %d, want 0", got)
	}
	got := dumpData(t, f)
	if servers, ok := got["servers"]; !ok || len(servers) != 0 {
		t.Fatalf("servers bucket after restore = %v (present %v), want present and empty", servers, ok)
	}
	delete(got, "servers")
	delete(want, "servers")
	sameState(t, "restored state", got, want)
	cl, err := f.Cluster()
	if err != nil || cl.ClusterId != "c1" {
		t.Fatalf("Cluster = %v, %v; want c1", cl, err)
	}

	// The new raft log starts at 1: no entry is skipped.
	mustApply(t, f, 1, createCmd(t, "t-new"))
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t-new", "t1", "t2"}) {
		t.Fatalf("tokens after the first new entry = %v", ids)
	}
	if got := f.AppliedIndex(); got != 1 {
		t.Fatalf("AppliedIndex = %d, want 1", got)
	}
}

func TestPrepareRestoreWithoutServersBucket(t *testing.T) {
	backup, _ := backupOf(t, populated(t))
	db, err := bolt.Open(backup, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("servers")) == nil {
			return nil
		}
		return tx.DeleteBucket([]byte("servers"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "state.db")
	if err := fsm.PrepareRestore(backup, dst); err != nil {
		t.Fatalf("PrepareRestore of a backup without a servers bucket: %v", err)
	}
	if ids := tokenIDs(t, openAt(t, dst)); !reflect.DeepEqual(ids, []string{"t1", "t2"}) {
		t.Fatalf("tokens = %v", ids)
	}
}

func TestPrepareRestoreRefuses(t *testing.T) {
	write := func(t *testing.T, data []byte) string {
		path := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		src  func(t *testing.T) string
		want string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.db") }, "no such file"},
		{"garbage", func(t *testing.T) string { return write(t, []byte("this is not a bbolt database")) }, "not a state snapshot"},
		{"page-sized garbage", func(t *testing.T) string { return write(t, bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, 4096)) }, "not"},
		{"empty", func(t *testing.T) string { return write(t, nil) }, "not"},
		{"bbolt without meta bucket", func(t *testing.T) string { return write(t, boltWithout(t)) }, "no meta bucket"},
		{"state before bootstrap", func(t *testing.T) string { p, _ := backupOf(t, newFSM(t)); return p }, "no cluster record"},
		{"a directory", func(t *testing.T) string { return t.TempDir() }, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src(t)
			dir := t.TempDir()
			dst := filepath.Join(dir, "state.db")
			err := fsm.PrepareRestore(src, dst)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("PrepareRestore = %v, want an error with %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("PrepareRestore left %d files in the data dir", len(entries))
			}
		})
	}

	t.Run("existing destination", func(t *testing.T) {
		backup, _ := backupOf(t, populated(t))
		dst := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(dst, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := fsm.PrepareRestore(backup, dst); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("PrepareRestore over an existing file = %v, want an error saying it exists", err)
		}
		if data, _ := os.ReadFile(dst); string(data) != "mine" {
			t.Fatalf("the existing file was changed: %q", data)
		}
	})
}
