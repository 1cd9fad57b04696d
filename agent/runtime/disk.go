package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

// Disk limits of a container's writable layer (resources.disk_bytes).
//
// containerd's overlayfs snapshotter keeps a container's writable layer in
// the snapshot's directory (<root>/snapshots/<n>/fs, with its work
// directory beside it at <n>/work), on the host's filesystem, without a
// size cap. For a container with a disk limit the agent makes a sparse
// file of that size, <StateDir>/disks/<id>/disk.img, formats it ext4 (no
// reserved blocks, no journal: the layer is thrown away with the
// container), and mounts it through a loop device (autoclear) over the
// snapshot's directory <n>, right after the snapshot is prepared and
// before anything writes to it, with fresh fs and work directories in it.
// overlayfs then writes the container's changes there, and a write past
// the size fails with ENOSPC inside the container; the host's filesystem
// holds at most the image's size. Everything that reads the snapshot
// (the task's root, user lookups, the user namespace remap) sees the same
// directories, since the snapshot's mounts name the same paths.
//
// The mount point is recorded in <StateDir>/disks/<id>/target. Remove
// unmounts it (the loop device goes with the last unmount) before
// containerd removes the snapshot, and deletes the image; Purge and New
// do the same for disks whose container is gone. A running container
// keeps its mount across agent restarts; a container started again is
// made afresh, with a fresh disk.
//
// Where this cannot work (no mkfs.ext4, no loop devices, a snapshotter
// other than overlayfs), Start fails with the reason rather than run the
// container without its limit.

// MinDiskBytes is the smallest disk limit: ext4's metadata needs room.
const MinDiskBytes = 16 << 20

// mkfsExt4 is the formatter of disk images.
var mkfsExt4 = "mkfs.ext4"

func (r *Runtime) disksDir() string { return filepath.Join(r.cfg.StateDir, "disks") }

func (r *Runtime) diskDir(id string) string { return filepath.Join(r.disksDir(), id) }

// diskSupport says why the host cannot cap a writable layer, nil when it
// can.
func diskSupport() error {
	if _, err := exec.LookPath(mkfsExt4); err != nil {
		if _, err2 := os.Stat("/usr/sbin/mkfs.ext4"); err2 != nil {
			return fmt.Errorf("mkfs.ext4 is not installed (install e2fsprogs)")
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("the host has no loop devices (/dev/loop-control: %v; load the loop module)", err)
	}
	return nil
}

// overlaySnapshotDir is the directory of an overlayfs snapshot's upper
// and work directories (their common parent), from its mounts.
func overlaySnapshotDir(mounts []mount.Mount) (string, error) {
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		var types []string
		for _, m := range mounts {
			types = append(types, m.Type)
		}
		return "", fmt.Errorf("the snapshot is mounted as %q, not one overlay mount (a disk limit needs containerd's overlayfs snapshotter and an image with at least one layer)", strings.Join(types, ","))
	}
	var upper, work string
	for _, o := range mounts[0].Options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
		if v, ok := strings.CutPrefix(o, "workdir="); ok {
			work = v
		}
	}
	if upper == "" || work == "" {
		return "", errors.New("the snapshot's overlay mount has no upperdir or workdir (is it read-only?)")
	}
	dir := filepath.Dir(upper)
	if filepath.Dir(work) != dir || !filepath.IsAbs(dir) || dir == "/" {
		return "", fmt.Errorf("the snapshot's upperdir %s and workdir %s are not in one directory", upper, work)
	}
	return dir, nil
}

