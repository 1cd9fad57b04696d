package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/agent/jobs"
	"github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Job attempts are containers whose spec has a sandbox. The worker adds
// three things to what it does for any container:
//
//   - the timeout: a running attempt is stopped (SIGTERM, then SIGKILL after
//     its kill grace) once it has run for its timeout;
//   - collection: once it ended, its /output is packed and its logs copied,
//     both uploaded to the control plane, which answers only when they are
//     on a majority of servers; until then the attempt is reported exited
//     but not collected, so the job is not called done;
//   - the result: the status of a collected attempt carries the digests.
//
// Nothing of this lives only in memory: after an agent restart, an ended
// attempt whose record still exists is collected (packing reuses what was
// packed) and uploaded again (the blob store keeps one copy per digest).

// uploadChunk is the size of an upload message.
const uploadChunk = 1 << 20

// jobTimeout is an attempt's timeout.
func jobTimeout(a *ccv1.Assignment) time.Duration {
	return jobspec.SandboxTimeout(a.GetSpec().GetSandbox())
}

// killGrace is an attempt's wait between SIGTERM and SIGKILL.
func killGrace(a *ccv1.Assignment) time.Duration {
	return jobspec.SandboxKillGrace(a.GetSpec().GetSandbox())
}

// timedOut says whether an ended attempt ran for its whole timeout: the
// worker stopped it then (before the timeout it ends by itself).
func timedOut(a *ccv1.Assignment, o runtime.Observed) bool {
	return !o.StartedAt.IsZero() && !o.FinishedAt.IsZero() && o.FinishedAt.Sub(o.StartedAt) >= jobTimeout(a)
}

// jobPass enforces timeouts and starts collections; it returns when the
// next timeout is due.
func (w *Worker) jobPass(ctx context.Context, desired map[string]*ccv1.Assignment, observed map[string]runtime.Observed) (wakeAt time.Time) {
	now := time.Now()
	for id, a := range desired {
		if a.GetSpec().GetSandbox() == nil {
			continue
		}
		o, seen := observed[id]
		if !seen {
			continue
		}
		switch o.State {
		case ccv1.ContainerState_CONTAINER_STATE_RUNNING:
			deadline := o.StartedAt.Add(jobTimeout(a))
			if now.Before(deadline) {
				if wakeAt.IsZero() || deadline.Before(wakeAt) {
					wakeAt = deadline
				}
				continue
			}
			w.stopTimedOut(ctx, a)
		case ccv1.ContainerState_CONTAINER_STATE_EXITED:
			w.startCollect(ctx, a, o)
		}
	}
	return wakeAt
}

func (w *Worker) stopTimedOut(ctx context.Context, a *ccv1.Assignment) {
	id := a.ContainerId
	w.mu.Lock()
	if w.stopping[id] {
		w.mu.Unlock()
		return
	}
	w.stopping[id] = true
	w.mu.Unlock()
	w.log.Info("job attempt reached its timeout: stopping it", "container_id", id, "job", a.GetSpec().GetSandbox().GetJobId(), "timeout", jobTimeout(a))
	w.jobsWG.Add(1)
	go func() {
		defer w.jobsWG.Done()
		if err := w.cfg.Runtime.Stop(ctx, id, killGrace(a)); err != nil && ctx.Err() == nil {
			w.log.Warn("stop at timeout failed", "container_id", id, "err", err)
		}
		w.mu.Lock()
		delete(w.stopping, id)
		w.mu.Unlock()
		w.poke()
	}()
}

func (w *Worker) startCollect(ctx context.Context, a *ccv1.Assignment, o runtime.Observed) {
	id := a.ContainerId
	w.mu.Lock()
	if w.collecting[id] || w.results[id] != nil {
		w.mu.Unlock()
		return
	}
	w.collecting[id] = true
	w.mu.Unlock()
	w.jobsWG.Add(1)
	go func() {
		defer w.jobsWG.Done()
		res := w.collect(ctx, a, o)
		w.mu.Lock()
		delete(w.collecting, id)
		if res != nil {
			w.results[id] = res
		}
		w.mu.Unlock()
		w.poke()
	}()
}

