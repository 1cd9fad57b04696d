package ctl

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func cpCommand() *cli.Command {
	return &cli.Command{
		Name: "cp", Usage: "copy files or directories between a running container and here (admin tokens only; audited)",
		ArgsUsage: "CONTAINER:PATH LOCAL | LOCAL CONTAINER:DIR",
		Description: "The files travel as a tar stream made or read by `tar` inside the container (the image\n" +
			"needs one on its PATH, or /bin/busybox), through an exec recorded in the audit trail.\n\n" +
			"From a container: a LOCAL directory that exists gets PATH inside it under its base name;\n" +
			"otherwise PATH is copied as LOCAL. The archive is unpacked here with the checks of job\n" +
			"outputs: nothing is written outside LOCAL or through a link, devices are skipped, and so\n" +
			"are links that point outside. Existing files are replaced.\n" +
			"To a container: LOCAL (a file or a directory) lands inside DIR, which must exist, under\n" +
			"its base name; its files are owned by root and readable by all.\n\n" +
			"Examples:\n" +
			"  ccctl cp box:/etc ./etc-copy\n" +
			"  ccctl cp ./site box:/srv",
		OnUsageError: usageError,
		Action:       cpCmd,
	}
}

// splitCpArg splits CONTAINER:PATH; ok is false for a local path (one
// without a colon, or starting with . or /).
func splitCpArg(a string) (container, p string, ok bool) {
	if strings.HasPrefix(a, "/") || strings.HasPrefix(a, ".") {
		return "", a, false
	}
	container, p, ok = strings.Cut(a, ":")
	if !ok || container == "" {
		return "", a, false
	}
	return container, p, true
}

func cpCmd(c *cli.Context) error {
	if c.NArg() != 2 {
		return errors.New("cp needs a source and a destination, one of them CONTAINER:PATH (see `ccctl cp --help`)")
	}
	src, dst := c.Args().Get(0), c.Args().Get(1)
	sc, sp, sIn := splitCpArg(src)
	dc, dp, dIn := splitCpArg(dst)
	switch {
	case sIn && dIn:
		return errors.New("cp copies between a container and here, not between two containers")
	case sIn:
		return cpFrom(c, sc, sp, dst)
	case dIn:
		return cpTo(c, src, dc, dp)
	}
	return errors.New("cp: name the container's side as CONTAINER:PATH")
}

// cpFrom copies the container's path to local.
func cpFrom(c *cli.Context, container, p, local string) error {
	clean := path.Clean("/" + p)
	if !path.IsAbs(p) || clean == "/" {
		return fmt.Errorf("cp %s:%s: give an absolute path in the container, other than /", container, p)
	}
	dir, base := path.Dir(clean), path.Base(clean)
	// Into an existing directory, or as a new name beside it.
	into := local
	rename := ""
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		into = local
	} else if err == nil || errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(local)
		if _, err := os.Stat(parent); err != nil {
			return fmt.Errorf("cp: %s: %v", parent, unwrapPath(err))
		}
		tmp, err := os.MkdirTemp(parent, ".ccctl-cp-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		into, rename = tmp, local
	} else {
		return fmt.Errorf("cp: %s: %v", local, unwrapPath(err))
	}
	archive, err := os.CreateTemp("", "ccctl-cp-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(archive.Name())
	defer archive.Close()
	zw := gzip.NewWriter(archive)
	var stderr bytes.Buffer
	var code int32
	err = callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		return tryTar(func(tar []string) error {
			start := &ccv1.ExecStart{Container: container, Args: append(tar, "-cf", "-", "-C", dir, base)}
			var err error
			code, err = runExec(ctx, cl, start, nil, zw, &stderr)
			return err
		})
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("cp: tar in %s failed (exit %d): %s", container, code, strings.TrimSpace(stderr.String()))
	}
	if err := zw.Close(); err != nil {
		return err
	}
	open := func() (io.ReadCloser, error) { return os.Open(archive.Name()) }
	warn := func(msg string) { fmt.Fprintf(c.App.ErrWriter, "ccctl: warning: %s\n", msg) }
	stats, err := extractArchive(open, into, extractOptions{force: true, warn: warn, skipOutsideLinks: true})
	if err != nil {
		return fmt.Errorf("cp: %v", err)
	}
	if rename != "" {
		if fi, err := os.Lstat(rename); err == nil && !fi.IsDir() {
			if err := os.Remove(rename); err != nil {
				return err
			}
		}
		if err := os.Rename(filepath.Join(into, base), rename); err != nil {
			return fmt.Errorf("cp: %v", err)
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "copied %s:%s to %s (%s, %d bytes)\n", container, clean, local, count(int64(stats.files), "file"), stats.bytes)
	return nil
}

