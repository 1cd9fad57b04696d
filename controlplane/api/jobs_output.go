package api

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/streamio"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// UploadInput implements JobService: a header, then chunks, stored with
// the header's size and sha256 checked, and copied to a majority of the
// servers before the digest is returned. The archive is not looked into
// here: the agent unpacks it as hostile input.
func (j *JobService) UploadInput(stream ccv1.JobService_UploadInputServer) error {
	if err := j.core.Disk.Check(); err != nil {
		return err
	}
	hdr, err := uploadHeader[*ccv1.UploadInputRequest, *ccv1.UploadHeader](stream.Recv)
	if err != nil {
		return err
	}
	limit := j.MaxInputSize
	if limit <= 0 {
		limit = DefaultMaxInputSize
	}
	r := uploadBody(stream.Recv)
	digest, size, _, _, err := j.blobs.StoreReplicated(stream.Context(), r, blobs.Upload{What: "the input", Size: hdr.GetSize(), SHA256: hdr.GetSha256(), Limit: limit})
	if err != nil {
		return err
	}
	if size == 0 {
		return invalidArg("the upload is empty: send the input's tar.gz")
	}
	// Who uploaded it: only those tokens (and admins) may mount it.
	p, err := caller(stream.Context())
	if err != nil {
		return err
	}
	if err := j.core.Propose(stream.Context(), statev1.CommandType_COMMAND_TYPE_PUT_INPUT, &statev1.PutInput{Input: &statev1.InputRecord{
		Digest: digest, Size: size, Owners: []string{p.TokenID}}}); err != nil {
		return err
	}
	j.log.Info("job input uploaded", "digest", digest, "size", size)
	return stream.SendAndClose(&ccv1.UploadInputResponse{Digest: digest, Size: size})
}

// startDownload counts one more open output download of the token, or
// refuses it with ResourceExhausted when the token has as many as it may;
// done ends it.
func (j *JobService) startDownload(tokenID string) (done func(), err error) {
	j.dlMu.Lock()
	defer j.dlMu.Unlock()
	if j.downloads[tokenID] >= j.maxDownloads {
		return nil, status.Errorf(codes.ResourceExhausted, "token %s has %d job output downloads open on this server, the most it may (max_output_downloads): wait for one to end", tokenID, j.maxDownloads)
	}
	if j.downloads == nil {
		j.downloads = map[string]int{}
	}
	j.downloads[tokenID]++
	return func() {
		j.dlMu.Lock()
		defer j.dlMu.Unlock()
		if j.downloads[tokenID]--; j.downloads[tokenID] <= 0 {
			delete(j.downloads, tokenID)
		}
	}, nil
}

// outputChunk is the most data a JobOutput message carries.
const outputChunk = 1 << 20

// JobOutput implements JobService: the job's owner or an admin. Without a
// path it streams the output archive; with one, that file of the archive.
func (j *JobService) JobOutput(req *ccv1.JobOutputRequest, stream ccv1.JobService_JobOutputServer) error {
	ctx := stream.Context()
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	done, err := j.startDownload(p.TokenID)
	if err != nil {
		return err
	}
	defer done()
	c, err := j.openOutput(ctx, p, req.GetId(), req.GetPath())
	if err != nil {
		return err
	}
	defer c.Close()
	off := req.GetOffset()
	if off < 0 || off > c.size {
		return status.Errorf(codes.OutOfRange, "offset %d: the content is %d bytes", off, c.size)
	}
	if _, err := c.Seek(off, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, outputChunk)
	msg := &ccv1.JobOutputResponse{Size: c.size, Sha256: c.sha256}
	for {
		n, rerr := io.ReadFull(c, buf)
		if n > 0 || msg.Sha256 != "" {
			msg.Data = buf[:n]
			if err := stream.Send(msg); err != nil {
				return err
			}
			msg = &ccv1.JobOutputResponse{}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return nil
		}
		if rerr != nil {
			return status.Errorf(codes.DataLoss, "read the output of job %s: %v", req.GetId(), rerr)
		}
	}
}

// outputContent is what a download serves: the output archive or one file
// of it, seekable.
type outputContent struct {
	io.ReadSeeker
	size    int64
	sha256  string // "sha256:<hex>" of exactly these bytes
	modTime time.Time
	name    string // a file name for Content-Disposition
	archive bool
	close   func() error
}

func (c *outputContent) Close() error { return c.close() }

