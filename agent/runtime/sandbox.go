package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/containercodes/cc/agent/jobs"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/streamio"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Job sandboxes.
//
// A container whose spec has a sandbox (Task.Spec.Sandbox) is a job
// attempt: "a container with less". On top of what every container gets
// (its own network namespace, no new privileges, containerd's default
// seccomp profile, cgroup limits) it runs
//
//   - with loopback only (lo up), unless spec.network is BRIDGE, which
//     attaches it to the job bridge, behind the egress filter (jobnet.go);
//   - on a read-only root filesystem, whatever spec.read_only says, with
//     its /etc/hosts (and resolv.conf) bind-mounted read-only;
//   - as spec.user ("uid" or "uid:gid", numeric; a lone uid gets the same
//     gid) or 65534:65534, with no capabilities at all (every set empty);
//   - with a pids limit of jobspec.DefaultPids when its resources set none;
//   - with /tmp a tmpfs of tmp_limit_bytes (jobspec.DefaultTmpLimitBytes),
//     nosuid, nodev, mode 1777;
//   - with /output a tmpfs the agent mounts on the host at
//     <StateDir>/jobs/<id>/output (size output_limit_bytes, default
//     jobspec.DefaultOutputLimitBytes; inodes max_output_files plus a tenth
//     plus 64; owned by the job's uid:gid as mapped to the host, mode
//     0755; nosuid, nodev), bound into the container read-write, nosuid,
//     nodev. It outlives the task, so CollectOutput packs it after the
//     job ended;
//   - in a user namespace of its own (userns.go): ids 0-65535 inside are
//     a private range of host ids, unless Config.UsernsDisabled;
//   - with /input, when the task has OpenInput, its tar.gz unpacked (by
//     jobs.Unpack, at most jobspec.DefaultInputLimitBytes) into
//     <StateDir>/jobs/<id>/input and bound read-only (nosuid, nodev).
//
// The job's directory <StateDir>/jobs/<id>/ also gets output.tar.gz (and
// its sidecar output.tar.gz.sha256) from CollectOutput and logs.jsonl from
// PackLogs. It lives, with its mount, as long as the container record:
// across task exits and agent restarts, until Remove. New and Purge clean
// the directories (and mounts) of jobs whose container is gone.
//
// The agent must share containerd's mount namespace (as it does when both
// run on the host), since runc binds the host's /output mount.

// LabelJob is on every job sandbox container: the job's id.
const LabelJob = "cc.job"

// Names under a job's directory.
const (
	jobOutputDir    = "output"
	jobInputDir     = "input"
	jobOutputTarGz  = "output.tar.gz"
	jobOutputSHA256 = "output.tar.gz.sha256"
	jobLogs         = "logs.jsonl"
)

// sandboxUID and sandboxGID run a job that names no user.
const (
	sandboxUID = 65534
	sandboxGID = 65534
)

func (r *Runtime) jobsDir() string {
	return filepath.Join(r.cfg.StateDir, "jobs")
}

// JobDir returns the directory of a job sandbox's files on the host (its
// /output mount, input, packed archives), <StateDir>/jobs/<id>.
func (r *Runtime) JobDir(id string) string {
	return filepath.Join(r.jobsDir(), id)
}

// sandboxUser parses a sandbox's user: "", "uid" or "uid:gid", numeric.
func sandboxUser(s string) (uid, gid uint32, err error) {
	if s == "" {
		return sandboxUID, sandboxGID, nil
	}
	us, gs, hasGID := strings.Cut(s, ":")
	u, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("the user of a job must be numeric, \"uid\" or \"uid:gid\", not %q", s)
	}
	g := u
	if hasGID {
		if g, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("the user of a job must be numeric, \"uid\" or \"uid:gid\", not %q", s)
		}
	}
	return uint32(u), uint32(g), nil
}

