package ctl

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// packInputs writes to w the tar.gz of a job's --input paths: a file as
// its base name, a directory as its base name and everything under it, so
// that in the job a file lands at /input/NAME and a directory at
// /input/DIR/…. Symbolic links inside directories are kept as links; a
// path given is followed if it is one. Every entry is made readable by all
// (the job runs as nobody by default) and loses its owner. Devices, FIFOs
// and sockets inside directories are skipped, with a word to warn.
func packInputs(w io.Writer, paths []string, warn func(string)) error {
	names := map[string]string{}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("--input %s: %v", p, err)
		}
		base := filepath.Base(abs)
		if base == string(filepath.Separator) || base == "." {
			return fmt.Errorf("--input %s: give a file or a directory with a name, not the root", p)
		}
		if other, dup := names[base]; dup {
			return fmt.Errorf("--input %s and --input %s would both be /input/%s: rename or move one", other, p, base)
		}
		names[base] = p
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("--input %s: %v", p, unwrapPath(err))
		}
		switch {
		case fi.IsDir():
			err = packDir(tw, p, base, warn)
		case fi.Mode().IsRegular():
			err = packEntry(tw, p, base, fi)
		default:
			return fmt.Errorf("--input %s: not a regular file or a directory", p)
		}
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func packDir(tw *tar.Writer, dir, base string, warn func(string)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("--input %s: %v", dir, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := base
		if rel != "." {
			name = base + "/" + filepath.ToSlash(rel)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("--input %s: %v", p, unwrapPath(err))
		}
		if t := fi.Mode().Type(); t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			if warn != nil {
				warn(fmt.Sprintf("--input %s: %s is not a file, a directory or a symbolic link; left out", dir, p))
			}
			return nil
		}
		return packEntry(tw, p, name, fi)
	})
}

// packEntry writes one file, directory or symbolic link.
func packEntry(tw *tar.Writer, p, name string, fi fs.FileInfo) error {
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return fmt.Errorf("--input %s: %v", p, unwrapPath(err))
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("--input %s: %v", p, err)
	}
	h.Name = name
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	h.ModTime, h.AccessTime, h.ChangeTime = fi.ModTime().Truncate(time.Second), time.Time{}, time.Time{}
	h.Format = tar.FormatPAX
	switch {
	case fi.IsDir():
		h.Name += "/"
		h.Mode |= 0o555
	case fi.Mode().IsRegular():
		h.Mode |= 0o444
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("--input %s: %v", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("--input %s: %v", p, unwrapPath(err))
	}
	defer f.Close()
	n, err := io.Copy(tw, io.LimitReader(f, h.Size))
	if err == nil && n != h.Size {
		err = errors.New("it shrank while being packed")
	}
	if err != nil {
		return fmt.Errorf("--input %s: %v", p, err)
	}
	return nil
}

// unwrapPath drops the operation and path of a *fs.PathError, which the
// messages name already: "no such file or directory".
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