// openOutput checks the caller may read the job's output and opens it:
// the archive (path "") or the file at path in it.
func (j *JobService) openOutput(ctx context.Context, p auth.Principal, id, filePath string) (*outputContent, error) {
	rec, err := j.find(ctx, id)
	if err != nil {
		return nil, err
	}
	job := rec.Job
	if err := mayTouch(p, job, "download the output of"); err != nil {
		return nil, err
	}
	if job.OutputDigest == "" {
		// The job may have ended a moment ago, applied on the leader and
		// not yet here.
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := j.core.Raft.Barrier(bctx)
		cancel()
		if err == nil {
			if again, err := j.core.FSM.Job(job.Id); err == nil {
				job = again.Job
			}
		}
	}
	if job.OutputDigest == "" {
		if fsm.JobFinished(job.State) {
			why := job.Message
			if why == "" {
				why = "no output was collected"
			}
			return nil, status.Errorf(codes.FailedPrecondition, "job %s has no output: it ended %s (%s)", job.Id, enumWord(job.State.String(), "JOB_STATE_"), why)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "job %s has no output yet: it is %s", job.Id, enumWord(job.State.String(), "JOB_STATE_"))
	}
	open := func() (io.ReadCloser, int64, error) {
		rc, size, err := j.blobs.Open(job.OutputDigest)
		if errors.Is(err, blobstore.ErrNotFound) {
			if exp := job.GetExpiresAt(); exp != nil && !exp.AsTime().After(time.Now()) {
				return nil, 0, status.Errorf(codes.FailedPrecondition, "job %s has no output any more: its output expired at %s", job.Id, exp.AsTime().Format(time.RFC3339))
			}
			return nil, 0, status.Errorf(codes.Unavailable, "the output of job %s (%s) is on no server reachable now; retry later", job.Id, job.OutputDigest)
		}
		return rc, size, err
	}
	modTime := job.GetFinishedAt().AsTime()
	if filePath == "" {
		rc, size, err := open()
		if err != nil {
			return nil, err
		}
		rc.Close()
		bs := &blobSeeker{open: open, size: size}
		return &outputContent{ReadSeeker: bs, size: size, sha256: job.OutputDigest, modTime: modTime,
			name: job.Id + "-output.tar.gz", archive: true, close: bs.Close}, nil
	}
	name, err := cleanOutputPath(filePath)
	if err != nil {
		return nil, err
	}
	// The file is streamed from the archive as it is decompressed: a
	// sparse file of many GiB compresses to almost nothing, and a copy of
	// it would fill the server's disk.
	entry, size, err := j.locateEntry(job.Id, open, name)
	if err != nil {
		return nil, err
	}
	sum, err := j.entrySum(ctx, job.Id, job.OutputDigest, open, entry, size)
	if err != nil {
		return nil, err
	}
	es := &entrySeeker{ctx: ctx, size: size, open: func() (io.Reader, io.Closer, error) { return openEntry(open, entry) }}
	return &outputContent{ReadSeeker: es, size: size, sha256: sum, modTime: modTime, name: path.Base(name), close: es.Close}, nil
}

// cleanOutputPath turns a path in /output as users give it ("a.txt",
// "./dir/b.bin", "/output/c") into the archive's name for it.
func cleanOutputPath(p string) (string, error) {
	orig := p
	p = strings.TrimPrefix(p, "/output/")
	p = strings.TrimLeft(p, "/")
	p = path.Clean(p)
	if p == "." || p == "" || p == ".." || strings.HasPrefix(p, "../") {
		return "", status.Errorf(codes.InvalidArgument, "path %q: give a file inside /output, relative to it (e.g. report.csv or dir/b.bin)", orig)
	}
	return p, nil
}

// archiveName is an archive entry's name as cleanOutputPath gives it.
func archiveName(n string) string {
	n = strings.TrimLeft(strings.TrimPrefix(n, "./"), "/")
	return path.Clean(n)
}

// locateEntry finds the regular file name in an output archive, following
// a hard link to the file it names, and returns the archive's name for the
// file and its size. Nothing is written anywhere.
func (j *JobService) locateEntry(jobID string, open func() (io.ReadCloser, int64, error), name string) (string, int64, error) {
	want := name
	for hops := 0; ; hops++ {
		rc, _, err := open()
		if err != nil {
			return "", 0, err
		}
		hdr, _, err := findEntry(rc, want)
		rc.Close()
		if err != nil {
			return "", 0, err
		}
		switch {
		case hdr == nil:
			return "", 0, status.Errorf(codes.NotFound, "the output of job %s has no file %q (list its files with `ccctl job output %s --archive - | tar tz`)", jobID, name, jobID)
		case hdr.Typeflag == tar.TypeDir:
			return "", 0, status.Errorf(codes.InvalidArgument, "%q is a directory in the output of job %s: give the path of a file in it, or download the whole archive", name, jobID)
		case hdr.Typeflag == tar.TypeSymlink:
			return "", 0, status.Errorf(codes.InvalidArgument, "%q in the output of job %s is a symbolic link (to %q), not a file: ask for the file it points to", name, jobID, hdr.Linkname)
		case hdr.Typeflag == tar.TypeLink && hops == 0:
			want = archiveName(hdr.Linkname)
			continue
		case hdr.Typeflag != tar.TypeReg:
			return "", 0, status.Errorf(codes.InvalidArgument, "%q in the output of job %s is not a regular file", name, jobID)
		}
		return want, hdr.Size, nil
	}
}

