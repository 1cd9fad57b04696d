package fsm_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containercodes/cc/controlplane/fsm"
)

// The state database is written without an fsync per commit. A crash of the
// process keeps what it applied (the kernel still has the pages); a restart
// of the host with the database open sets it aside, and the state starts
// empty, to be rebuilt from the raft snapshot and log. A clean close syncs
// and a later boot keeps the database.
func TestStateAfterCrashAndAfterHostRestart(t *testing.T) {
	defer fsm.SetBootID("boot-1")()
	path := filepath.Join(t.TempDir(), "state.db")
	f := openAt(t, path)
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	f.Abandon() // the process is killed

	f = openAt(t, path)
	if got := f.AppliedIndex(); got != 2 {
		t.Fatalf("after a crash of the process: applied index %d, want 2", got)
	}
	if ids := tokenIDs(t, f); !reflect.DeepEqual(ids, []string{"t1"}) {
		t.Fatalf("after a crash of the process: tokens %v, want [t1]", ids)
	}
	mustApply(t, f, 3, createCmd(t, "t2"))
	f.Abandon() // and then the host goes down

	fsm.SetBootID("boot-2")
	f = openAt(t, path)
	if got := f.AppliedIndex(); got != 0 {
		t.Fatalf("after the host restarted: applied index %d, want 0 (state rebuilt from raft)", got)
	}
	if ids := tokenIDs(t, f); len(ids) != 0 {
		t.Fatalf("after the host restarted: tokens %v, want none", ids)
	}
	if _, err := os.Stat(path + ".unsynced"); err != nil {
		t.Fatalf("the old database was not set aside: %v", err)
	}
	mustApply(t, f, 1, initCmd(t, "c1"))
	mustApply(t, f, 2, createCmd(t, "t1"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".open"); !os.IsNotExist(err) {
		t.Fatalf("marker after a clean close: %v, want none", err)
	}

	fsm.SetBootID("boot-3")
	f = openAt(t, path)
	if got := f.AppliedIndex(); got != 2 {
		t.Fatalf("after a clean close and a new boot: applied index %d, want 2", got)
	}
}
