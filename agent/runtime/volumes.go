package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Volumes. A volume is a sparse file of the volume's size under
// <StateDir>/volumes/<name>/image, formatted ext4 on first use and
// mounted through a loop device (mount -o loop, which frees the device at
// unmount) on <StateDir>/volumes/<name>/data; containers get a bind mount
// of that directory. The filesystem's size is the volume's: a write past
// it fails with ENOSPC inside the container and the host's disk is
// untouched beyond the file. The node prepares a volume when a container
// first needs it, after a reboot too, and deletes the volumes the control
// plane no longer lists (RemoveVolumesExcept).

// mkfsPath and friends are the system tools the volumes use.
var (
	mkfsPath   = "/usr/sbin/mkfs.ext4"
	mountPath  = "mount"
	umountPath = "umount"
)

// LabelVolumes lists the volumes a container mounts, comma-separated.
const LabelVolumes = "cc.volumes"

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (r *Runtime) volumesDir() string { return filepath.Join(r.cfg.StateDir, "volumes") }

// containerMounts turns a task's mounts into OCI mounts: volumes prepared
// on this node, host paths the agent allows, tmpfs with its size.
func (r *Runtime) containerMounts(t Task) ([]specs.Mount, error) {
	ms := t.Spec.GetMounts()
	if len(ms) == 0 {
		return nil, nil
	}
	if t.Spec.GetSandbox() != nil {
		return nil, fmt.Errorf("runtime: start %s: a job sandbox takes no mounts", t.ID)
	}
	var out []specs.Mount
	for _, m := range ms {
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target || m.Target == "/" {
			return nil, fmt.Errorf("runtime: start %s: mount target %q: use a clean absolute path other than /", t.ID, m.Target)
		}
		rw := "rw"
		if m.ReadOnly {
			rw = "ro"
		}
		switch m.Type {
		case "volume":
			dir, err := r.prepareVolume(m.Source, m.VolumeSizeBytes)
			if err != nil {
				return nil, fmt.Errorf("runtime: start %s: %w", t.ID, err)
			}
			out = append(out, specs.Mount{Type: "bind", Source: dir, Destination: m.Target, Options: []string{"rbind", "nosuid", "nodev", rw}})
		case "bind":
			src, err := r.allowedBind(m.Source)
			if err != nil {
				return nil, fmt.Errorf("runtime: start %s: %w", t.ID, err)
			}
			out = append(out, specs.Mount{Type: "bind", Source: src, Destination: m.Target, Options: []string{"rbind", "nosuid", "nodev", rw}})
		case "tmpfs":
			if m.TmpfsSizeBytes <= 0 {
				return nil, fmt.Errorf("runtime: start %s: tmpfs mount %s needs a size", t.ID, m.Target)
			}
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: m.Target,
				Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(m.TmpfsSizeBytes, 10), rw}})
		default:
			return nil, fmt.Errorf("runtime: start %s: mount type %q: use volume, bind or tmpfs", t.ID, m.Type)
		}
	}
	return out, nil
}

// allowedBind resolves a bind mount's host path and checks it is under a
// prefix of BindMountAllow.
func (r *Runtime) allowedBind(src string) (string, error) {
	refuse := fmt.Errorf("bind mount of host path %s refused: this agent allows no bind mounts (start cc-agent with --bind-mount-allow PREFIX)", src)
	if len(r.cfg.BindMountAllow) > 0 {
		refuse = fmt.Errorf("bind mount of host path %s refused: this agent allows host paths under %s only (cc-agent --bind-mount-allow PREFIX)", src, strings.Join(r.cfg.BindMountAllow, ", "))
	}
	if !filepath.IsAbs(src) {
		return "", refuse
	}
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", fmt.Errorf("bind mount of host path %s: %w", src, err)
	}
	for _, p := range r.cfg.BindMountAllow {
		p = filepath.Clean(p)
		if rp, err := filepath.EvalSymlinks(p); err == nil {
			p = rp
		}
		if real == p || strings.HasPrefix(real, strings.TrimSuffix(p, "/")+"/") {
			return real, nil
		}
	}
	return "", refuse
}

