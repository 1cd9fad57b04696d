package api

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxListedOutputFiles bounds a listing of a job's output (a job's
// /output holds at most 10,000 files by default).
const maxListedOutputFiles = 100000

// OutputFile is one entry of a job's output, as GET
// /v1/jobs/{id}/output:list shows it.
type OutputFile struct {
	// Path is the file's path inside /output, as ?path= of a download takes it.
	Path string `json:"path"`
	// Type is "file", "dir", "symlink" or "link" (a hard link).
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits, in octal as ls shows them.
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	// Target is what a symlink or hard link points to.
	Target string `json:"target,omitempty"`
}

// OutputListing is the answer of GET /v1/jobs/{id}/output:list.
type OutputListing struct {
	JobID string `json:"job_id"`
	// Digest and Size are the output archive's ("sha256:<hex>").
	Digest string       `json:"digest"`
	Size   int64        `json:"size"`
	Files  []OutputFile `json:"files"`
	// Truncated says the listing stopped at its bound.
	Truncated bool `json:"truncated"`
}

// OutputListHandler serves GET /v1/jobs/{id}/output:list behind auth's
// Middleware: the files of the job's output archive (names, types, sizes,
// modes, times; not their content), for the job's owner or an admin, as
// JSON. Each file downloads with GET /v1/jobs/{id}/output?path=PATH.
// onError writes errors as the gateway does.
func (j *JobService) OutputListHandler(onError func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, done, ok := j.openOutputFor(w, r, onError, "read", "")
		if !ok {
			return
		}
		defer done()
		defer c.Close()
		id := r.PathValue("id")
		if n := len(c.name) - len("-output.tar.gz"); n > 0 {
			id = c.name[:n]
		}
		out := OutputListing{JobID: id, Digest: c.sha256, Size: c.size, Files: []OutputFile{}}
		zr, err := gzip.NewReader(c)
		if err != nil {
			onError(w, r, status.Errorf(codes.DataLoss, "the output of job %s is not a gzip archive: %v", id, err))
			return
		}
		tr := tar.NewReader(zr)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				onError(w, r, status.Errorf(codes.DataLoss, "the output archive of job %s is damaged: %v", id, err))
				return
			}
			name := archiveName(hdr.Name)
			if name == "." || name == "" {
				continue
			}
			if len(out.Files) == maxListedOutputFiles {
				out.Truncated = true
				break
			}
			f := OutputFile{Path: name, Size: hdr.Size, Mode: fmt.Sprintf("%04o", hdr.Mode&0o7777), ModTime: hdr.ModTime.UTC()}
			switch hdr.Typeflag {
			case tar.TypeReg, tar.TypeRegA:
				f.Type = "file"
			case tar.TypeDir:
				f.Type, f.Size = "dir", 0
			case tar.TypeSymlink:
				f.Type, f.Target, f.Size = "symlink", hdr.Linkname, 0
			case tar.TypeLink:
				f.Type, f.Target, f.Size = "link", archiveName(hdr.Linkname), 0
			default:
				continue
			}
			out.Files = append(out.Files, f)
		}
		b, err := json.Marshal(out)
		if err != nil {
			onError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "private, no-cache")
		_, _ = w.Write(b)
	})
}