// cpTo copies local into the container's directory dir.
func cpTo(c *cli.Context, local, container, dir string) error {
	clean := path.Clean("/" + dir)
	if !path.IsAbs(dir) {
		return fmt.Errorf("cp %s:%s: give an absolute directory in the container", container, dir)
	}
	if _, err := os.Stat(local); err != nil {
		return fmt.Errorf("cp: %s: %v", local, unwrapPath(err))
	}
	var stderr, stdout bytes.Buffer
	var code int32
	var packErr *errReader
	err := callStream(c, false, nil, func(ctx context.Context, cl *Client) error {
		return tryTar(func(tar []string) error {
			pr := packTar(c, local)
			defer pr.Close()
			packErr = &errReader{r: pr}
			start := &ccv1.ExecStart{Container: container, Args: append(tar, "-xf", "-", "-C", clean), Stdin: true}
			var err error
			code, err = runExec(ctx, cl, start, packErr, &stdout, &stderr)
			return err
		})
	})
	if packErr != nil {
		if perr := packErr.Err(); perr != nil && !errors.Is(perr, io.EOF) {
			return fmt.Errorf("cp: %v", perr)
		}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("cp: tar in %s failed (exit %d): %s (the directory must exist there)", container, code, strings.TrimSpace(stderr.String()))
	}
	fmt.Fprintf(c.App.ErrWriter, "copied %s to %s:%s\n", local, container, path.Join(clean, filepath.Base(filepath.Clean(local))))
	return nil
}

// tarCommands are the tars tried in turn: the image's on its PATH, then
// busybox's (images with busybox alone, without its links).
var tarCommands = [][]string{{"tar"}, {"/bin/busybox", "tar"}}

// tryTar runs fn with each of tarCommands until one exists in the image.
func tryTar(fn func(tar []string) error) error {
	var err error
	for _, tar := range tarCommands {
		err = fn(slices.Clone(tar))
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "executable file not found") &&
			!strings.Contains(err.Error(), "no such file or directory") {
			return err
		}
	}
	return err
}

// packTar streams the tar of local (a file or a directory, under its
// base name) for a tar in the container to read.
func packTar(c *cli.Context, local string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		// packInputs makes a tar.gz; it is unzipped on the way.
		zr, zw := io.Pipe()
		go func() {
			err := packInputs(zw, []string{local}, func(msg string) {
				fmt.Fprintf(c.App.ErrWriter, "ccctl: warning: %s\n", strings.Replace(msg, "--input ", "", 1))
			})
			if err != nil {
				err = errors.New(strings.Replace(err.Error(), "--input ", "", 1))
			}
			zw.CloseWithError(err)
		}()
		gz, err := gzip.NewReader(zr)
		if err == nil {
			_, err = io.Copy(pw, gz)
		}
		zr.CloseWithError(errors.New("cp: the copy ended"))
		pw.CloseWithError(err)
	}()
	return pr
}

// errReader keeps the error that ended r.
type errReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
	}
	return n, err
}

func (e *errReader) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}
