package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/containercodes/cc/agent/runtime/internal/logger"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Task is a container to run.
type Task struct {
	ID         string
	Name       string
	Generation uint64
	// Spec is the container's spec. With Spec.Sandbox set, the container
	// is a job attempt and runs in a sandbox (see sandbox.go).
	Spec *ccv1.ContainerSpec
	// OpenInput, for a job sandbox with input, opens the input's tar.gz,
	// which Start unpacks read-only at /input. Nil: no input.
	OpenInput func(ctx context.Context) (io.ReadCloser, error)
}

// Observed is what containerd says about one of the runtime's containers.
type Observed struct {
	ID         string
	Name       string
	Generation uint64
	// State is RUNNING, EXITED, or FAILED (the container exists but has no
	// task, or its task was never started or cannot be read).
	State      ccv1.ContainerState
	ExitCode   int32
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	IP         string
	// JobID is the job of a job sandbox (label cc.job), "" for other
	// containers.
	JobID string
	// Error says why State is FAILED.
	Error string
	// Volumes are the volumes it mounts (label cc.volumes).
	Volumes []string
}

// A variant is what a kind of container adds to Start's common path (the
// image, the network, the /etc files, the logs, the task): a plain
// container its user; a job sandbox (jobSandbox, sandbox.go) its checks,
// its network, its directory and mounts, its spec options and its label.
type variant interface {
	// network is the container's network mode.
	network() string
	// prepare makes what the container needs on the host besides the
	// common files, once its network and /etc files (etc) are made.
	prepare(ctx context.Context, etc []specs.Mount) (preparation, error)
	// undo removes what prepare made, after a failed start.
	undo()
	// userns is the user namespace range of the container, nil for none;
	// end releases what userns reserved once Start returns.
	userns(ctx context.Context) (*usernsRange, error)
	end()
}

// preparation is what a variant gives a container's spec and labels.
type preparation struct {
	// etc are the /etc file mounts as the container gets them.
	etc []specs.Mount
	// opts follow the container's own spec options and come before the
	// seccomp profile, which is built from the capabilities they leave.
	opts []oci.SpecOpts
	// labels are added to the common ones.
	labels map[string]string
	// snapshot, when set, makes the container's snapshot (key id, from
	// img) instead of containerd.WithNewSnapshot.
	snapshot func(id string, img containerd.Image) containerd.NewContainerOpts
}

// variantOf checks the fields of a task its variant reads, before
// anything is made, and returns the variant.
func (r *Runtime) variantOf(t Task) (variant, error) {
	if t.Spec.GetSandbox() == nil {
		return &plainContainer{r: r, t: t}, nil
	}
	if err := checkSandbox(t); err != nil {
		return nil, err
	}
	if r.usernsEnabled() {
		if uid, gid, _ := sandboxUser(t.Spec.GetUser()); uid >= UsernsSize || gid >= UsernsSize {
			return nil, fmt.Errorf("runtime: start %s: a job's uid and gid must be below %d (its user namespace maps no more), not %d:%d", t.ID, UsernsSize, uid, gid)
		}
	}
	return &jobSandbox{r: r, t: t}, nil
}

// plainContainer is the variant of a container that is not a job attempt.
type plainContainer struct {
	r *Runtime
	t Task
	// rng is the container's user namespace range (--userns private).
	rng *usernsRange
}

func (p *plainContainer) network() string { return networkMode(p.t.Spec.GetNetwork()) }

// prepare runs the process as the spec's user, a name looked up in the
// image, with the spec's security profile (security.go), in its user
// namespace, on a writable layer of the spec's disk limit (disk.go).
func (p *plainContainer) prepare(_ context.Context, etc []specs.Mount) (preparation, error) {
	prep := preparation{etc: etc, labels: map[string]string{}}
	if u := p.t.Spec.GetUser(); u != "" {
		prep.opts = append(prep.opts, oci.WithUser(u))
	}
	prep.opts = append(prep.opts, securityOpts(p.t.Spec.GetSecurity())...)
	if u := p.rng; u != nil {
		prep.opts = append(prep.opts, withUserns(*u, usernsPath(p.r.netnsPath(p.t.ID))))
		prep.labels[LabelUserns] = strconv.FormatUint(uint64(u.start), 10)
		prep.snapshot = func(id string, img containerd.Image) containerd.NewContainerOpts {
			return withRemappedSnapshot(id, img, *u)
		}
	}
	if d := p.t.Spec.GetResources().GetDiskBytes(); d > 0 {
		if d < MinDiskBytes {
			return preparation{}, fmt.Errorf("runtime: start %s: a disk limit is at least %d bytes, not %d", p.t.ID, MinDiskBytes, d)
		}
		u := p.rng
		prep.snapshot = func(id string, img containerd.Image) containerd.NewContainerOpts {
			return p.r.withDiskSnapshot(id, img, d, u)
		}
	}
	return prep, nil
}

