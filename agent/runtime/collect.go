package runtime

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containercodes/cc/agent/jobs"
	"github.com/containercodes/cc/agent/runtime/internal/logger"
)

// CollectOutput packs the /output of an ended job sandbox into
// <StateDir>/jobs/<id>/output.tar.gz (see jobs.Pack for what the archive
// holds and refuses) and returns its path, sha256, size and entry count.
//
// A refusal caused by the job's output (over limits, a device file, ...)
// is returned as the *jobs.RefusedError itself, unwrapped, so its message
// can go to the job's owner as it is; other errors are the agent's.
//
// An archive packed before (by this or an earlier agent) is reused when the
// sidecar output.tar.gz.sha256 records its digest and the file still has
// it; otherwise the output is packed again. The container's task must have
// ended: a running job is refused, since its output is still changing.
func (r *Runtime) CollectOutput(ctx context.Context, id string, limits jobs.Limits) (jobs.Packed, error) {
	if err := validID(id); err != nil {
		return jobs.Packed{}, err
	}
	dir := r.JobDir(id)
	out := filepath.Join(dir, jobOutputDir)
	if st, err := os.Stat(out); err != nil || !st.IsDir() {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: it has no output directory (not a job sandbox, or removed): %w", id, ErrNotFound)
	}
	running, err := r.taskRunning(ctx, id)
	if err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: %w", id, err)
	}
	if running {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: %w; stop it first", id, errStillRunning)
	}
	archive := filepath.Join(dir, jobOutputTarGz)
	sidecar := filepath.Join(dir, jobOutputSHA256)
	if p, ok := reusePacked(archive, sidecar); ok {
		return p, nil
	}
	if mounted, err := isMountPoint(out); err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: %w", id, err)
	} else if !mounted {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: its output filesystem is not mounted at %s any more (was the host restarted?); the output is lost", id, out)
	}
	_ = os.Remove(sidecar)

	var files uint32
	p, err := writePacked(ctx, archive, func(w io.Writer) error {
		n, err := jobs.Pack(out, w, limits)
		files = n
		return err
	})
	if err != nil {
		if jobs.IsRefused(err) {
			var rerr *jobs.RefusedError
			errors.As(err, &rerr)
			return jobs.Packed{}, rerr
		}
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: %w", id, err)
	}
	p.Files = files
	line := fmt.Sprintf("%s %d %d\n", p.SHA256, p.Size, p.Files)
	if err := writeFileAtomic(sidecar, []byte(line), 0o640); err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: collect the output of %s: %w", id, err)
	}
	return p, nil
}

// ReleaseOutput unmounts the /output filesystem of an ended job sandbox,
// giving back the memory its files hold, once CollectOutput has packed
// them: the archive stays, and CollectOutput keeps returning it. Without an
// archive it refuses (the output would be lost). Releasing twice is fine.
func (r *Runtime) ReleaseOutput(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	dir := r.JobDir(id)
	out := filepath.Join(dir, jobOutputDir)
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("runtime: release the output of %s: it has no output directory (not a job sandbox, or removed): %w", id, ErrNotFound)
	}
	if running, err := r.taskRunning(ctx, id); err != nil {
		return fmt.Errorf("runtime: release the output of %s: %w", id, err)
	} else if running {
		return fmt.Errorf("runtime: release the output of %s: %w", id, errStillRunning)
	}
	if _, ok := reusePacked(filepath.Join(dir, jobOutputTarGz), filepath.Join(dir, jobOutputSHA256)); !ok {
		return fmt.Errorf("runtime: release the output of %s: it has not been packed (CollectOutput first)", id)
	}
	if err := unmountUnder(out); err != nil {
		return fmt.Errorf("runtime: release the output of %s: %w", id, err)
	}
	return nil
}

// errStillRunning: collection needs an ended task.
var errStillRunning = errors.New("the job is still running")

