package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/jobs"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// uidMap parses the first line of a /proc/<pid>/uid_map: inside, host,
// size.
func uidMap(t *testing.T, s string) (inside, host, size uint64) {
	t.Helper()
	f := strings.Fields(s)
	if len(f) < 3 {
		t.Fatalf("uid_map %q", s)
	}
	var err error
	for i, p := range []*uint64{&inside, &host, &size} {
		if *p, err = strconv.ParseUint(f[i], 10, 64); err != nil {
			t.Fatalf("uid_map %q: %v", s, err)
		}
	}
	return inside, host, size
}

// TestSandboxUserNamespace: uid 0 in a job sandbox is uid 0 inside only;
// on the host it is an id of the sandbox's private range, which is where
// its /output files belong too, and two sandboxes at once get different
// ranges.
func TestSandboxUserNamespace(t *testing.T) {
	r, _ := newTestRuntime(t)
	run := func() (id string, host uint64) {
		s := sandboxSpec("/bin/sh", "-c", `{ id -u; head -n1 /proc/self/uid_map; head -n1 /proc/self/gid_map; } >/output/f; mv /output/f /output/ids; sleep 1000`)
		s.User = "0"
		id = startTask(t, r, Task{Spec: s})
		waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
		f := filepath.Join(r.JobDir(id), jobOutputDir, "ids")
		var b []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if b, err = os.ReadFile(f); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "0" {
			t.Fatalf("the job wrote %q, want uid 0 and the id maps", b)
		}
		in, host, size := uidMap(t, lines[1])
		if in != 0 || host == 0 || size != UsernsSize {
			t.Errorf("uid_map %q: want 0 mapped to a non-zero host id, %d ids", lines[1], UsernsSize)
		}
		if gin, ghost, _ := uidMap(t, lines[2]); gin != 0 || ghost != host {
			t.Errorf("gid_map %q, uid_map %q", lines[2], lines[1])
		}
		// The file the job wrote is owned by its mapped root on the host.
		st, err := os.Lstat(f)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid == 0 || uint64(sys.Uid) != host || uint64(sys.Gid) != host {
			t.Errorf("/output/ids is owned by %d:%d on the host, want %d:%d (the sandbox's root)", sys.Uid, sys.Gid, host, host)
		}
		return id, host
	}
	id1, host1 := run()
	id2, host2 := run()
	if host1 == host2 || max(host1, host2)-min(host1, host2) < UsernsSize {
		t.Errorf("two sandboxes share ids: ranges from %d and %d", host1, host2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Collection reads the host directory as before.
	if err := r.Stop(ctx, id1, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, id1, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if p, err := r.CollectOutput(ctx, id1, jobs.Limits{}); err != nil || p.Files != 1 {
		t.Errorf("collect: %+v, %v", p, err)
	}
	// A new runtime (an agent restart) does not hand out the range of a
	// sandbox that still exists.
	used, err := r.usedUsernsRanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !used[uint32(host1)] || !used[uint32(host2)] {
		t.Errorf("ranges in use %v, want %d and %d", used, host1, host2)
	}
	for _, id := range []string{id1, id2} {
		if err := r.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
