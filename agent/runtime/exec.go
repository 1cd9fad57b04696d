package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// ExecOutputLimit is how much of an exec'd process's combined output Exec
// keeps; the rest is read and dropped.
const ExecOutputLimit = 4096

// ErrExecTimeout is returned (wrapped) by Exec when the process outlived
// its timeout and was killed.
var ErrExecTimeout = errors.New("timed out")

// ErrNotRunning is returned (wrapped) when a container has no running task.
var ErrNotRunning = errors.New("the container is not running")

// ioGrace bounds the wait for the rest of an exec'd process's output after
// it exited (a background child may hold its stdout open).
const ioGrace = time.Second

// Exec runs argv in the running container id as a new process with the
// container's environment, working directory, user and privileges, without
// a terminal or stdin, and returns its exit code and combined stdout and
// stderr (the first ExecOutputLimit bytes). When timeout passes or ctx
// ends first, the process is killed and err wraps ErrExecTimeout or the
// context's error. Whatever happens, the exec'd process is deleted from
// containerd and its FIFOs removed before Exec returns (children it left
// running in the container are not tracked).
func (r *Runtime) Exec(ctx context.Context, id string, argv []string, timeout time.Duration) (exitCode int, output []byte, err error) {
	if err := validID(id); err != nil {
		return -1, nil, err
	}
	if len(argv) == 0 {
		return -1, nil, fmt.Errorf("runtime: exec in %s: empty command", id)
	}
	if timeout <= 0 {
		return -1, nil, fmt.Errorf("runtime: exec in %s: timeout %s must be positive", id, timeout)
	}
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w", id, ErrNotRunning)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w", id, ErrNotRunning)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: load task: %w", id, err)
	}
	if st, err := task.Status(ctx); err != nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: task status: %w", id, err)
	} else if st.Status != containerd.Running {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w (task %s)", id, ErrNotRunning, st.Status)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: read spec: %w", id, err)
	}
	if spec.Process == nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: the container's spec has no process", id)
	}
	pspec := *spec.Process
	pspec.Args = slices.Clone(argv)
	pspec.Terminal = false
	pspec.ConsoleSize = nil

	out := &boundedBuffer{max: ExecOutputLimit}
	execID := "exec-" + randomID()
	p, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(r.fifoDir())))
	if errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w (%v)", id, ErrNotRunning, err)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("runtime: exec in %s: %w", id, err)
	}
	// Cleanup runs even when ctx has ended, bounded on its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace+20*time.Second)
	defer cancel()
	code, runErr := runExec(ctx, cctx, p, timeout)
	delErr := deleteExec(cctx, p)
	if runErr != nil {
		return -1, out.Bytes(), fmt.Errorf("runtime: exec %q in %s: %w", argv[0], id, errors.Join(runErr, delErr))
	}
	if delErr != nil {
		return -1, out.Bytes(), fmt.Errorf("runtime: exec %q in %s: %w", argv[0], id, delErr)
	}
	return code, out.Bytes(), nil
}

// runExec starts p and waits for it up to timeout or the end of ctx, when
// it kills p and waits for it to exit (cctx bounds the calls made after
// ctx ended).
func runExec(ctx, cctx context.Context, p containerd.Process, timeout time.Duration) (int, error) {
	wctx, wcancel := context.WithCancel(cctx)
	defer wcancel()
	exited, err := p.Wait(wctx)
	if err != nil {
		return -1, fmt.Errorf("wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		if errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) {
			return -1, fmt.Errorf("start: %w (%v)", ErrNotRunning, err)
		}
		return -1, fmt.Errorf("start: %w (check the command exists in the image)", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var reason error
	select {
	case st := <-exited:
		code, _, err := st.Result()
		if err != nil {
			return -1, fmt.Errorf("wait: %w", err)
		}
		waitIO(p.IO())
		return int(code), nil
	case <-timer.C:
		reason = fmt.Errorf("%w after %s; killed", ErrExecTimeout, timeout)
	case <-ctx.Done():
		reason = fmt.Errorf("%w; killed", ctx.Err())
	}
	if err := p.Kill(cctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return -1, errors.Join(reason, fmt.Errorf("SIGKILL: %w", err))
	}
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	select {
	case <-exited:
	case <-grace.C:
		return -1, errors.Join(reason, fmt.Errorf("the process did not exit %s after SIGKILL", killGrace))
	}
	return -1, reason
}

// waitIO waits up to ioGrace for the copy of the output to finish.
func waitIO(io cio.IO) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Wait()
	}()
	timer := time.NewTimer(ioGrace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		io.Cancel() // ends the copy; done follows
		<-done
	}
}

// deleteExec kills p if it still runs, deletes it from containerd and
// releases its IO (FIFOs included).
func deleteExec(ctx context.Context, p containerd.Process) error {
	_, err := p.Delete(ctx, containerd.WithProcessKill)
	if err != nil && !errdefs.IsNotFound(err) {
		// Delete releases the IO only on success.
		io := p.IO()
		io.Cancel()
		io.Wait()
		_ = io.Close()
		return fmt.Errorf("delete the exec'd process: %w", err)
	}
	return nil
}

func (r *Runtime) fifoDir() string {
	return filepath.Join(r.cfg.StateDir, "fifo")
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// boundedBuffer keeps the first max bytes written to it and drops the
// rest; it is safe for concurrent writers (stdout and stderr).
type boundedBuffer struct {
	max int

	mu  sync.Mutex
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *boundedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.buf)
}