// withDiskSnapshot prepares the container's snapshot (key id) from the
// image, mounts a disk of size bytes over its directory and, with u,
// remaps it for a user namespace. The snapshot and disk are removed when
// a step fails.
func (r *Runtime) withDiskSnapshot(id string, img containerd.Image, size int64, u *usernsRange) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		if err := containerd.WithNewSnapshot(id, img)(ctx, client, c); err != nil {
			return err
		}
		sn := client.SnapshotService(c.Snapshotter)
		err := func() error {
			mounts, err := sn.Mounts(ctx, id)
			if err != nil {
				return err
			}
			dir, err := overlaySnapshotDir(mounts)
			if err != nil {
				return err
			}
			if err := r.mountDisk(id, dir, size); err != nil {
				return err
			}
			if u != nil {
				if err := mount.WithTempMount(ctx, mounts, func(root string) error { return remapTree(root, *u) }); err != nil {
					return fmt.Errorf("remap the snapshot to host ids from %d: %w", u.start, err)
				}
			}
			return nil
		}()
		if err != nil {
			if derr := r.removeDisk(id); derr != nil {
				err = errors.Join(err, derr)
			}
			if rerr := sn.Remove(context.WithoutCancel(ctx), id); rerr != nil && !errdefs.IsNotFound(rerr) {
				err = errors.Join(err, fmt.Errorf("remove the snapshot: %w", rerr))
			}
			return fmt.Errorf("runtime: give %s a writable layer of %d bytes: %w", id, size, err)
		}
		return nil
	}
}

// mountDisk makes the disk image of id, formats it and mounts it at dir
// (the snapshot's directory) with empty fs and work directories.
func (r *Runtime) mountDisk(id, dir string, size int64) error {
	if err := diskSupport(); err != nil {
		return fmt.Errorf("this node cannot cap a writable layer: %w; run the container without --disk, or fix the node", err)
	}
	ddir := r.diskDir(id)
	if err := os.MkdirAll(ddir, 0o700); err != nil {
		return err
	}
	// Recorded first, so that a failure below is cleaned up.
	if err := os.WriteFile(filepath.Join(ddir, "target"), []byte(dir+"\n"), 0o600); err != nil {
		return err
	}
	img := filepath.Join(ddir, "disk.img")
	if err := makeFS(img, size, true, "-O", "^has_journal", "-E", "root_owner=0:0"); err != nil {
		return fmt.Errorf("make the disk image: %w", err)
	}
	// Keep the snapshot directory's fs and work modes.
	modes := map[string]os.FileMode{"fs": 0o755, "work": 0o711}
	for name := range modes {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			modes[name] = st.Mode().Perm()
		}
	}
	m := mount.Mount{Type: "ext4", Source: img, Options: []string{"loop", "nodev", "nosuid"}}
	if err := m.Mount(dir); err != nil {
		return fmt.Errorf("mount the disk image at %s: %w", dir, err)
	}
	for _, name := range []string{"fs", "work"} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, modes[name]); err != nil {
			return err
		}
		if err := os.Chmod(p, modes[name]); err != nil {
			return err
		}
	}
	return nil
}

// removeDisk unmounts the disk of id (when it has one) and deletes its
// image. A container without a disk is fine.
func (r *Runtime) removeDisk(id string) error {
	ddir := r.diskDir(id)
	b, err := os.ReadFile(filepath.Join(ddir, "target"))
	if errors.Is(err, os.ErrNotExist) {
		if err := os.RemoveAll(ddir); err != nil {
			return fmt.Errorf("runtime: remove the disk of %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: remove the disk of %s: %w", id, err)
	}
	target := strings.TrimSpace(string(b))
	if target != "" {
		points, err := mountPointsUnder(target)
		if err != nil {
			return fmt.Errorf("runtime: remove the disk of %s: %w", id, err)
		}
		for _, p := range points {
			if p != target {
				continue
			}
			if err := mount.UnmountAll(target, 0); err != nil {
				return fmt.Errorf("runtime: remove the disk of %s: unmount %s: %w", id, target, err)
			}
		}
	}
	if err := os.RemoveAll(ddir); err != nil {
		return fmt.Errorf("runtime: remove the disk of %s: %w", id, err)
	}
	return nil
}

// cleanOrphanDisks removes the disks of containers that no longer exist.
// It must not run beside Start.
func (r *Runtime) cleanOrphanDisks(ctx context.Context) error {
	ents, err := os.ReadDir(r.disksDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: read %s: %w", r.disksDir(), err)
	}
	ctx = r.withNS(ctx)
	var errs []error
	for _, e := range ents {
		id := e.Name()
		if validID(id) != nil {
			continue
		}
		if _, err := r.client.LoadContainer(ctx, id); err == nil {
			continue
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("runtime: look up container %s: %w", id, err))
			continue
		}
		r.log.Info("removing the disk of a container that is gone", "container", id)
		if err := r.removeDisk(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
