package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// JobLogs implements JobService: the job's owner or an admin. While the
// job's current attempt runs, its logs come from its node (as for
// ContainerLogs, through the server that holds the node's session); once
// the job has ended, from the logs its node stored. With follow, the
// stream goes on while the job runs (through attempts after the first, if
// it is retried) and ends when the job ends.
func (j *JobService) JobLogs(req *ccv1.JobLogsRequest, stream ccv1.JobService_JobLogsServer) error {
	ctx := stream.Context()
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	rec, err := j.find(ctx, req.GetId())
	if err != nil {
		return err
	}
	if err := mayTouch(p, rec.Job, "read the logs of"); err != nil {
		return err
	}
	if req.GetTail() < 0 {
		return status.Errorf(codes.InvalidArgument, "tail %d: must not be negative (0: all)", req.GetTail())
	}
	if req.GetFollow() {
		// A followed job may say nothing for long (it is queued): a REST
		// client gets its headers now.
		if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "true")); err != nil {
			return err
		}
	}
	return j.streamLogs(ctx, rec, req.GetFollow(), req.GetTail(), func(stream_ string, data []byte) error {
		return stream.Send(&ccv1.JobLogsResponse{Stream: stream_, Data: data})
	})
}

type logSink func(stream string, data []byte) error

func (j *JobService) streamLogs(ctx context.Context, rec *statev1.JobRecord, follow bool, tail int64, send logSink) error {
	sent := false
	sink := func(m *ccv1.ContainerLogsResponse) error {
		sent = true
		return send(m.Stream, m.Data)
	}
	relayed := "" // the attempt whose logs were relayed from its node
	for {
		job := rec.Job
		if fsm.JobFinished(job.State) {
			if relayed != "" {
				return nil // its logs came from the node as it ran
			}
			return j.storedLogs(ctx, job, tail, send)
		}
		var a *ccv1.JobAttempt
		if n := len(job.Attempts); n > 0 {
			a = job.Attempts[n-1]
		}
		if job.State == ccv1.JobState_JOB_STATE_RUNNING && a != nil && a.Id != relayed {
			var nodeID string
			if crec, err := j.core.FSM.Container(a.Id); err == nil {
				nodeID = crec.Container.NodeId
			}
			if nodeID != "" {
				err := j.core.nodeLogs(ctx, nodeID, a.Id, follow, tail, sink)
				relayed, tail = a.Id, 0 // a later attempt's logs are sent whole
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					// The attempt may have ended meanwhile, its container
					// gone: its stored logs say the rest.
					now, rerr := j.core.FSM.Job(job.Id)
					if rerr != nil || !fsm.JobFinished(now.Job.State) {
						return err
					}
					if sent {
						return nil
					}
					return j.storedLogs(ctx, now.Job, 0, send)
				}
				if !follow {
					return nil
				}
			}
		}
		if !follow {
			return nil // not started: no logs yet
		}
		// Wait for the job to start, to end, or to move to a new attempt.
		w := j.core.FSM.JobsWatch()
		now, err := j.core.FSM.Job(job.Id)
		if errors.Is(err, fsm.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if jobMoved(job, now.Job) {
			rec = now
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.done:
			return status.Error(codes.Unavailable, "the server is shutting down")
		case <-w:
		}
		if rec, err = j.core.FSM.Job(job.Id); errors.Is(err, fsm.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// jobMoved says whether a job changed in a way that matters to its logs.
func jobMoved(before, after *ccv1.Job) bool {
	return before.State != after.State || len(before.Attempts) != len(after.Attempts)
}

// storedLogs sends a finished job's stored logs (none: nothing).
func (j *JobService) storedLogs(ctx context.Context, job *ccv1.Job, tail int64, send logSink) error {
	if job.LogsDigest == "" {
		return nil
	}
	open := func() (io.ReadCloser, error) {
		rc, _, err := j.blobs.Open(job.LogsDigest)
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, status.Errorf(codes.FailedPrecondition, "the logs of job %s are on no server now (they expire with the output, %s)", job.Id, job.GetExpiresAt().AsTime().Format("2006-01-02 15:04 MST"))
		}
		return rc, err
	}
	return SendStoredLogs(ctx, open, tail, send)
}

// logRecord is a line of an agent's log file: the time, the stream, and
// the data as text (d) or, when not UTF-8, as base64 (b).
type logRecord struct {
	Stream string  `json:"s"`
	Text   *string `json:"d"`
	Bin    []byte  `json:"b"`
}

func (r *logRecord) data() []byte {
	if r.Bin != nil {
		return r.Bin
	}
	if r.Text != nil {
		return []byte(*r.Text)
	}
	return nil
}

// eachLogRecord calls fn with each record of a stored log: JSON lines as
// the agent's log files hold them (gzip-compressed or not). A line that
// is no record (cut short) is skipped.
func eachLogRecord(r io.Reader, fn func(stream string, data []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("stored logs: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec logRecord
			if json.Unmarshal(line, &rec) == nil && (rec.Stream == "stdout" || rec.Stream == "stderr") {
				if ferr := fn(rec.Stream, rec.data()); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// storedLogChunk is the most data SendStoredLogs puts in one message;
// records of one stream in a row are sent together up to it.
const storedLogChunk = 32 << 10

// SendStoredLogs sends the records of a stored log, the last tail lines
// only when tail > 0 (as the agent counts them for ContainerLogs: lines
// over the interleaved output, a last line without a newline counting as
// one). It reads the log twice with tail (first to count the lines), and
// holds no more than a message's worth of it.
func SendStoredLogs(ctx context.Context, open func() (io.ReadCloser, error), tail int64, send func(stream string, data []byte) error) error {
	// skipLines newlines are passed before the output starts (just after
	// the last of them).
	var skipLines int64
	if tail > 0 {
		rc, err := open()
		if err != nil {
			return err
		}
		var total int64
		lastNL := false
		err = eachLogRecord(rc, func(_ string, d []byte) error {
			if len(d) > 0 {
				total += int64(bytes.Count(d, []byte{'\n'}))
				lastNL = d[len(d)-1] == '\n'
			}
			return nil
		})
		rc.Close()
		if err != nil {
			return err
		}
		counted := total
		if lastNL {
			counted-- // a trailing newline ends the last line; it starts none
		}
		if counted >= tail {
			skipLines = counted - tail + 1
		}
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	var pending []byte
	var pendingStream string
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := send(pendingStream, pending)
		pending = nil
		return err
	}
	err = eachLogRecord(rc, func(s string, d []byte) error {
		for skipLines > 0 && len(d) > 0 {
			i := bytes.IndexByte(d, '\n')
			if i < 0 {
				return nil
			}
			d = d[i+1:]
			skipLines--
		}
		if skipLines > 0 || len(d) == 0 {
			return nil
		}
		if s != pendingStream || len(pending)+len(d) > storedLogChunk {
			if err := flush(); err != nil {
				return err
			}
		}
		pendingStream = s
		if len(d) > storedLogChunk {
			pending = d // a big record goes as it is
			return flush()
		}
		pending = append(pending, d...)
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