// checkSandbox validates a sandbox task before anything is made.
func checkSandbox(t Task) error {
	sb := t.Spec.GetSandbox()
	if sb.GetJobId() == "" {
		return fmt.Errorf("runtime: start %s: the sandbox has no job id", t.ID)
	}
	if len(t.Spec.GetPorts()) > 0 {
		return fmt.Errorf("runtime: start %s: a job cannot publish ports", t.ID)
	}
	if _, _, err := sandboxUser(t.Spec.GetUser()); err != nil {
		return fmt.Errorf("runtime: start %s: %w", t.ID, err)
	}
	if sb.GetInputDigest() != "" && t.OpenInput == nil {
		return fmt.Errorf("runtime: start %s: the job has input %s but the task cannot open it (no OpenInput)", t.ID, sb.GetInputDigest())
	}
	if sb.GetOutputLimitBytes() < 0 || sb.GetTmpLimitBytes() < 0 {
		return fmt.Errorf("runtime: start %s: negative sandbox limits", t.ID)
	}
	return nil
}

// jobSandbox is the variant of Start for a job attempt.
type jobSandbox struct {
	r *Runtime
	t Task
	// rng is the sandbox's user namespace range, when it has one.
	rng *usernsRange
}

// network is none unless the job asks for the bridge, which is the job
// bridge.
func (s *jobSandbox) network() string {
	if s.t.Spec.GetNetwork() != ccv1.NetworkMode_NETWORK_MODE_BRIDGE {
		return networkNone // a job has no network unless it asks for one
	}
	return networkJob
}

// prepare makes the job's directory and gives the container its mounts
// (the /etc files read-only), its user, capabilities and limits, and its
// job label.
func (s *jobSandbox) prepare(ctx context.Context, etc []specs.Mount) (preparation, error) {
	etc = readOnlyMounts(etc)
	mounts, err := s.r.makeJobDir(ctx, s.t, s.rng)
	if err != nil {
		return preparation{}, err
	}
	prep := preparation{
		etc:    etc,
		opts:   sandboxSpecOpts(s.t, mounts, s.r.cfg.InitPath),
		labels: map[string]string{LabelJob: s.t.Spec.GetSandbox().GetJobId()},
	}
	if u := s.rng; u != nil {
		prep.opts = append(prep.opts, withUserns(*u, usernsPath(s.r.netnsPath(s.t.ID))))
		prep.labels[LabelUserns] = strconv.FormatUint(uint64(u.start), 10)
		prep.snapshot = func(id string, img containerd.Image) containerd.NewContainerOpts {
			return withRemappedSnapshot(id, img, *u)
		}
	}
	return prep, nil
}

// userns reserves the sandbox's user namespace range, when job sandboxes
// get one.
func (s *jobSandbox) userns(ctx context.Context) (*usernsRange, error) {
	if !s.r.usernsEnabled() {
		return nil, nil
	}
	u, err := s.r.reserveUserns(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: start %s: %w", s.t.ID, err)
	}
	s.rng = &u
	return &u, nil
}

// end releases the reservation of the range: the container's label holds
// it now, or the start failed.
func (s *jobSandbox) end() {
	if s.rng != nil {
		releaseUserns(*s.rng)
	}
}

// undo removes the job's directory and its mounts.
func (s *jobSandbox) undo() {
	if err := s.r.removeJobDir(s.t.ID); err != nil {
		s.r.log.Warn("clean up after a failed start", "container", s.t.ID, "err", err)
	}
}