// reusePacked returns an archive packed before when its sidecar
// ("sha256:<hex> <size> <files>") matches the file.
func reusePacked(archive, sidecar string) (jobs.Packed, bool) {
	b, err := os.ReadFile(sidecar)
	if err != nil {
		return jobs.Packed{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || !strings.HasPrefix(f[0], "sha256:") {
		return jobs.Packed{}, false
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	files, err2 := strconv.ParseUint(f[2], 10, 32)
	if err1 != nil || err2 != nil {
		return jobs.Packed{}, false
	}
	a, err := os.Open(archive)
	if err != nil {
		return jobs.Packed{}, false
	}
	defer a.Close()
	h := sha256.New()
	n, err := io.Copy(h, a)
	if err != nil || n != size || "sha256:"+hex.EncodeToString(h.Sum(nil)) != f[0] {
		return jobs.Packed{}, false
	}
	return jobs.Packed{Path: archive, SHA256: f[0], Size: size, Files: uint32(files)}, true
}

// writePacked writes a file through fill, atomically (a temporary file
// renamed into place), computing its sha256 and size as it goes.
func writePacked(ctx context.Context, path string, fill func(io.Writer) error) (jobs.Packed, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return jobs.Packed{}, fmt.Errorf("create %s: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	cw := &countingWriter{ctx: ctx, h: h}
	bw := bufio.NewWriterSize(io.MultiWriter(f, cw), 256<<10)
	if err := fill(bw); err != nil {
		return jobs.Packed{}, err
	}
	if err := bw.Flush(); err != nil {
		return jobs.Packed{}, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return jobs.Packed{}, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		done = true
		os.Remove(tmp)
		return jobs.Packed{}, fmt.Errorf("close %s: %w", tmp, err)
	}
	done = true
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return jobs.Packed{}, fmt.Errorf("rename %s: %w", tmp, err)
	}
	return jobs.Packed{Path: path, SHA256: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: cw.n}, nil
}

// countingWriter hashes and counts what is written, and fails once ctx
// ended.
type countingWriter struct {
	ctx context.Context
	h   hash.Hash
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// Settling of the log files before PackLogs copies them, when the logger
// cannot say it drained its pipes (logger.Drained): it may still be writing
// the last pieces a job wrote just before it exited.
const (
	logSettlePoll = 100 * time.Millisecond
	logSettleMax  = 2 * time.Second
)

// PackLogs copies the log of an ended container (a job sandbox) into one
// file, <StateDir>/jobs/<id>/logs.jsonl, and returns its path, sha256 and
// size (Files is 0). Older output that rotation dropped is not in it.
//
// The format, for readers that cannot import this package (the control
// plane parses it itself): UTF-8 JSON lines, each ending in "\n", one
// record per piece of output in the order the logger received them (the
// oldest rotated file first, the current file last; stdout and stderr
// interleaved), each an object with exactly these keys:
//
//		{"t":"2025-01-02T03:04:05.123456789Z","s":"stdout","d":"hello\n"}
//		{"t":"2025-01-02T03:04:05.2Z","s":"stderr","b":"/w=="}
//
//	  - "t": when the piece was read, RFC 3339 with up to nanoseconds, UTC;
//	  - "s": the stream, "stdout" or "stderr";
//	  - "d": the piece as a JSON string when it is valid UTF-8 (omitted when
//	    empty), or else "b": the piece's bytes in standard base64 (padded).
//
// A piece is whatever one read from the pipe returned (up to 32 KiB): it
// may hold several lines or part of one. Concatenating the data of the
// records of one stream gives that stream's bytes. The file is rewritten
// on every call.
func (r *Runtime) PackLogs(ctx context.Context, id string) (jobs.Packed, error) {
	if err := validID(id); err != nil {
		return jobs.Packed{}, err
	}
	running, err := r.taskRunning(ctx, id)
	if err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: %w", id, err)
	}
	if running {
		return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: %w; stop it first", id, errStillRunning)
	}
	ldir := r.logDir(id)
	if _, err := os.Stat(ldir); err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: no logs: %w", id, ErrNotFound)
	}
	if !logger.Drained(ctx, ldir) {
		if err := waitLogsSettled(ctx, ldir); err != nil {
			return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: %w", id, err)
		}
	}
	if err := os.MkdirAll(r.JobDir(id), 0o750); err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: %w", id, err)
	}
	p, err := writePacked(ctx, filepath.Join(r.JobDir(id), jobLogs), func(w io.Writer) error {
		for _, name := range logFiles(ldir) {
			f, err := os.Open(name)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			rr := newRecordReader(f)
			for {
				rec, err := rr.next()
				if err != nil {
					break
				}
				if _, err := w.Write(encodeRecord(rec.Stream, rec.Time, rec.Data())); err != nil {
					f.Close()
					return err
				}
			}
			f.Close()
		}
		return nil
	})
	if err != nil {
		return jobs.Packed{}, fmt.Errorf("runtime: pack the logs of %s: %w", id, err)
	}
	return p, nil
}

// waitLogsSettled waits (at most logSettleMax) until the log files of dir
// stop changing between two looks.
func waitLogsSettled(ctx context.Context, dir string) error {
	sizes := func() string {
		var b strings.Builder
		for _, f := range logFiles(dir) {
			if st, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%s:%d;", filepath.Base(f), st.Size())
			}
		}
		return b.String()
	}
	prev := sizes()
	deadline := time.Now().Add(logSettleMax)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(logSettlePoll):
		}
		cur := sizes()
		if cur == prev {
			return nil
		}
		prev = cur
	}
	return nil
}
