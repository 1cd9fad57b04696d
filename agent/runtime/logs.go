package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// ErrNotFound is returned (wrapped) for a container that has neither a
// containerd record nor logs.
var ErrNotFound = errdefs.ErrNotFound

// logPoll is how often a followed log is checked for new output.
const logPoll = 200 * time.Millisecond

// Logs writes the container's log to fn, piece by piece as the logger
// recorded them (stdout and stderr interleaved, stream "stdout" or
// "stderr"). With tail > 0 it starts tail lines from the end. With follow it
// keeps going until ctx ends or the container's task has exited (or is gone)
// and the log is drained. An error from fn ends it.
func (r *Runtime) Logs(ctx context.Context, id string, tail int64, follow bool, fn func(stream string, data []byte) error) error {
	if err := validID(id); err != nil {
		return err
	}
	dir := r.logDir(id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := r.client.LoadContainer(r.withNS(ctx), id); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("runtime: logs of %s: no such container and no logs: %w", id, ErrNotFound)
			}
			return fmt.Errorf("runtime: logs of %s: %w", id, err)
		}
	}
	emit := func(recs []*logRecord) error {
		for _, rec := range recs {
			if err := fn(rec.Stream, rec.Data()); err != nil {
				return err
			}
		}
		return nil
	}

	files := logFiles(dir)
	current := files[len(files)-1]
	recs, err := readAllRecords(files[:len(files)-1])
	if err != nil {
		return fmt.Errorf("runtime: read logs of %s: %w", id, err)
	}
	var rr *recordReader
	defer func() {
		if rr != nil {
			rr.f.Close()
		}
	}()
	if f, err := os.Open(current); err == nil {
		rr = newRecordReader(f)
		for {
			rec, err := rr.next()
			if err != nil {
				break
			}
			recs = append(recs, rec)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("runtime: read logs of %s: %w", id, err)
	}
	if err := emit(tailRecords(recs, tail)); err != nil {
		return err
	}
	if !follow {
		return nil
	}

	ticker := time.NewTicker(logPoll)
	defer ticker.Stop()
	quiet := 0 // polls without output since the task was seen done
	for {
		got := false
		if rr == nil {
			if f, err := os.Open(current); err == nil {
				rr = newRecordReader(f)
			}
		}
		if rr != nil {
			// Look for a rotation before draining: once the open file has
			// been renamed, nothing more is written to it.
			rotated := !sameFile(rr.f, current)
			for {
				rec, err := rr.next()
				if err != nil {
					break
				}
				got = true
				if err := fn(rec.Stream, rec.Data()); err != nil {
					return err
				}
			}
			// Rotated: the open file is now output.log.1 and drained;
			// continue with the new current file.
			if rotated {
				rr.f.Close()
				rr = nil
				continue
			}
		}
		if got {
			quiet = 0
		} else if r.taskDone(ctx, id) {
			quiet++
			if quiet >= 3 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // gone for good: keep the old one
	}
	as, ok1 := a.Sys().(*syscall.Stat_t)
	bs, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return os.SameFile(a, b)
	}
	return as.Dev == bs.Dev && as.Ino == bs.Ino
}

// taskDone reports whether the container has no running task.
func (r *Runtime) taskDone(ctx context.Context, id string) bool {
	ctx = r.withNS(ctx)
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return errdefs.IsNotFound(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return errdefs.IsNotFound(err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return errdefs.IsNotFound(err)
	}
	return st.Status == containerd.Stopped
}