// prepareVolume makes the volume's filesystem when it has none and mounts
// it when it is not, and returns the directory to bind into containers.
func (r *Runtime) prepareVolume(name string, size int64) (string, error) {
	if !volumeNameRE.MatchString(name) {
		return "", fmt.Errorf("volume %q: not a volume name", name)
	}
	r.volMu.Lock()
	defer r.volMu.Unlock()
	dir := filepath.Join(r.volumesDir(), name)
	img, mnt := filepath.Join(dir, "image"), filepath.Join(dir, "data")
	if mounted(mnt) {
		return mnt, nil
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		if size <= 0 {
			return "", fmt.Errorf("volume %s: no size given for a new volume", name)
		}
		tmp := img + ".new"
		if err := makeFS(tmp, size, false, "-E", "nodiscard"); err != nil {
			_ = os.Remove(tmp)
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
		if err := os.Rename(tmp, img); err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
		r.log.Info("volume created", "volume", name, "size", size)
	} else if err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	if out, err := exec.Command(mountPath, "-t", "ext4", "-o", "loop,nosuid,nodev", img, mnt).CombinedOutput(); err != nil {
		return "", fmt.Errorf("volume %s: mount %s: %v: %s", name, img, err, strings.TrimSpace(string(out)))
	}
	return mnt, nil
}

// makeFS writes a sparse file of size bytes at path and formats it ext4,
// with no blocks reserved for root (containers often run as root) and
// opts for mkfs.ext4. An existing file is refused, or replaced when
// replace is set.
func makeFS(path string, size int64, replace bool, opts ...string) error {
	flag := os.O_CREATE | os.O_WRONLY | os.O_EXCL
	if replace {
		flag = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	bin := mkfsPath
	if p, err := exec.LookPath(mkfsExt4); err == nil {
		bin = p
	}
	args := append(append([]string{"-q", "-F", "-m", "0"}, opts...), path)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mounted reports whether dir is a mount point: it sits on another device
// than its parent.
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// Volumes lists the volumes on this node, by name.
func (r *Runtime) Volumes() ([]string, error) {
	ents, err := os.ReadDir(r.volumesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && volumeNameRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, err
}

// dropVolume unmounts a volume and removes its directory.
func (r *Runtime) dropVolume(name string) error {
	dir := filepath.Join(r.volumesDir(), name)
	mnt := filepath.Join(dir, "data")
	if mounted(mnt) {
		if out, err := exec.Command(umountPath, mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("runtime: volume %s: umount: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("runtime: volume %s: %w", name, err)
	}
	r.log.Info("volume removed", "volume", name)
	return nil
}

// purgeVolumes unmounts and deletes every volume (Purge).
func (r *Runtime) purgeVolumes() error {
	names, err := r.Volumes()
	if err != nil {
		return err
	}
	r.volMu.Lock()
	defer r.volMu.Unlock()
	var errs []error
	for _, n := range names {
		if err := r.dropVolume(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// volumeNames are the volumes a spec mounts, for the container's label.
func volumeNames(spec *ccv1.ContainerSpec) string {
	var names []string
	for _, m := range spec.GetMounts() {
		if m.Type == "volume" {
			names = append(names, m.Source)
		}
	}
	return strings.Join(names, ",")
}

// RemoveVolumesExcept deletes the volumes on this node that keep does not
// list and no container mounts (inUse): the control plane's list is the
// truth. A volume still mounted waits for a later call.
func (r *Runtime) RemoveVolumesExcept(keep, inUse map[string]bool) error {
	names, err := r.Volumes()
	if err != nil {
		return err
	}
	r.volMu.Lock()
	defer r.volMu.Unlock()
	var errs []error
	for _, n := range names {
		if keep[n] || inUse[n] {
			continue
		}
		if err := r.dropVolume(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