// makeJobDir makes the job's directory: the /output tmpfs (owned by the
// job's user, as mapped by userns when the sandbox has one) and the
// unpacked input. It returns the container's mounts for them and /tmp.
// On error the caller removes the job's directory (removeJobDir).
func (r *Runtime) makeJobDir(ctx context.Context, t Task, userns *usernsRange) ([]specs.Mount, error) {
	sb := t.Spec.GetSandbox()
	uid, gid, _ := sandboxUser(t.Spec.GetUser())
	if userns != nil {
		uid, gid = userns.remap(uid), userns.remap(gid)
	}
	dir := r.JobDir(t.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("runtime: create job directory of %s: %w", t.ID, err)
	}
	out := filepath.Join(dir, jobOutputDir)
	if err := os.Mkdir(out, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("runtime: create output directory of %s: %w", t.ID, err)
	}
	limits := jobs.LimitsFor(sb)
	inodes := uint64(limits.MaxFiles) + uint64(limits.MaxFiles)/10 + 64
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0755,uid=%d,gid=%d", limits.MaxBytes, inodes, uid, gid)
	if err := unix.Mount("cc-job-output", out, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return nil, fmt.Errorf("runtime: mount the output tmpfs of %s at %s (%s): %w", t.ID, out, opts, err)
	}
	mounts := []specs.Mount{{
		Destination: "/output",
		Type:        "bind",
		Source:      out,
		Options:     []string{"rbind", "rprivate", "rw", "nosuid", "nodev"},
	}}

	tmp := sb.GetTmpLimitBytes()
	if tmp <= 0 {
		tmp = jobspec.DefaultTmpLimitBytes
	}
	mounts = append(mounts, specs.Mount{
		Destination: "/tmp",
		Type:        "tmpfs",
		Source:      "tmpfs",
		Options:     []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(tmp, 10)},
	})

	if t.OpenInput != nil {
		in := filepath.Join(dir, jobInputDir)
		if err := r.unpackInput(ctx, t, in); err != nil {
			return nil, err
		}
		mounts = append(mounts, specs.Mount{
			Destination: "/input",
			Type:        "bind",
			Source:      in,
			Options:     []string{"rbind", "rprivate", "ro", "nosuid", "nodev"},
		})
	}
	return mounts, nil
}

// unpackInput unpacks the task's input into dir (made afresh).
func (r *Runtime) unpackInput(ctx context.Context, t Task, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("runtime: clear the input directory of %s: %w", t.ID, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("runtime: create the input directory of %s: %w", t.ID, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("runtime: create the input directory of %s: %w", t.ID, err)
	}
	rc, err := t.OpenInput(ctx)
	if err != nil {
		return fmt.Errorf("runtime: open the input of %s: %w", t.ID, err)
	}
	defer rc.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("runtime: open the input directory of %s: %w", t.ID, err)
	}
	defer root.Close()
	if err := jobs.Unpack(streamio.WithContext(ctx, rc), root, jobspec.DefaultInputLimitBytes); err != nil {
		if jobs.IsRefused(err) {
			return fmt.Errorf("runtime: start %s: the job's input cannot be used: %w", t.ID, err)
		}
		return fmt.Errorf("runtime: unpack the input of %s: %w", t.ID, err)
	}
	return nil
}

// sandboxSpecOpts are a sandbox's OCI spec options, applied after the
// container's own and before the seccomp profile (which is built from the
// capabilities).
func sandboxSpecOpts(t Task, mounts []specs.Mount, initPath string) []oci.SpecOpts {
	uid, gid, _ := sandboxUser(t.Spec.GetUser())
	opts := []oci.SpecOpts{
		oci.WithUIDGID(uid, gid),
		oci.WithRootFSReadonly(),
		withNoCapabilities,
		oci.WithMounts(mounts),
		withReadOnlyRuntimeMounts,
	}
	if initPath != "" {
		opts = append(opts, withInit(initPath))
	}
	if t.Spec.GetResources().GetPids() <= 0 {
		opts = append(opts, oci.WithPidsLimit(jobspec.DefaultPids))
	}
	return opts
}

// sandboxInit is where a sandbox's init binary is mounted.
const sandboxInit = "/.cc-init"

// withInit runs the process under the init binary at path: the binary is
// bind-mounted read-only and the process's arguments become its.
func withInit(path string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil || len(s.Process.Args) == 0 {
			return errors.New("runtime: the job has no command: give one, or use an image with an entrypoint or command")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: sandboxInit, Type: "bind", Source: path,
			Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		s.Process.Args = append([]string{sandboxInit, "init", "--"}, s.Process.Args...)
		return nil
	}
}