// openEntry opens the blob and reads up to the content of the entry name,
// which locateEntry found: the reader gives exactly its bytes, the closer
// closes the blob.
func openEntry(open func() (io.ReadCloser, int64, error), name string) (io.Reader, io.Closer, error) {
	rc, _, err := open()
	if err != nil {
		return nil, nil, err
	}
	hdr, tr, err := findEntry(rc, name)
	if err == nil && (hdr == nil || hdr.Typeflag != tar.TypeReg) {
		err = status.Errorf(codes.DataLoss, "the output archive changed: %q is not a file in it any more", name)
	}
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return tr, rc, nil
}

// maxEntrySums is how many file checksums entrySums keeps.
const maxEntrySums = 1024

// entrySum returns the sha256 of the entry name of the output archive
// digest, hashing it as it is decompressed (no copy is kept) the first
// time, from memory after.
func (j *JobService) entrySum(ctx context.Context, jobID, digest string, open func() (io.ReadCloser, int64, error), name string, size int64) (string, error) {
	key := digest + "\x00" + name
	j.sumsMu.Lock()
	sum, ok := j.sums[key]
	j.sumsMu.Unlock()
	if ok {
		return sum, nil
	}
	r, c, err := openEntry(open, name)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(h, streamio.WithContext(ctx, r))
	c.Close()
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes of %d", n, size)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", status.Errorf(codes.DataLoss, "read %q from the output of job %s: %v", name, jobID, err)
	}
	sum = "sha256:" + hex.EncodeToString(h.Sum(nil))
	j.sumsMu.Lock()
	if j.sums == nil {
		j.sums = map[string]string{}
	}
	if len(j.sums) >= maxEntrySums {
		for k := range j.sums { // forget one at random
			delete(j.sums, k)
			break
		}
	}
	j.sums[key] = sum
	j.sumsMu.Unlock()
	return sum, nil
}

// entrySeeker reads one file of a gzip tar archive from any offset without
// a temporary copy: a gzip stream cannot seek, so a seek forward skips
// decompressed bytes and a seek back reopens the archive and skips from
// its start.
type entrySeeker struct {
	ctx  context.Context
	open func() (io.Reader, io.Closer, error)
	size int64
	pos  int64 // where the next Read reads
	r    io.Reader
	c    io.Closer
	rpos int64 // where r is
}

// seekTo is where a Seek of off from whence lands in a stream of size
// bytes read up to pos.
func seekTo(pos, size, off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += pos
	case io.SeekEnd:
		off += size
	}
	if off < 0 {
		return 0, errors.New("seek before the start")
	}
	return off, nil
}

func (e *entrySeeker) Seek(off int64, whence int) (int64, error) {
	pos, err := seekTo(e.pos, e.size, off, whence)
	if err != nil {
		return 0, err
	}
	e.pos = pos
	return pos, nil
}

