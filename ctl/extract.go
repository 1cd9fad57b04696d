package ctl

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Job output archives come from a job, which may have put anything in
// them: extractArchive unpacks one into a directory without ever touching
// anything outside it. Every path goes through an os.Root of the directory
// (which refuses to leave it, through ".." or symbolic links); on top of
// that an entry is refused when its name is absolute or has a ".."
// component, when a symbolic link would point outside, or when it would be
// written through a symbolic link (one of the archive or one already in the
// directory). Devices and FIFOs are skipped, sparse files refused. Existing files are replaced
// only with force. The archive is read twice: first to check every entry,
// so that a bad archive writes nothing, then to extract; if extracting
// fails midway, what it created is removed.

// extractOptions says how to extract.
type extractOptions struct {
	// force replaces existing files and symbolic links.
	force bool
	// warn, if not nil, is told about entries skipped.
	warn func(msg string)
	// skipOutsideLinks skips (with a warning) a symbolic link that points
	// to an absolute path or outside the directory, instead of refusing
	// the archive: a container's files have such links (/etc/mtab).
	skipOutsideLinks bool
}

// extractStats counts what was extracted.
type extractStats struct {
	files int   // regular files and hard links
	bytes int64 // bytes of regular files
}

// extractArchive unpacks the tar.gz that open returns (each time it is
// called, from its start) into dir, which it creates if needed.
func extractArchive(open func() (io.ReadCloser, error), dir string, opts extractOptions) (extractStats, error) {
	var stats extractStats
	madeDir := false
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return stats, err
		}
		madeDir = true
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return stats, err
	}
	defer root.Close()
	for _, dry := range []bool{true, false} {
		x := &extractor{root: root, opts: opts, dry: dry, seen: map[string]byte{}}
		err := x.run(open)
		if err != nil {
			x.undo()
			if madeDir {
				os.Remove(dir) // only if still empty
			}
			return stats, err
		}
		stats = x.stats
	}
	return stats, nil
}

// Kinds of paths an extractor has seen.
const (
	seenDir     = 'd'
	seenFile    = 'f'
	seenSymlink = 'l'
)

type extractor struct {
	root *os.Root
	opts extractOptions
	dry  bool // check only: write nothing
	// seen holds the paths the archive has made so far (in a dry run, would
	// have made), and the existing directories it goes through.
	seen    map[string]byte
	created []string // what was created, in order, to undo on failure
	stats   extractStats
}

func (x *extractor) run(open func() (io.ReadCloser, error)) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return fmt.Errorf("the archive is not a tar.gz: %v", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("the archive is damaged: %v", err)
		}
		if err := x.entry(h, tr); err != nil {
			return err
		}
	}
	// Anything after the tar's end (and the gzip checksum) is read too.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("the archive is damaged: %v", err)
	}
	return nil
}

// undo removes what this extractor created, newest first.
func (x *extractor) undo() {
	for i := len(x.created) - 1; i >= 0; i-- {
		x.root.Remove(x.created[i])
	}
	x.created = nil
}

// entryName is the cleaned, relative, slash-separated name of an entry, or
// "" for the directory itself.
func entryName(raw string) (string, error) {
	switch {
	case strings.ContainsRune(raw, 0):
		return "", errors.New("the name holds a NUL byte")
	case strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) || filepath.VolumeName(raw) != "":
		return "", errors.New("the path is absolute")
	}
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", errors.New(`the path has a ".." component`)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", nil
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", errors.New("the path is not local")
	}
	return name, nil
}

func (x *extractor) entry(h *tar.Header, body io.Reader) error {
	name, err := entryName(h.Name)
	if err != nil {
		return fmt.Errorf("refused entry %q: %v", h.Name, err)
	}
	if name == "" {
		return nil
	}
	for k := range h.PAXRecords {
		// A sparse file's holes cost nothing in the archive and may be
		// terabytes on disk.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("refused entry %q: a sparse file", h.Name)
		}
	}
	kind := byte(0)
	switch h.Typeflag {
	case tar.TypeDir:
		kind = seenDir
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink:
		kind = seenFile
	case tar.TypeSymlink:
		kind = seenSymlink
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		x.skip("%s: a device or FIFO, skipped", name)
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		x.skip("%s: an entry of tar type %q, skipped", name, h.Typeflag)
		return nil
	}
	if prev, ok := x.seen[name]; ok {
		if prev == seenDir && kind == seenDir {
			return nil
		}
		return fmt.Errorf("refused entry %q: the archive has %s twice", h.Name, name)
	}
	if err := x.parents(h.Name, name); err != nil {
		return err
	}
	if kind == seenDir {
		return x.dir(h, name)
	}
	// A file or link replaces only a file or link, and only with force.
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("refused entry %q: %s is a directory here", h.Name, name)
	case !x.opts.force:
		return fmt.Errorf("%s exists: extract into another directory, or overwrite with --force", name)
	case !x.dry:
		if err := x.root.Remove(name); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		if x.opts.skipOutsideLinks && linkOutside(name, h.Linkname) {
			x.skip("%s: a symbolic link to %q, outside the directory; skipped", name, h.Linkname)
			return nil
		}
		err = x.symlink(h, name)
	case tar.TypeLink:
		err = x.hardlink(h, name)
	default:
		err = x.file(h, name, body)
	}
	if err == nil {
		x.seen[name] = kind
	}
	return err
}