// withReadOnlyRuntimeMounts makes the writable file systems of the default
// spec other than /output and /tmp read-only: /dev/shm (mode 1777),
// /dev/mqueue and /run. A job writes where its limits apply, nowhere else.
func withReadOnlyRuntimeMounts(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	for i, m := range s.Mounts {
		switch m.Destination {
		case "/dev/shm", "/dev/mqueue", "/run":
		default:
			continue
		}
		opts := []string{"ro"}
		for _, o := range m.Options {
			if o != "rw" && o != "ro" {
				opts = append(opts, o)
			}
		}
		s.Mounts[i].Options = opts
	}
	return nil
}

// withNoCapabilities empties every capability set (an empty, non-nil set:
// runc then drops them all).
func withNoCapabilities(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{},
		Effective:   []string{},
		Permitted:   []string{},
		Inheritable: []string{},
		Ambient:     []string{},
	}
	return nil
}

// readOnlyMounts returns the bind mounts with "rw" replaced by "ro".
func readOnlyMounts(ms []specs.Mount) []specs.Mount {
	out := make([]specs.Mount, 0, len(ms))
	for _, m := range ms {
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "rw" || o == "ro" })
		m.Options = append(m.Options, "ro")
		out = append(out, m)
	}
	return out
}

// removeJobDir unmounts everything under a job's directory and removes it.
// A missing directory is fine.
func (r *Runtime) removeJobDir(id string) error {
	dir := r.JobDir(id)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // nothing can be mounted there either
	}
	if err := unmountUnder(dir); err != nil {
		return fmt.Errorf("runtime: remove the job directory of %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("runtime: remove the job directory of %s: %w", id, err)
	}
	return nil
}

// cleanOrphanJobs removes the job directories (and their mounts) of
// containers that no longer exist, left by an agent that died between
// removing a container and its directory. It must not run beside Start.
func (r *Runtime) cleanOrphanJobs(ctx context.Context) error {
	ents, err := os.ReadDir(r.jobsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: read %s: %w", r.jobsDir(), err)
	}
	ctx = r.withNS(ctx)
	var errs []error
	for _, e := range ents {
		id := e.Name()
		if validID(id) != nil {
			continue
		}
		_, err := r.client.LoadContainer(ctx, id)
		if err == nil {
			continue
		}
		if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("runtime: look up container %s: %w", id, err))
			continue
		}
		r.log.Info("removing the files of a job whose container is gone", "container", id)
		if err := r.removeJobDir(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount at or below dir, deepest first, lazily
// (MNT_DETACH) when one is busy.
func unmountUnder(dir string) error {
	points, err := mountPointsUnder(dir)
	if err != nil {
		return err
	}
	// Deepest first; a path mounted several times is listed as often.
	slices.SortFunc(points, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, p := range points {
		err := unix.Unmount(p, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(p, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if left, err := mountPointsUnder(dir); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("still mounted after unmounting: %s", strings.Join(left, ", "))
	}
	return nil
}

// mountPointsUnder lists the mount points at or below dir in this process's
// mount namespace.
func mountPointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved // the mount table holds real paths
	}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// unescapeMountPath decodes the octal escapes (\040 for a space, ...) of a
// path in /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint reports whether dir is on another filesystem than its
// parent.
func isMountPoint(dir string) (bool, error) {
	a, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	b, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		return false, err
	}
	as, ok1 := a.Sys().(*syscall.Stat_t)
	bs, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, fmt.Errorf("stat %s: no device numbers", dir)
	}
	return as.Dev != bs.Dev, nil
}

// taskRunning reports whether the container has a task that has not ended.
func (r *Runtime) taskRunning(ctx context.Context, id string) (bool, error) {
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Status != containerd.Stopped, nil
}