func (*plainContainer) undo() {}

// userns reserves the container's user namespace range with --userns
// private.
func (p *plainContainer) userns(ctx context.Context) (*usernsRange, error) {
	if p.t.Spec.GetSecurity().GetUserns() != ccv1.UsernsMode_USERNS_MODE_PRIVATE {
		return nil, nil
	}
	if !p.r.usernsEnabled() {
		return nil, fmt.Errorf("runtime: start %s: this node runs without user namespaces (cc-agent --userns-base 0): run the container with --userns host, or give the agent a --userns-base", p.t.ID)
	}
	u, err := p.r.reserveUserns(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: start %s: %w", p.t.ID, err)
	}
	p.rng = &u
	return &u, nil
}

func (p *plainContainer) end() {
	if p.rng != nil {
		releaseUserns(*p.rng)
	}
}

// killGrace bounds the wait for a task after SIGKILL.
const killGrace = 10 * time.Second

// Start creates the container (removing a leftover one with the same id,
// keeping its logs) and starts its task. It returns the container's IP in
// bridge mode. The image must be present (EnsureImage). A task whose spec
// has a sandbox runs as a job attempt (see sandbox.go).
func (r *Runtime) Start(ctx context.Context, t Task) (ip string, err error) {
	if err := validID(t.ID); err != nil {
		return "", err
	}
	if t.Spec == nil {
		return "", fmt.Errorf("runtime: start %s: no spec", t.ID)
	}
	v, err := r.variantOf(t)
	if err != nil {
		return "", err
	}
	ctx = r.withNS(ctx)
	hops := NewHops()
	defer func() {
		if err == nil {
			hops.Log(ctx, r.log, "container start timing", "container", t.ID)
		}
	}()
	if err := r.remove(ctx, t.ID, false); err != nil {
		return "", fmt.Errorf("runtime: start %s: remove the leftover container: %w", t.ID, err)
	}
	hops.Mark("remove")

	ref, err := NormalizeRef(t.Spec.GetImage())
	if err != nil {
		return "", err
	}
	img, err := r.startImage(ctx, t.ID, ref)
	if err != nil {
		return "", err
	}
	hops.Mark("image")

	mode := v.network()
	ports := portMappings(t.Spec.GetPorts())
	if mode == networkNone && len(ports) > 0 {
		return "", fmt.Errorf("runtime: start %s: ports cannot be published with network mode none", t.ID)
	}
	setupStart := time.Now()
	userns, err := v.userns(ctx)
	if err != nil {
		return "", err
	}
	defer v.end()
	if mode != networkNone || userns != nil { // else nothing to tear down (setupNetwork)
		if err := r.markNetwork(t.ID, mode, ports); err != nil {
			return "", err
		}
	}
	nctx, endNet := r.span(ctx, "runtime.network", attribute.String("cc.network", mode))
	nsPath, ip, err := r.setupNetwork(nctx, t.ID, mode, ports, userns)
	endNet(err)
	if err != nil {
		_ = os.RemoveAll(r.filesDir(t.ID))
		return "", err
	}
	hops.Mark("network")
	var container containerd.Container
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if container != nil {
			if task, terr := container.Task(cctx, nil); terr == nil {
				_, _ = task.Delete(cctx, containerd.WithProcessKill)
			}
			_ = r.removeDisk(t.ID) // before the snapshot it is mounted on
			_ = container.Delete(cctx, containerd.WithSnapshotCleanup)
		}
		_ = r.teardownNetwork(cctx, t.ID, mode, ports)
		_ = os.RemoveAll(r.filesDir(t.ID))
		v.undo()
	}()

	etc, err := r.etcFiles(t.ID, t.Name, ip, mode)
	if err != nil {
		return "", err
	}
	mounts, err := r.containerMounts(t)
	if err != nil {
		return "", err
	}
	etc = append(etc, mounts...)
	prep, err := v.prepare(ctx, etc)
	if err != nil {
		return "", err
	}
	if _, sandbox := v.(*jobSandbox); sandbox {
		r.cfg.Metrics.SandboxSetUp(time.Since(setupStart))
	}
	labels := map[string]string{
		LabelContainerID: t.ID,
		LabelName:        t.Name,
		LabelGeneration:  strconv.FormatUint(t.Generation, 10),
		LabelNetwork:     mode,
		LabelNetNS:       nsPath,
	}
	if ip != "" {
		labels[LabelIP] = ip
	}
	if r.cfg.Owner != "" {
		labels[LabelOwner] = r.cfg.Owner
	}
	if p := encodePorts(ports); p != "" {
		labels[LabelPorts] = p
	}
	if v := volumeNames(t.Spec); v != "" {
		labels[LabelVolumes] = v
	}
	maps.Copy(labels, prep.labels)
	hops.Mark("files")
	snapshot := containerd.WithNewSnapshot(t.ID, img)
	if prep.snapshot != nil {
		snapshot = prep.snapshot(t.ID, img)
	}
	cctx, endCreate := r.span(ctx, "containerd.create", attribute.String("cc.container.id", t.ID))
	create := func() (containerd.Container, error) {
		return r.client.NewContainer(cctx, t.ID,
			containerd.WithImage(img),
			snapshot,
			containerd.WithContainerLabels(labels),
			containerd.WithNewSpec(r.specOpts(img, t, nsPath, prep)...),
		)
	}
	container, err = create()
	for try := 0; try < 3 && errdefs.IsAlreadyExists(err); try++ {
		// The snapshot of a creation that did not finish (remove leaves
		// it): removed, and the creation made again. A snapshot already
		// gone by the time it is removed (containerd's collector took it)
		// is tried again too.
		if rerr := r.client.SnapshotService("").Remove(cctx, t.ID); rerr != nil && !errdefs.IsNotFound(rerr) {
			err = fmt.Errorf("%w (and removing the leftover snapshot: %w)", err, rerr)
			break
		}
		container, err = create()
	}
	endCreate(err)
	if err != nil {
		r.images.forget(ref) // read and checked again at the next start
		return "", fmt.Errorf("runtime: create container %s: %w", t.ID, err)
	}
	hops.Mark("create")

	if err := os.MkdirAll(r.logDir(t.ID), 0o750); err != nil {
		return "", fmt.Errorf("runtime: create log directory of %s: %w", t.ID, err)
	}
	_ = os.Remove(r.oomMark(t.ID))
	largs := logger.Args{Dir: r.logDir(t.ID), MaxBytes: r.cfg.LogMaxBytes, MaxFiles: r.cfg.LogMaxFiles}
	sctx, endStart := r.span(ctx, "containerd.start", attribute.String("cc.container.id", t.ID))
	creator, err := r.mainIO(t, &largs)
	if err != nil {
		endStart(err)
		return "", fmt.Errorf("runtime: create task of %s: %w", t.ID, err)
	}
	task, err := container.NewTask(sctx, creator)
	if err != nil {
		endStart(err)
		return "", fmt.Errorf("runtime: create task of %s: %w", t.ID, err)
	}
	hops.Mark("new_task")
	err = task.Start(sctx)
	endStart(err)
	if err != nil {
		return "", fmt.Errorf("runtime: start task of %s: %w (check its command, user and working directory)", t.ID, err)
	}
	hops.Mark("start_task")
	r.recordStart(t.ID, time.Now())
	hops.Mark("record_start")
	return ip, nil
}

