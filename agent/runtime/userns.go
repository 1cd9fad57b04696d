package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/containercodes/cc/agent/runtime/internal/usernshold"
)

// User namespaces of job sandboxes.
//
// Every job sandbox runs in a user namespace of its own that maps the ids
// 0..UsernsSize-1 inside to a private range of host ids,
// UsernsBase + k*UsernsSize for the lowest free slot k: uid 0 in a job is
// an unprivileged uid on the host, and no two sandboxes share an id. The
// range is recorded on the container (label cc.userns, its first host
// id); the ranges in use are those labels, read from containerd across
// all its namespaces at every start, plus the ones being started by this
// process. An agent restart therefore never hands out the range of a
// sandbox that still exists.
//
// The agent makes the user namespace (mapped to the range) together with
// the sandbox's network namespace, which it owns, and mounts both beside
// each other (createUsernsNetNS); runc joins them, so the sandbox mounts
// its own sysfs, which needs a network namespace its user namespace owns.
//
// The rootfs snapshot is remapped by chowning it: the container's own
// (active) snapshot is prepared from the image and every file in it is
// given the host ids its ids map to (ids outside the map become the
// host's nobody, 65534); it is removed with the container. The job's
// /output tmpfs is owned by the job's mapped uid:gid; /tmp is mounted by
// runc inside the namespace; /input is readable by anyone (jobs.Unpack).

// LabelUserns is on a job sandbox that runs in a user namespace: the first
// host uid (and gid) of its range, which is UsernsSize long.
const LabelUserns = "cc.userns"

// DefaultUsernsBase is the first host id of the job sandboxes' ranges.
const DefaultUsernsBase = 1_000_000_000

// UsernsSize is the number of ids in one sandbox's range: ids 0..65535
// inside it.
const UsernsSize = 65536

// hostNobody is the host id that files with unmapped ids are given.
const hostNobody = 65534

// reservedRanges are the ranges handed out by this process whose
// containers may not exist yet (first host id → true). It is
// process-wide so that several Runtimes in one process (tests) never
// share a range.
var reservedRanges = struct {
	sync.Mutex
	m map[uint32]bool
}{m: map[uint32]bool{}}

// usernsRange is a sandbox's range: host ids start..start+UsernsSize-1.
type usernsRange struct{ start uint32 }

// toHost maps an id inside the range to the host; ok is false when the id
// is not mapped.
func (u usernsRange) toHost(id uint32) (uint32, bool) {
	if id >= UsernsSize {
		return 0, false
	}
	return u.start + id, true
}

// mappings are the spec's uid (and gid) mappings.
func (u usernsRange) mappings() []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.start, Size: UsernsSize}}
}

// usernsEnabled reports whether job sandboxes get user namespaces.
func (r *Runtime) usernsEnabled() bool { return !r.cfg.UsernsDisabled }

// reserveUserns picks the lowest range no container on the host and no
// start in progress in this process uses, and reserves it. Release it
// with releaseUserns once the container exists (its label then holds it)
// or its start failed.
func (r *Runtime) reserveUserns(ctx context.Context) (usernsRange, error) {
	used, err := r.usedUsernsRanges(ctx)
	if err != nil {
		return usernsRange{}, err
	}
	reservedRanges.Lock()
	defer reservedRanges.Unlock()
	base := uint64(r.cfg.UsernsBase)
	for start := base; start+UsernsSize-1 <= uint64(^uint32(0)); start += UsernsSize {
		s := uint32(start)
		if used[s] || reservedRanges.m[s] {
			continue
		}
		reservedRanges.m[s] = true
		return usernsRange{start: s}, nil
	}
	return usernsRange{}, fmt.Errorf("runtime: no free user namespace range above host id %d (every one of size %d is in use)", base, UsernsSize)
}

// releaseUserns drops this process's reservation of a range.
func releaseUserns(u usernsRange) {
	reservedRanges.Lock()
	delete(reservedRanges.m, u.start)
	reservedRanges.Unlock()
}