func (x *extractor) skip(format string, args ...any) {
	if x.opts.warn != nil && !x.dry {
		x.opts.warn(fmt.Sprintf(format, args...))
	}
}

// parents makes the directories above name, checking that none is a
// symbolic link or a file, in the archive or already in the directory.
func (x *extractor) parents(raw, name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		switch x.seen[p] {
		case seenDir:
			continue
		case seenSymlink:
			return fmt.Errorf("refused entry %q: it would be written through the symbolic link %s of the archive", raw, p)
		case seenFile:
			return fmt.Errorf("refused entry %q: %s is a file of the archive, not a directory", raw, p)
		}
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !x.dry {
				if err := x.root.Mkdir(p, 0o755); err != nil {
					return err
				}
				x.created = append(x.created, p)
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("refused entry %q: %s is a symbolic link here, and ccctl does not write through links", raw, p)
		case !fi.IsDir():
			return fmt.Errorf("refused entry %q: %s exists and is not a directory", raw, p)
		}
		x.seen[p] = seenDir
	}
	return nil
}

func (x *extractor) dir(h *tar.Header, name string) error {
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !x.dry {
			// Owner rwx, so that what follows can be written.
			if err := x.root.Mkdir(name, fs.FileMode(h.Mode)&0o777|0o700); err != nil {
				return err
			}
			x.created = append(x.created, name)
		}
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("refused entry %q: %s is a symbolic link here, and ccctl does not write through links", h.Name, name)
	case !fi.IsDir():
		return fmt.Errorf("refused entry %q: %s exists and is not a directory", h.Name, name)
	}
	x.seen[name] = seenDir
	return nil
}

func (x *extractor) file(h *tar.Header, name string, body io.Reader) error {
	x.stats.files++
	x.stats.bytes += h.Size
	if x.dry {
		return nil
	}
	// O_EXCL: never through a link, never an existing file (removed above
	// with force).
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(h.Mode)&0o777)
	if err != nil {
		return err
	}
	x.created = append(x.created, name)
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if !h.ModTime.IsZero() {
		x.root.Chtimes(name, h.ModTime, h.ModTime)
	}
	return nil
}

// linkOutside says whether a symbolic link name → target (both as in the
// archive) points to an absolute path or outside the directory.
func linkOutside(name, target string) bool {
	return strings.HasPrefix(target, "/") || filepath.IsAbs(target) ||
		!filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(name), target)))
}

func (x *extractor) symlink(h *tar.Header, name string) error {
	target := h.Linkname
	switch {
	case target == "" || strings.ContainsRune(target, 0):
		return fmt.Errorf("refused entry %q: a symbolic link without a valid target", h.Name)
	case strings.HasPrefix(target, "/") || filepath.IsAbs(target):
		return fmt.Errorf("refused entry %q: the symbolic link points to the absolute path %q", h.Name, target)
	case !filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(name), target))):
		return fmt.Errorf("refused entry %q: the symbolic link points outside the directory (%q)", h.Name, target)
	}
	if x.dry {
		return nil
	}
	if err := x.root.Symlink(target, name); err != nil {
		return err
	}
	x.created = append(x.created, name)
	return nil
}

func (x *extractor) hardlink(h *tar.Header, name string) error {
	target, err := entryName(h.Linkname)
	if err != nil || target == "" || x.seen[target] != seenFile {
		return fmt.Errorf("refused entry %q: a hard link may only point to a file the archive made before (%q)", h.Name, h.Linkname)
	}
	x.stats.files++
	if x.dry {
		return nil
	}
	if err := x.root.Link(target, name); err != nil {
		return err
	}
	x.created = append(x.created, name)
	return nil
}