// specOpts builds the OCI spec of a container: its own options, then its
// variant's.
func (r *Runtime) specOpts(img containerd.Image, t Task, nsPath string, prep preparation) []oci.SpecOpts {
	s := t.Spec
	opts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if len(s.GetCommand()) > 0 {
		opts = append(opts, oci.WithProcessArgs(s.GetCommand()...))
	}
	if len(s.GetEnv()) > 0 {
		opts = append(opts, oci.WithEnv(s.GetEnv()))
	}
	if s.GetWorkdir() != "" {
		opts = append(opts, oci.WithProcessCwd(s.GetWorkdir()))
	}
	if t.Name != "" {
		opts = append(opts, oci.WithHostname(t.Name))
	}
	if s.GetTty() {
		opts = append(opts, oci.WithTTY)
	}
	if res := s.GetResources(); res != nil {
		if m := res.GetMemoryBytes(); m > 0 {
			opts = append(opts, oci.WithMemoryLimit(uint64(m)))
			if swapAccounting() {
				// No swap on top of the limit: a container over it is
				// OOM-killed rather than swapped.
				opts = append(opts, oci.WithMemorySwap(m))
			}
		}
		if c := res.GetCpuMillis(); c > 0 {
			opts = append(opts, oci.WithCPUCFS(c*100, 100000))
		}
		if p := res.GetPids(); p > 0 {
			opts = append(opts, oci.WithPidsLimit(p))
		}
	}
	if s.GetReadOnly() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	// Before the seccomp profile, which is built from the capabilities
	// (a sandbox leaves none, so the strictest profile).
	opts = append(opts, prep.opts...)
	filters, err := filterOpts(t)
	if err != nil {
		filters = []oci.SpecOpts{func(context.Context, oci.Client, *containers.Container, *oci.Spec) error { return err }}
	}
	opts = append(opts, filters...)
	opts = append(opts,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath}),
		oci.WithMounts(prep.etc),
	)
	return opts
}