// usedUsernsRanges reads the ranges of the containers in every containerd
// namespace (label cc.userns). A range that does not line up with this
// runtime's slots blocks every slot it overlaps.
func (r *Runtime) usedUsernsRanges(ctx context.Context) (map[uint32]bool, error) {
	nss, err := r.client.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: list containerd namespaces: %w", err)
	}
	used := map[uint32]bool{}
	base := uint64(r.cfg.UsernsBase)
	for _, ns := range nss {
		cs, err := r.client.ContainerService().List(namespaces.WithNamespace(ctx, ns), `labels."`+LabelUserns+`"`)
		if err != nil {
			return nil, fmt.Errorf("runtime: list the containers of namespace %s: %w", ns, err)
		}
		for _, c := range cs {
			v, err := strconv.ParseUint(c.Labels[LabelUserns], 10, 32)
			if err != nil {
				continue
			}
			// Block the slot(s) [v, v+UsernsSize) overlaps.
			for _, id := range []uint64{v, v + UsernsSize - 1} {
				if id < base {
					continue
				}
				used[uint32(base+(id-base)/UsernsSize*UsernsSize)] = true
			}
		}
	}
	return used, nil
}

// withUserns runs the container in the user namespace mounted at path
// (made by createUsernsNetNS, mapped to u).
func withUserns(u usernsRange, path string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: path})
		s.Linux.UIDMappings = u.mappings()
		s.Linux.GIDMappings = u.mappings()
		return nil
	}
}

// usernsPath is where the user namespace that owns the network namespace
// at nsPath is mounted.
func usernsPath(nsPath string) string { return nsPath + ".userns" }

// createUsernsNetNS creates a user namespace mapped to u and a network
// namespace it owns, and mounts them at usernsPath(path) and path
// (replacing leftovers).
func createUsernsNetNS(path string, u usernsRange) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns directory: %w", err)
	}
	upath := usernsPath(path)
	for _, p := range []string{path, upath} {
		_ = removeNetNS(p)
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("create namespace mount point: %w", err)
		}
		f.Close()
	}
	defer func() {
		if err != nil {
			_ = removeNetNS(path)
			_ = removeNetNS(upath)
		}
	}()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(u.start), Size: UsernsSize}}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{usernshold.Env + "=1"} // it holds (package usernshold)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: m,
		GidMappings: m,
		// runc sets the process's groups in it.
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return fmt.Errorf("start a process in a new user namespace: %w", err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/user", pid), upath, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount user namespace at %s: %w", upath, err)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/net", pid), path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount network namespace at %s: %w", path, err)
	}
	return nil
}

// withRemappedSnapshot prepares the container's snapshot (key id) from
// the image, like containerd.WithNewSnapshot, and chowns every file in it
// to the host ids its ids map to in u. The snapshot is removed when the
// remap fails.
func withRemappedSnapshot(id string, img containerd.Image, u usernsRange) containerd.NewContainerOpts {
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
			return mount.WithTempMount(ctx, mounts, func(root string) error { return remapTree(root, u) })
		}()
		if err != nil {
			if rerr := sn.Remove(context.WithoutCancel(ctx), id); rerr != nil {
				err = errors.Join(err, fmt.Errorf("remove the snapshot: %w", rerr))
			}
			return fmt.Errorf("runtime: remap the snapshot of %s to host ids from %d: %w", id, u.start, err)
		}
		return nil
	}
}

// remapTree chowns every file under root (not following symbolic links)
// from its ids to the host ids they map to in u, keeping setuid, setgid
// and sticky bits. An id already in u's host range is kept: a file with
// several hard links is seen once per link (and overlayfs may copy one
// name up apart from the others).
func remapTree(root string, u usernsRange) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no owner", path)
		}
		uid, gid := u.remap(st.Uid), u.remap(st.Gid)
		if uid == st.Uid && gid == st.Gid {
			return nil
		}
		if err := os.Lchown(path, int(uid), int(gid)); err != nil {
			return err
		}
		if m := info.Mode(); m&fs.ModeSymlink == 0 && m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			return os.Chmod(path, m)
		}
		return nil
	})
}

// remap is the host id a file owned by id gets: id itself when it is
// already in u's host range, its mapping when it is mapped, else the
// host's nobody.
func (u usernsRange) remap(id uint32) uint32 {
	if id >= u.start && uint64(id) < uint64(u.start)+UsernsSize {
		return id
	}
	if h, ok := u.toHost(id); ok {
		return h
	}
	return hostNobody
}