func (e *entrySeeker) Read(p []byte) (int, error) {
	if e.pos >= e.size {
		return 0, io.EOF
	}
	if e.r != nil && e.rpos > e.pos {
		e.c.Close()
		e.r, e.c = nil, nil
	}
	if e.r == nil {
		r, c, err := e.open()
		if err != nil {
			return 0, err
		}
		e.r, e.c, e.rpos = streamio.WithContext(e.ctx, r), c, 0
	}
	if e.rpos < e.pos {
		n, err := io.CopyN(io.Discard, e.r, e.pos-e.rpos)
		e.rpos += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	if rest := e.size - e.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := e.r.Read(p)
	e.pos += int64(n)
	e.rpos += int64(n)
	if errors.Is(err, io.EOF) && e.pos < e.size {
		err = io.ErrUnexpectedEOF
	} else if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (e *entrySeeker) Close() error {
	if e.c != nil {
		return e.c.Close()
	}
	return nil
}

// findEntry reads a tar.gz up to the entry named name and returns its
// header and the reader positioned at its content; a nil header when
// there is none. A name that only prefixes other entries is a directory.
func findEntry(r io.Reader, name string) (*tar.Header, *tar.Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, status.Errorf(codes.DataLoss, "the output is not a gzip archive: %v", err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, status.Errorf(codes.DataLoss, "the output archive is damaged: %v", err)
		}
		n := archiveName(hdr.Name)
		if n == name {
			if hdr.Typeflag == tar.TypeRegA {
				hdr.Typeflag = tar.TypeReg
			}
			return hdr, tr, nil
		}
		if strings.HasPrefix(n, name+"/") {
			return &tar.Header{Name: name, Typeflag: tar.TypeDir}, tr, nil
		}
	}
}

// blobSeeker reads a stored blob from any offset: a seek away from where
// the open reader is reopens the blob and skips to the offset (blob
// readers verify as they read, and do not seek).
type blobSeeker struct {
	open func() (io.ReadCloser, int64, error)
	size int64
	pos  int64 // where the next Read reads
	rc   io.ReadCloser
	rpos int64 // where rc is
	// checked: rc was read to its end, so the blob's digest was checked.
	checked bool
}

func (b *blobSeeker) Seek(off int64, whence int) (int64, error) {
	pos, err := seekTo(b.pos, b.size, off, whence)
	if err != nil {
		return 0, err
	}
	b.pos = pos
	return pos, nil
}

func (b *blobSeeker) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		if b.rc != nil && b.rpos == b.size && !b.checked {
			// Read the blob to its end: its reader checks the digest there.
			b.checked = true
			var one [1]byte
			if _, err := b.rc.Read(one[:]); !errors.Is(err, io.EOF) {
				if err == nil {
					err = errors.New("the blob is longer than its size")
				}
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if b.rc == nil || b.rpos != b.pos {
		if b.rc != nil {
			b.rc.Close()
			b.rc = nil
		}
		rc, _, err := b.open()
		if err != nil {
			return 0, err
		}
		if _, err := io.CopyN(io.Discard, rc, b.pos); err != nil {
			rc.Close()
			return 0, err
		}
		b.rc, b.rpos = rc, b.pos
	}
	n, err := b.rc.Read(p)
	b.pos += int64(n)
	b.rpos += int64(n)
	return n, err
}

func (b *blobSeeker) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}

// openOutputFor is what the output handlers do first: the caller from the
// request's context, its role's right to job output, a download slot of
// its token, and the job's output (filePath: one file of it, or "" for
// the archive). On failure it writes the error with onError and returns
// ok false; otherwise the caller closes c, then calls done.
func (j *JobService) openOutputFor(w http.ResponseWriter, r *http.Request, onError func(w http.ResponseWriter, r *http.Request, err error), verb, filePath string) (c *outputContent, done func(), ok bool) {
	p, ok := auth.FromContext(r.Context())
	if !ok || p.TokenID == "" {
		onError(w, r, status.Error(codes.Unauthenticated, auth.ErrUnauthenticated.Error()))
		return nil, nil, false
	}
	if !auth.Allowed(p.Role, ccv1.JobService_JobOutput_FullMethodName) {
		onError(w, r, status.Errorf(codes.PermissionDenied, "token %s (role %s) may not %s job output; use the token that submitted the job, or an admin token", p.TokenID, auth.RoleName(p.Role), verb))
		return nil, nil, false
	}
	done, err := j.startDownload(p.TokenID)
	if err != nil {
		onError(w, r, err)
		return nil, nil, false
	}
	c, err = j.openOutput(r.Context(), p, r.PathValue("id"), filePath)
	if err != nil {
		done()
		onError(w, r, ToStatus(err))
		return nil, nil, false
	}
	return c, done, true
}

// OutputHandler serves GET /v1/jobs/{id}/output[?path=P] for the job's
// owner or an admin, behind auth's Middleware (which puts the caller in
// the request's context): the archive (application/gzip, as
// "<id>-output.tar.gz"), or with path one file of it. http.ServeContent
// answers Range, If-Range and If-None-Match; the ETag is "sha256:<hex>" of
// exactly the bytes served, also in Digest (RFC 3230) and
// X-Content-Sha256. onError writes errors as the gateway does.
func (j *JobService) OutputHandler(onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, done, ok := j.openOutputFor(w, r, onError, "download", r.URL.Query().Get("path"))
		if !ok {
			return
		}
		defer done()
		defer c.Close()
		hexSum := strings.TrimPrefix(c.sha256, "sha256:")
		raw, _ := hex.DecodeString(hexSum)
		h := w.Header()
		h.Set("ETag", `"`+c.sha256+`"`)
		h.Set("Digest", "sha-256="+base64.StdEncoding.EncodeToString(raw))
		h.Set("X-Content-Sha256", hexSum)
		h.Set("Cache-Control", "private, no-cache")
		ctype := "application/octet-stream"
		if c.archive {
			ctype = "application/gzip"
		} else if t := mime.TypeByExtension(path.Ext(c.name)); t != "" {
			ctype = t
		}
		h.Set("Content-Type", ctype)
		h.Set("Content-Disposition", contentDisposition(c.name))
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", c.modTime, c)
	})
}

// contentDisposition names a download: filename="name" when it is plain
// ASCII, else the RFC 5987 form.
func contentDisposition(name string) string {
	plain := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return `attachment; filename="` + name + `"`
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}
