package ctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// outputResumes is how many times a broken download of a job's output
// starts again where it stopped.
const outputResumes = 2

// Where `job output` puts what it downloads.
const (
	toDir    = iota // extract the archive into a directory
	toFile          // save the archive, or the --path file, as a file
	toStdout        // write it to stdout, once checked
)

func jobOutput(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("job output needs exactly one job ID (see `ccctl job ls`)")
	}
	id := c.Args().First()
	file, archive, out, force := c.String("path"), c.String("archive"), c.String("output"), c.Bool("force")
	switch {
	case archive != "" && file != "":
		return errors.New("--archive saves the whole archive, --path one file of it: give one of them")
	case archive != "" && c.IsSet("output"):
		return errors.New("--archive FILE says where the archive goes, -o DIR where to extract it: give one of them")
	case out == "":
		return errors.New("-o is empty: give a directory (or with --path a file, or - for stdout)")
	}
	if file != "" {
		file = strings.TrimPrefix(file, "/output/")
		if name, err := entryName(file); err != nil || name == "" {
			return fmt.Errorf("--path %q: give a file inside /output, as a relative path (e.g. report.csv or dir/b.bin)", c.String("path"))
		}
	}

	// Where it goes is settled, and checked, before downloading.
	mode, dest := toDir, out
	switch {
	case archive == "-" || (file != "" && out == "-"):
		mode, dest = toStdout, ""
		if archive == "-" && isTerminal(c.App.Writer) {
			return errors.New("--archive -: stdout is a terminal; redirect it (> out.tar.gz) or give a FILE")
		}
	case archive != "":
		mode, dest = toFile, archive
	case file != "":
		mode = toFile
		if fi, err := os.Stat(out); (err == nil && fi.IsDir()) || strings.HasSuffix(out, "/") {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("-o %s: %v", out, unwrapPath(err))
			}
			dest = filepath.Join(out, path.Base(file))
		}
	default:
		if fi, err := os.Stat(out); err == nil && !fi.IsDir() {
			return fmt.Errorf("-o %s is not a directory: extract into a directory, or save the archive with --archive FILE", out)
		}
	}
	tmpDir := ""
	if mode == toFile {
		if fi, err := os.Lstat(dest); err == nil {
			if !force {
				return fmt.Errorf("%s exists: choose another name, or overwrite it with --force", dest)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s exists and is not a regular file", dest)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		tmpDir = filepath.Dir(dest)
	}

	req := &ccv1.JobOutputRequest{Id: id, Path: file}
	say := func(format string, args ...any) {
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, format+"\n", args...)
		}
	}
	return callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		tmp, err := os.CreateTemp(tmpDir, ".ccctl-output-*.part")
		if err != nil {
			return fmt.Errorf("a temporary file for the download: %v", err)
		}
		defer func() {
			tmp.Close()
			os.Remove(tmp.Name())
		}()
		size, err := downloadOutput(ctx, c, cl, req, tmp)
		if err != nil {
			return err
		}
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("%s: %v", tmp.Name(), err)
		}
		switch mode {
		case toStdout:
			if _, err := tmp.Seek(0, io.SeekStart); err != nil {
				return err
			}
			_, err = io.Copy(c.App.Writer, tmp)
			return err
		case toFile:
			if err := tmp.Chmod(0o644); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), dest); err != nil {
				return fmt.Errorf("%s: %v", dest, unwrapPath(err))
			}
			say("Saved %s (%s)", dest, humanSize(size))
			return nil
		}
		if size == 0 {
			say("Job %s has no output", shortID(id))
			return nil
		}
		open := func() (io.ReadCloser, error) { return os.Open(tmp.Name()) }
		warn := func(msg string) { say("ccctl: warning: %s", msg) }
		st, err := extractArchive(open, out, extractOptions{force: force, warn: warn})
		if err != nil {
			return fmt.Errorf("extracting into %s: %v; nothing was written (to keep the archive as it is: --archive FILE)", out, err)
		}
		say("Extracted %s (%s) into %s", count(int64(st.files), "file"), humanSize(st.bytes), out)
		return nil
	})
}

// errOutputChanged ends a download that cannot resume.
var errOutputChanged = errors.New("the output changed while downloading (its size or sha256 differ after resuming); try again")

// downloadOutput writes the content of JobOutput to w and checks it
// against the sha256 of the stream's first message. A stream that breaks
// midway (or ends early) is opened again at the offset reached, up to
// outputResumes times. It returns the size.
func downloadOutput(ctx context.Context, c *cli.Context, cl *Client, req *ccv1.JobOutputRequest, w io.Writer) (int64, error) {
	h := sha256.New()
	var got int64
	size, want := int64(-1), ""
	p := transferProgress(c, "Downloading", 0)
	defer func() { p.Done() }()
	receive := func() error {
		req.Offset = got
		stream, err := cl.Jobs.JobOutput(ctx, req)
		if err != nil {
			return err
		}
		first := true
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if first && (m.GetSize() != 0 || m.GetSha256() != "") {
				switch {
				case m.GetSize() < 0 || m.GetSha256() == "":
					return errors.New("the server announced no valid size and sha256")
				case size < 0:
					size, want = m.GetSize(), normDigest(m.GetSha256())
					p.total = size
				case m.GetSize() != size || normDigest(m.GetSha256()) != want:
					return errOutputChanged
				}
			}
			first = false
			if size < 0 {
				return errors.New("the server sent data before the size and sha256")
			}
			data := m.GetData()
			if got+int64(len(data)) > size {
				return fmt.Errorf("the server sent more than the %d bytes it announced", size)
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
			h.Write(data)
			got += int64(len(data))
			p.Add(len(data))
		}
	}
	for resumes := 0; ; resumes++ {
		err := receive()
		if err == nil && size >= 0 && got == size {
			break
		}
		if err == nil && size < 0 {
			err = errors.New("the server sent no output: no size, no sha256")
		} else if err == nil {
			err = fmt.Errorf("the stream ended after %d of %d bytes", got, size)
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		if size < 0 || permanentErr(err) || errors.Is(err, errOutputChanged) || resumes >= outputResumes {
			if got == 0 {
				return got, err
			}
			return got, fmt.Errorf("the download broke after %s of %s: %v", humanSize(got), humanSize(size), cl.Explain(err))
		}
		p.Done()
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "ccctl: the download broke after %s of %s (%v); resuming\n", humanSize(got), humanSize(size), cl.Explain(err))
		}
		start := p.start
		p = transferProgress(c, "Downloading", size)
		p.done, p.start = got, start
	}
	if sum := "sha256:" + hex.EncodeToString(h.Sum(nil)); sum != want {
		return got, fmt.Errorf("the download of job %s's output does not match its sha256 (got %s, the server announced %s): it is damaged; nothing was written; try again",
			shortID(req.GetId()), shortDigest(sum), shortDigest(want))
	}
	return got, nil
}

// normDigest spells a sha256 as "sha256:<lower-case hex>".
func normDigest(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasPrefix(s, "sha256:") {
		s = "sha256:" + s
	}
	return s
}

// count says n things: "1 file", "3 files".
func count(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