// swapAccounting reports whether cgroup v1 memory+swap limits are available.
func swapAccounting() bool {
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// Stop sends SIGTERM to the container's task, waits up to timeout, then
// sends SIGKILL and waits up to killGrace. A container without a running
// task is already stopped.
func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	if err := validID(id); err != nil {
		return err
	}
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: stop %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: stop %s: load task: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("runtime: stop %s: task status: %w", id, err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := task.Wait(wctx)
	if err != nil {
		return fmt.Errorf("runtime: stop %s: wait for task: %w", id, err)
	}
	if st.Status != containerd.Created {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("runtime: stop %s: SIGTERM: %w", id, err)
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-exited:
			return nil
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("runtime: stop %s: %w", id, ctx.Err())
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: stop %s: SIGKILL: %w", id, err)
	}
	timer := time.NewTimer(killGrace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
		return fmt.Errorf("runtime: stop %s: the task did not exit %s after SIGKILL; check containerd and its shim", id, killGrace)
	case <-ctx.Done():
		return fmt.Errorf("runtime: stop %s: %w", id, ctx.Err())
	}
}

// Remove kills and deletes the container's task, detaches its network,
// deletes the container and its snapshot, and, for a job sandbox, unmounts
// and deletes its job directory (output, input, packed archives). Logs are
// kept until RemoveLogs.
// Removing a missing container is not an error.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	return r.remove(ctx, id, true)
}

// remove is Remove; without orphanSnapshot, a snapshot left without its
// container (a creation that did not finish) stays: Start, which removes
// it only when its creation meets it, saves a call to containerd.
func (r *Runtime) remove(ctx context.Context, id string, orphanSnapshot bool) error {
	ctx = r.withNS(ctx)
	mode, ports := networkBridge, ""
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: remove %s: %w", id, err)
	}
	var errs []error
	taskGone := true
	if c != nil {
		if info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil {
			if m := info.Labels[LabelNetwork]; m != "" {
				mode = m
			}
			ports = info.Labels[LabelPorts]
		}
		if task, err := c.Task(ctx, nil); err == nil {
			dctx, cancel := context.WithTimeout(ctx, killGrace+20*time.Second)
			_, err := task.Delete(dctx, containerd.WithProcessKill)
			if err != nil && !errdefs.IsNotFound(err) {
				// An exec process that outlived the kill keeps the task
				// (the shim: "cannot delete a running process"): kill
				// every process of the task again and delete once more.
				_ = task.Kill(dctx, syscall.SIGKILL, containerd.WithKillAll)
				time.Sleep(200 * time.Millisecond)
				_, err = task.Delete(dctx, containerd.WithProcessKill)
			}
			if err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task: %w", err))
				taskGone = false
			}
			cancel()
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("load task: %w", err))
			taskGone = false
		}
	}
	// The disk mounted on the snapshot goes first (disk.go).
	if taskGone {
		if err := r.removeDisk(id); err != nil {
			errs = append(errs, err)
		}
	}
	if c == nil && orphanSnapshot {
		// A snapshot left by a creation that did not finish.
		if err := r.client.SnapshotService("").Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove leftover snapshot: %w", err))
		}
	}
	if c != nil {
		if err := r.teardownNetwork(ctx, id, mode, decodePorts(ports)); err != nil {
			errs = append(errs, err)
		}
	} else if mode, ports, ok := r.leftoverNetwork(id); ok {
		// A creation that did not finish.
		if err := r.teardownNetwork(ctx, id, mode, ports); err != nil {
			errs = append(errs, err)
		}
	}
	if c != nil && taskGone {
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container: %w", err))
		}
	}
	_ = os.Remove(r.oomMark(id))
	_ = os.Remove(r.stdinFIFO(id))
	_ = os.RemoveAll(r.filesDir(id))
	r.starts.Delete(id)
	// A job sandbox's files: the /output mount, input, packed archives.
	if err := r.removeJobDir(id); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime: remove %s: %w", id, err)
	}
	return nil
}

