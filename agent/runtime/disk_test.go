package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestOverlaySnapshotDir(t *testing.T) {
	dir, err := overlaySnapshotDir([]mount.Mount{{Type: "overlay", Source: "overlay",
		Options: []string{"index=off", "workdir=/var/lib/s/snapshots/9/work", "upperdir=/var/lib/s/snapshots/9/fs", "lowerdir=/var/lib/s/snapshots/1/fs"}}})
	if err != nil || dir != "/var/lib/s/snapshots/9" {
		t.Errorf("got %q, %v", dir, err)
	}
	for _, ms := range [][]mount.Mount{
		{{Type: "bind", Source: "/x", Options: []string{"rbind"}}},
		{{Type: "overlay", Options: []string{"lowerdir=/a:/b"}}},
		{{Type: "overlay", Options: []string{"upperdir=/a/fs", "workdir=/b/work"}}},
	} {
		if _, err := overlaySnapshotDir(ms); err == nil {
			t.Errorf("%+v: taken", ms)
		}
	}
}

// A write past the disk limit fails with ENOSPC in the container; the host
// holds at most the limit, and removing the container leaves no mount or
// image behind.
func TestDiskLimit(t *testing.T) {
	r, cfg := newTestRuntime(t)
	const limit = 32 << 20
	s := spec("/bin/busybox", "sh", "-c", "dd if=/dev/urandom of=/big bs=1M count=100; echo dd=$?; sync; sleep 1000")
	s.Resources = &ccv1.ContainerResources{DiskBytes: limit}
	id := start(t, r, s)
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	var out string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if o, e := logsNow(t, r, id); strings.Contains(o, "dd=") {
			out = o + e
			break
		}
	}
	if !strings.Contains(out, "No space left on device") || strings.Contains(out, "dd=0") {
		t.Fatalf("writing 100 MiB past a 32 MiB disk: %q, want No space left on device", out)
	}
	upper := upperDir(t, r, id)
	st, err := os.Stat(filepath.Join(upper, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > limit {
		t.Errorf("/big is %d bytes, over the limit %d", st.Size(), limit)
	}
	img := filepath.Join(cfg.StateDir, "disks", id, "disk.img")
	ist, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if used := ist.Sys().(*syscall.Stat_t).Blocks * 512; used > limit {
		t.Errorf("the disk image uses %d bytes of the host, over %d", used, limit)
	}
	dir := filepath.Dir(upper)
	if pts, _ := mountPointsUnder(dir); len(pts) != 1 {
		t.Errorf("mounts at %s: %v, want the disk", dir, pts)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An agent restart (a new runtime on the same state) keeps the disk of
	// a container that exists.
	r2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if pts, _ := mountPointsUnder(dir); len(pts) != 1 {
		t.Errorf("after a restart, mounts at %s: %v, want the disk", dir, pts)
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("after a restart: %v", err)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if pts, _ := mountPointsUnder(dir); len(pts) != 0 {
		t.Errorf("mounts left at %s: %v", dir, pts)
	}
	if _, err := os.Stat(filepath.Dir(img)); !os.IsNotExist(err) {
		t.Errorf("the disk's directory is left: %v", err)
	}
}

// logsNow reads what a running container has logged so far.
func logsNow(t *testing.T, r *Runtime, id string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e strings.Builder
	err := r.Logs(ctx, id, 0, false, func(stream string, data []byte) error {
		if stream == "stdout" {
			o.Write(data)
		} else {
			e.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String()
}
