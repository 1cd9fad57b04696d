package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestStatsMove runs a container that fills 24 MiB of /dev/shm (memory
// charged to its cgroup) and then spins: its memory reaches that much, its
// CPU time grows from one sample to the next, and it has processes.
func TestStatsMove(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := spec("/bin/busybox", "sh", "-c", "/bin/busybox head -c 25165824 /dev/zero > /dev/shm/fill && while :; do :; done")
	s.Resources = &ccv1.ContainerResources{MemoryBytes: 128 << 20}
	id := start(t, r, s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = r.Stop(ctx, id, time.Second)
	})
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var first Stats
	for {
		st, err := r.Stats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.MemoryUsage >= 24<<20 {
			first = st
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("memory never reached 24 MiB: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if first.ID != id || first.Name != "test-"+id {
		t.Errorf("stats name the container %q %q, want %q test-%s", first.ID, first.Name, id, id)
	}
	if first.MemoryLimit != 128<<20 {
		t.Errorf("memory limit = %d, want %d", first.MemoryLimit, 128<<20)
	}
	if first.Pids < 1 {
		t.Errorf("pids = %d, want at least 1", first.Pids)
	}
	if first.CPUNanos == 0 {
		t.Error("a spinning container used no CPU")
	}
	for {
		st, err := r.Stats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.CPUNanos > first.CPUNanos && st.ReadAt.After(first.ReadAt) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("CPU time did not grow: %d then %d", first.CPUNanos, st.CPUNanos)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := r.Stats(ctx, "cnotthere"); err == nil {
		t.Error("stats of a missing container did not fail")
	}
}

func TestParseNetDev(t *testing.T) {
	const dev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    2048      12    0    0    0     0          0         0      512       6    0    0    0     0       0          0
  eth1:       2       1    0    0    0     0          0         0        3       1    0    0    0     0       0          0
`
	rx, tx, err := parseNetDev(strings.NewReader(dev))
	if err != nil {
		t.Fatal(err)
	}
	if rx != 2050 || tx != 515 {
		t.Errorf("rx, tx = %d, %d; want 2050, 515 (loopback left out)", rx, tx)
	}
}
