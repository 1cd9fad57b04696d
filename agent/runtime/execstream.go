package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TermSize is a terminal's size in characters.
type TermSize struct {
	Width, Height uint32
}

// ExecSpec is a process to run in a running container, with its streams.
type ExecSpec struct {
	// Args is the command; it is not run by a shell.
	Args []string
	// Env adds KEY=VALUE pairs to the container's environment.
	Env []string
	// User is a name from the container's /etc/passwd, uid or uid:gid;
	// empty: the container's user.
	User string
	// Workdir is the working directory; empty: the container's.
	Workdir string
	// TTY gives the process a terminal: its output all goes to Stdout.
	TTY bool
	// Size is the terminal's first size (TTY only); nil: the default.
	Size *TermSize
	// Stdin feeds the process's stdin until it ends (EOF closes the
	// process's stdin); nil: the process has no stdin.
	Stdin io.Reader
	// Stdout and Stderr take the process's output.
	Stdout, Stderr io.Writer
	// Resize carries the terminal's new sizes (TTY only); nil: none.
	Resize <-chan TermSize
}

// ErrExecSetup is returned (wrapped) by ExecStream when the process could
// not be started: the container is not running, the user is unknown, the
// command does not exist.
var ErrExecSetup = errors.New("cannot run the process")

// ExecStream runs a process in the running container id with the
// container's environment, working directory, user and privileges
// (changed as spec says), streams its IO and returns its exit status
// (128+N when signal N killed it). When ctx ends first, the process is
// killed. The process is deleted from containerd and its FIFOs removed
// before ExecStream returns.
func (r *Runtime) ExecStream(ctx context.Context, id string, spec ExecSpec) (int, error) {
	if err := validID(id); err != nil {
		return -1, err
	}
	if len(spec.Args) == 0 {
		return -1, fmt.Errorf("runtime: exec in %s: %w: empty command", id, ErrExecSetup)
	}
	ctx = r.withNS(ctx)
	task, pspec, err := r.execProcessSpec(ctx, id, spec)
	if err != nil {
		return -1, err
	}
	// stdinEOF is closed when the caller's stdin ended: the process's
	// stdin is closed then (after it started).
	var stdin io.Reader
	stdinEOF := make(chan struct{})
	if spec.Stdin != nil {
		stdin = &eofReader{r: spec.Stdin, eof: stdinEOF}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, spec.Stdout, spec.Stderr), cio.WithFIFODir(r.fifoDir())}
	if spec.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	execID := "exec-" + randomID()
	p, err := task.Exec(ctx, execID, pspec, cio.NewCreator(opts...))
	if errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) {
		return -1, fmt.Errorf("runtime: exec in %s: %w: %w (%v)", id, ErrExecSetup, ErrNotRunning, err)
	}
	if err != nil {
		return -1, fmt.Errorf("runtime: exec in %s: %w: %v", id, ErrExecSetup, err)
	}
	code, runErr := r.streamExec(ctx, p, spec, stdinEOF)
	// Cleanup runs even when ctx has ended, bounded on its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace+20*time.Second)
	defer cancel()
	delErr := deleteExec(cctx, p)
	if runErr != nil {
		return -1, fmt.Errorf("runtime: exec %q in %s: %w", spec.Args[0], id, errors.Join(runErr, delErr))
	}
	return code, nil
}