// collect packs and uploads an ended attempt's output and logs. It returns
// nil when ctx ended first.
func (w *Worker) collect(ctx context.Context, a *ccv1.Assignment, o runtime.Observed) (res *ccv1.JobResult) {
	id := a.ContainerId
	log := w.log.With("container_id", id, "job", a.GetSpec().GetSandbox().GetJobId())
	// A span of the attempt's trace (its dispatch, from the job's
	// submit), beside its start.
	ctx, span := w.span(ctx, "job.collect", a, true, attribute.String("cc.job.id", a.GetSpec().GetSandbox().GetJobId()))
	defer func() {
		if res == nil {
			endSpan(span, ctx.Err())
			return
		}
		span.SetAttributes(attribute.String("cc.job.output_digest", res.OutputDigest), attribute.Int64("cc.job.output_bytes", res.OutputSize))
		var err error
		if res.Error != "" {
			err = errors.New(res.Error)
		}
		endSpan(span, err)
	}()
	res = &ccv1.JobResult{TimedOut: timedOut(a, o)}
	started := time.Now()

	limits := jobs.LimitsFor(a.Spec.Sandbox)
	full := outputFull(w.cfg.Runtime.JobDir(id))
	out, err := w.cfg.Runtime.CollectOutput(ctx, id, limits)
	switch {
	case err == nil && full:
		// The job wrote until /output was full: what it left is cut short.
		res.Error = fmt.Sprintf("the output reached its limit of %d bytes (/output is full); raise --output-limit", limits.MaxBytes)
	case err == nil:
		digest, err := w.upload(ctx, id, "output", out)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			res.Error = "could not store the output: " + err.Error()
		} else {
			res.OutputDigest, res.OutputSize, res.OutputFiles = digest, out.Size, out.Files
			// The archive is kept (and reused if the agent restarts before
			// the result is recorded); the tmpfs pages are freed now.
			if err := w.cfg.Runtime.ReleaseOutput(ctx, id); err != nil {
				log.Warn("could not release the output filesystem", "err", err)
			}
		}
	case ctx.Err() != nil:
		return nil
	default:
		// Over a limit, a device file, or the files could not be read:
		// the attempt fails with the reason.
		res.Error = err.Error()
		if !jobs.IsRefused(err) {
			res.Error = "could not collect the output: " + err.Error()
		}
	}

	logs, err := w.cfg.Runtime.PackLogs(ctx, id)
	if err == nil {
		var digest string
		digest, err = w.upload(ctx, id, "logs", logs)
		if err == nil {
			res.LogsDigest, res.LogsSize = digest, logs.Size
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("job logs not kept", "err", err)
	}
	res.Collected = true
	log.InfoContext(ctx, "job attempt collected", "output", res.OutputDigest, "bytes", res.OutputSize, "files", res.OutputFiles,
		"logs", res.LogsDigest, "error", res.Error, "took", time.Since(started))
	return res
}

// upload sends a packed file with UploadBlob, retrying with backoff while
// no majority of servers can store it (a server may be down: the
// connection moves to another). It gives up on errors that a retry cannot
// fix.
func (w *Worker) upload(ctx context.Context, containerID, kind string, p jobs.Packed) (digest string, err error) {
	ctx, span := w.tracer.Start(ctx, "job.upload", trace.WithAttributes(attribute.String("cc.container.id", containerID),
		attribute.String("cc.blob.kind", kind), attribute.Int64("cc.blob.bytes", p.Size)))
	defer func() { endSpan(span, err) }()
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		digest, err := w.uploadOnce(ctx, containerID, kind, p)
		if err == nil {
			return digest, nil
		}
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.FailedPrecondition, codes.ResourceExhausted:
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if !w.stillAssigned(containerID) {
			return "", fmt.Errorf("the attempt was removed while its %s was uploaded", kind)
		}
		w.log.Warn("upload failed; retrying", "container_id", containerID, "kind", kind, "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

func (w *Worker) stillAssigned(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.desired[id]
	return ok || !w.haveFull
}

func (w *Worker) uploadOnce(ctx context.Context, containerID, kind string, p jobs.Packed) (string, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.UploadBlob(ctx)
	if err != nil {
		return "", err
	}
	if err := stream.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Header{Header: &ccv1.UploadBlobHeader{
		ContainerId: containerID, Kind: kind, Size: p.Size, Sha256: p.SHA256}}}); err != nil {
		_, rerr := stream.CloseAndRecv()
		return "", errors.Join(err, rerr)
	}
	buf := make([]byte, uploadChunk)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := stream.Send(&ccv1.UploadBlobRequest{Msg: &ccv1.UploadBlobRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				// The server's answer says why it stopped reading.
				_, serr := stream.CloseAndRecv()
				if serr != nil {
					return "", serr
				}
				return "", err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return "", rerr
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", err
	}
	if resp.Digest != p.SHA256 {
		return "", fmt.Errorf("the server stored %s, not %s", resp.Digest, p.SHA256)
	}
	return resp.Digest, nil
}

// outputFull says whether an attempt's /output filesystem has no room
// left: the job hit its output limit.
func outputFull(jobDir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join(jobDir, "output"), &st); err != nil {
		return false
	}
	return st.Bavail == 0 || int64(st.Bavail)*int64(st.Bsize) < 8192
}

// jobResult is the result to report for an ended attempt; w.mu is held.
func (w *Worker) jobResult(id string) *ccv1.JobResult {
	if r := w.results[id]; r != nil {
		return r
	}
	return &ccv1.JobResult{}
}

// openInput returns the opener of an attempt's input, nil without one.
func (w *Worker) openInput(a *ccv1.Assignment) func(context.Context) (io.ReadCloser, error) {
	d := a.GetSpec().GetSandbox().GetInputDigest()
	if d == "" {
		return nil
	}
	return func(ctx context.Context) (io.ReadCloser, error) { return w.fetchBlob(ctx, d) }
}
