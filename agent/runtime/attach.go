package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/containercodes/cc/agent/runtime/internal/logger"
)

// Attaching to a container's main process.
//
// A container started with tty or stdin_open keeps its output going to the
// logger (with a terminal, the shim copies the terminal's output to the
// logger's stdout) and gets a FIFO as its stdin, at a path of the agent's
// state: the logger holds it open for writing as long as the task lives,
// so the process's stdin never ends when an attached client goes or the
// agent restarts. Attach follows the output through the log files, writes
// the client's stdin to the FIFO and resizes the task's terminal.

// stdinFIFO is the path of a container's stdin FIFO.
func (r *Runtime) stdinFIFO(id string) string {
	return filepath.Join(r.fifoDir(), id+".stdin")
}

// mainIO is the IO of a container's main process: the logger binary, and
// for a terminal or an open stdin, a stdin FIFO (which largs gets).
func (r *Runtime) mainIO(t Task, largs *logger.Args) (cio.Creator, error) {
	tty, stdin := t.Spec.GetTty(), t.Spec.GetStdinOpen()
	if !tty && !stdin {
		return cio.BinaryIO(r.cfg.LoggerPath, map[string]string{"logger": largs.Query()}), nil
	}
	fifo := r.stdinFIFO(t.ID)
	if err := os.MkdirAll(r.fifoDir(), 0o700); err != nil {
		return nil, err
	}
	_ = os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("stdin FIFO: %w", err)
	}
	largs.Stdin = fifo
	binary := cio.BinaryIO(r.cfg.LoggerPath, map[string]string{"logger": largs.Query()})
	return func(id string) (cio.IO, error) {
		io, err := binary(id)
		if err != nil {
			return nil, err
		}
		return &attachableIO{IO: io, stdin: fifo, terminal: tty}, nil
	}, nil
}

// attachableIO is the logger's IO with a stdin FIFO and maybe a terminal.
type attachableIO struct {
	cio.IO
	stdin    string
	terminal bool
}

func (a *attachableIO) Config() cio.Config {
	c := a.IO.Config()
	c.Stdin, c.Terminal = a.stdin, a.terminal
	if a.terminal {
		c.Stderr = "" // a terminal has one output
	}
	return c
}

// Attach follows the output of container id's main process (from the
// last tail lines, 0: all), writes spec.Stdin to its stdin when it was
// started with one, and passes spec.Resize on to its terminal, until the
// process ends (and its output is drained) or ctx ends.
func (r *Runtime) Attach(ctx context.Context, id string, tail int64, spec ExecSpec) error {
	if err := validID(id); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nctx := r.withNS(ctx)
	c, err := r.client.LoadContainer(nctx, id)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: attach to %s: %w: %w", id, ErrExecSetup, ErrNotRunning)
	}
	if err != nil {
		return fmt.Errorf("runtime: attach to %s: %w", id, err)
	}
	task, err := c.Task(nctx, nil)
	if err != nil {
		return fmt.Errorf("runtime: attach to %s: %w: %w", id, ErrExecSetup, ErrNotRunning)
	}
	if spec.Stdin != nil {
		if _, err := os.Stat(r.stdinFIFO(id)); err == nil {
			// The logger holds the FIFO open; without a reader (a
			// container started by an older agent) the open fails
			// rather than waits.
			f, err := os.OpenFile(r.stdinFIFO(id), os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("runtime: attach to %s: open stdin: %w", id, err)
			}
			defer f.Close()
			go func() {
				_, _ = io.Copy(f, spec.Stdin)
			}()
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sz, ok := <-spec.Resize:
				if !ok {
					return
				}
				if sz.Width > 0 && sz.Height > 0 {
					if err := task.Resize(nctx, sz.Width, sz.Height); err != nil {
						r.log.Debug("attach: cannot resize the terminal", "container_id", id, "err", err)
					}
				}
			}
		}
	}()
	if spec.Size != nil && spec.Size.Width > 0 && spec.Size.Height > 0 {
		_ = task.Resize(nctx, spec.Size.Width, spec.Size.Height)
	}
	err = r.Logs(ctx, id, tail, true, func(stream string, data []byte) error {
		w := spec.Stdout
		if stream == "stderr" && spec.Stderr != nil {
			w = spec.Stderr
		}
		_, err := w.Write(data)
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("runtime: attach to %s: %w", id, err)
	}
	return err
}