// List reports every container of the namespace that carries the runtime's
// labels, with its task's live status: two calls to containerd (the
// containers with their labels, the tasks with their status) whatever the
// number of containers.
func (r *Runtime) List(ctx context.Context) ([]Observed, error) {
	ctx = r.withNS(ctx)
	cs, err := r.client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: list containers in namespace %s: %w", r.cfg.Namespace, err)
	}
	// After the containers: a container created meanwhile shows without
	// its task (FAILED) until the next pass, never the reverse.
	tl, err := r.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("runtime: list tasks in namespace %s: %w", r.cfg.Namespace, errgrpc.ToNative(err))
	}
	procs := make(map[string]*tasktypes.Process, len(tl.Tasks))
	for _, p := range tl.Tasks {
		procs[p.ID] = p
	}
	var out []Observed
	for _, info := range cs {
		if _, ok := info.Labels[LabelContainerID]; !ok {
			continue
		}
		if r.cfg.Owner != "" && info.Labels[LabelOwner] != r.cfg.Owner {
			continue // another agent's container on this host
		}
		out = append(out, r.observe(info, procs[info.ID]))
	}
	return out, nil
}

// observe reads a container's record and its task (nil: none).
func (r *Runtime) observe(info containers.Container, p *tasktypes.Process) Observed {
	l := info.Labels
	o := Observed{ID: l[LabelContainerID], Name: l[LabelName], IP: l[LabelIP], JobID: l[LabelJob]}
	if v := l[LabelVolumes]; v != "" {
		o.Volumes = strings.Split(v, ",")
	}
	o.Generation, _ = strconv.ParseUint(l[LabelGeneration], 10, 64)
	o.StartedAt = r.startedAt(o.ID, l[LabelStartedAt])
	if p == nil {
		o.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
		o.Error = "the container has no task (it was never started, or containerd lost it)"
		return o
	}
	switch p.Status {
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		o.State = ccv1.ContainerState_CONTAINER_STATE_RUNNING
	case tasktypes.Status_STOPPED:
		o.State = ccv1.ContainerState_CONTAINER_STATE_EXITED
		o.ExitCode = int32(p.ExitStatus)
		if p.ExitedAt != nil {
			o.FinishedAt = p.ExitedAt.AsTime()
		}
		o.OOMKilled = r.oomKilled(info, o.ID)
	case tasktypes.Status_CREATED:
		o.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
		o.Error = "the task was created but never started"
	default:
		o.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
		o.Error = fmt.Sprintf("task status %q", strings.ToLower(p.Status.String()))
	}
	return o
}

// oomKilled says whether the kernel's OOM killer struck in the container:
// an OOM event was seen (Events) or its memory cgroup counts an OOM kill.
// A positive cgroup answer is remembered in a file, since the cgroup goes
// away with the task.
func (r *Runtime) oomKilled(info containers.Container, id string) bool {
	if _, err := os.Stat(r.oomMark(id)); err == nil {
		return true
	}
	if info.Spec == nil {
		return false
	}
	var spec oci.Spec
	if err := json.Unmarshal(info.Spec.GetValue(), &spec); err != nil || spec.Linux == nil || spec.Linux.CgroupsPath == "" || strings.Contains(spec.Linux.CgroupsPath, ":") {
		return false
	}
	if cgroupOOMKills(spec.Linux.CgroupsPath) > 0 {
		r.markOOM(id)
		return true
	}
	return false
}

func (r *Runtime) markOOM(id string) {
	if err := os.WriteFile(r.oomMark(id), []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o640); err != nil {
		r.log.Warn("remember OOM kill", "container", id, "err", err)
	}
}

// cgroupOOMKills reads the oom_kill counter of a cgroup: memory.oom_control
// on cgroup v1, memory.events on v2.
func cgroupOOMKills(cgroupPath string) int64 {
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", cgroupPath, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", cgroupPath, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && k == "oom_kill" {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
	}
	return 0
}