// execProcessSpec loads the running task of container id and the spec of
// a process in it: the container's process with spec's changes.
func (r *Runtime) execProcessSpec(ctx context.Context, id string, spec ExecSpec) (containerd.Task, *specs.Process, error) {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("runtime: exec in %s: %w: %w", id, ErrExecSetup, ErrNotRunning)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: exec in %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("runtime: exec in %s: %w: %w", id, ErrExecSetup, ErrNotRunning)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: exec in %s: load task: %w", id, err)
	}
	if st, err := task.Status(ctx); err != nil {
		return nil, nil, fmt.Errorf("runtime: exec in %s: task status: %w", id, err)
	} else if st.Status != containerd.Running {
		return nil, nil, fmt.Errorf("runtime: exec in %s: %w: %w (task %s)", id, ErrExecSetup, ErrNotRunning, st.Status)
	}
	full, err := c.Spec(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: exec in %s: read spec: %w", id, err)
	}
	if full.Process == nil {
		return nil, nil, fmt.Errorf("runtime: exec in %s: the container's spec has no process", id)
	}
	ps := *full.Process
	ps.Args = slices.Clone(spec.Args)
	ps.Env = append(slices.Clone(ps.Env), spec.Env...)
	ps.Terminal = spec.TTY
	ps.ConsoleSize = nil
	if spec.TTY && spec.Size != nil && spec.Size.Width > 0 && spec.Size.Height > 0 {
		ps.ConsoleSize = &specs.Box{Width: uint(spec.Size.Width), Height: uint(spec.Size.Height)}
	}
	if spec.Workdir != "" {
		ps.Cwd = spec.Workdir
	}
	if spec.User != "" {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("runtime: exec in %s: %w", id, err)
		}
		// WithUser reads the names from the container's own rootfs
		// (/etc/passwd and /etc/group of its snapshot).
		tmp := *full
		tmp.Process = &ps
		if err := oci.WithUser(spec.User)(ctx, r.client, &info, &tmp); err != nil {
			return nil, nil, fmt.Errorf("runtime: exec in %s: %w: user %q: %v", id, ErrExecSetup, spec.User, err)
		}
		ps.User.AdditionalGids = nil
		if err := oci.WithAdditionalGIDs(spec.User)(ctx, r.client, &info, &tmp); err != nil {
			r.log.Debug("exec: no additional groups", "user", spec.User, "err", err)
		}
	}
	return task, &ps, nil
}

// streamExec starts p, passes the terminal's resizes and the end of stdin
// on, and waits for p's exit (killing it when ctx ends first).
func (r *Runtime) streamExec(ctx context.Context, p containerd.Process, spec ExecSpec, stdinEOF <-chan struct{}) (int, error) {
	// The wait outlives ctx (the process is killed then, and waited for).
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	exited, err := p.Wait(wctx)
	if err != nil {
		return -1, fmt.Errorf("wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return -1, fmt.Errorf("%w: start: %v (check the command exists in the image)", ErrExecSetup, err)
	}
	closed := stdinEOF
	if spec.Stdin == nil {
		closed = nil
	}
	for {
		select {
		case st := <-exited:
			code, _, err := st.Result()
			if err != nil {
				return -1, fmt.Errorf("wait: %w", err)
			}
			waitIO(p.IO())
			return int(code), nil
		case sz, ok := <-spec.Resize:
			if !ok {
				spec.Resize = nil
				continue
			}
			if spec.TTY && sz.Width > 0 && sz.Height > 0 {
				if err := p.Resize(ctx, sz.Width, sz.Height); err != nil {
					r.log.Warn("exec: cannot resize the terminal", "exec_id", p.ID(), "err", err)
				}
			}
		case <-closed:
			closed = nil
			if err := p.CloseIO(ctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				return -1, fmt.Errorf("close stdin: %w", err)
			}
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace+20*time.Second)
			defer cancel()
			if err := p.Kill(cctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				return -1, errors.Join(ctx.Err(), fmt.Errorf("SIGKILL: %w", err))
			}
			grace := time.NewTimer(killGrace)
			defer grace.Stop()
			select {
			case <-exited:
			case <-grace.C:
			}
			return -1, fmt.Errorf("%w; killed", ctx.Err())
		}
	}
}

// eofReader closes eof when r ends.
type eofReader struct {
	r      io.Reader
	eof    chan struct{}
	closed bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !e.closed {
		e.closed = true
		close(e.eof)
	}
	return n, err
}
