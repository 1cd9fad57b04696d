package jobs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/klauspost/compress/gzip"

	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/streamio"
)

// tarBlock is what each entry counts toward Unpack's byte limit on top of
// its content, so that an archive of many empty files is bounded too.
const tarBlock = 512

// Unpack reads a gzip-compressed tar stream from r (a job's input) and
// creates its entries under dst. maxBytes (jobspec.DefaultInputLimitBytes
// when <= 0) caps the content of the regular files plus 512 bytes for each
// entry.
//
// It creates directories, regular files, symlinks and hard links, and
// refuses with a *RefusedError: a name that is absolute or holds a ".."
// component, an entry under a symlink, a symlink whose target is absolute,
// leaves the tree, or has ".." after a name ("../a/b" is fine, "a/../b" is
// not, so that no chain of links can climb out), a hard link to anything but
// a regular file unpacked before it, device files, FIFOs and any other
// type, an entry replacing a directory or a directory replacing a file, a
// stream over the limit, and a stream that is not a tar.gz. Errors reading
// r itself are returned as they are (not refused).
//
// Modes are normalized so that any user of the container can read the
// input: directories 0755, files 0644, or 0755 when the archive gives them
// any execute bit; no setuid, setgid or sticky bit. Files keep their
// modification time. Ownership is the caller's (the agent's).
func Unpack(r io.Reader, dst *os.Root, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = jobspec.DefaultInputLimitBytes
	}
	src := &streamio.Recorder{R: r}
	u := &unpacker{root: dst, dirs: map[string]bool{".": true}, max: maxBytes}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return blame(src, err, "input is not a gzip stream")
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return blame(src, err, "input is not a valid tar.gz archive")
		}
		if err := u.entry(h, tr, src); err != nil {
			return err
		}
	}
	for d := range u.dirs {
		if d == "." {
			continue
		}
		if err := dst.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("jobs: unpack input: chmod %s: %w", d, err)
		}
	}
	return nil
}

// blame returns the reader's own error when there was one, else a refusal.
func blame(src *streamio.Recorder, err error, what string) error {
	if src.Err != nil {
		return fmt.Errorf("jobs: read input: %w", src.Err)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return refused("%s: %v", what, err)
}

type unpacker struct {
	root  *os.Root
	dirs  map[string]bool // directories made or checked: real, not symlinks
	max   int64
	total int64
}

func (u *unpacker) entry(h *tar.Header, tr *tar.Reader, src *streamio.Recorder) error {
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	u.total += tarBlock
	if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
		if h.Size > 0 {
			u.total += h.Size
		}
	}
	if u.total > u.max || u.total < 0 {
		return refused("input is larger than its limit of %d bytes (file content plus %d bytes per entry)", u.max, tarBlock)
	}
	if name == "." {
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		return refused("input: an entry of type %q names the input's root", string(h.Typeflag))
	}
	const only = "only regular files, directories, symlinks and hard links are unpacked"
	switch h.Typeflag {
	case tar.TypeDir:
		return u.mkdirs(name)
	case tar.TypeReg, tar.TypeRegA:
		if err := u.prepare(name); err != nil {
			return err
		}
		return u.writeFile(name, h, tr, src)
	case tar.TypeSymlink:
		if err := checkLinkTarget(name, h.Linkname); err != nil {
			return err
		}
		if err := u.prepare(name); err != nil {
			return err
		}
		if err := u.root.Symlink(h.Linkname, name); err != nil {
			return fmt.Errorf("jobs: unpack input: symlink %s: %w", name, err)
		}
		return nil
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil || target == "." {
			return refused("input: hard link %s names %q, not a file of the input", name, h.Linkname)
		}
		if !u.dirs[path.Dir(target)] {
			return refused("input: hard link %s names %s, which is not a regular file unpacked before it", name, target)
		}
		info, err := u.root.Lstat(target)
		if err != nil || !info.Mode().IsRegular() {
			return refused("input: hard link %s names %s, which is not a regular file unpacked before it", name, target)
		}
		if target == name {
			return nil
		}
		if err := u.prepare(name); err != nil {
			return err
		}
		if err := u.root.Link(target, name); err != nil {
			return fmt.Errorf("jobs: unpack input: link %s: %w", name, err)
		}
		return nil
	case tar.TypeChar, tar.TypeBlock:
		return refused("input: %s is a device file; %s", name, only)
	case tar.TypeFifo:
		return refused("input: %s is a FIFO (named pipe); %s", name, only)
	default:
		return refused("input: %s has the unsupported tar type %q; %s", name, string(h.Typeflag), only)
	}
}

// cleanName checks an entry's name and returns it relative and clean,
// "." for the root.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", refused("input: an entry has an empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", refused("input: the name %q holds a NUL byte", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", refused("input: %s is an absolute path; names must be relative", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", refused("input: %s has a \"..\" component; names must stay inside the input", name)
		}
	}
	return path.Clean(name), nil
}

// checkLinkTarget allows relative targets with ".." only in front, no more
// of them than the link is deep: so a target climbs only through real
// directories (Unpack never puts an entry under a symlink), then descends,
// and no chain of such links leaves the tree.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return refused("input: symlink %s has an empty target", name)
	}
	if strings.IndexByte(target, 0) >= 0 {
		return refused("input: symlink %s has a target holding a NUL byte", name)
	}
	if strings.HasPrefix(target, "/") {
		return refused("input: symlink %s points at the absolute path %s; only relative links inside the input are allowed", name, target)
	}
	depth := strings.Count(path.Dir(name), "/") + 1
	if path.Dir(name) == "." {
		depth = 0
	}
	ups, descended := 0, false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if descended {
				return refused("input: symlink %s → %s has \"..\" after a name; \"..\" may only lead the target", name, target)
			}
			ups++
		default:
			descended = true
		}
	}
	if ups > depth {
		return refused("input: symlink %s → %s points outside the input", name, target)
	}
	return nil
}

// mkdirs makes dir and its parents as real directories, refusing a
// symlink or a file in the way.
func (u *unpacker) mkdirs(dir string) error {
	if u.dirs[dir] {
		return nil
	}
	if err := u.mkdirs(path.Dir(dir)); err != nil {
		return err
	}
	info, err := u.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := u.root.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("jobs: unpack input: mkdir %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("jobs: unpack input: stat %s: %w", dir, err)
	case info.Mode()&fs.ModeSymlink != 0:
		return refused("input: %s is a symlink; no entry may be a directory or lie under a symlink", dir)
	case !info.IsDir():
		return refused("input: %s is both a file and a directory", dir)
	}
	u.dirs[dir] = true
	return nil
}

// prepare makes the parents of a non-directory entry and removes an
// earlier non-directory entry of the same name (the last one wins, as with
// tar).
func (u *unpacker) prepare(name string) error {
	if err := u.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	if u.dirs[name] {
		return refused("input: %s is both a directory and a file", name)
	}
	if _, err := u.root.Lstat(name); err == nil {
		if err := u.root.Remove(name); err != nil {
			return fmt.Errorf("jobs: unpack input: replace %s: %w", name, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("jobs: unpack input: stat %s: %w", name, err)
	}
	return nil
}

func (u *unpacker) writeFile(name string, h *tar.Header, tr *tar.Reader, src *streamio.Recorder) error {
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("jobs: unpack input: create %s: %w", name, err)
	}
	_, err = io.Copy(f, tr)
	if cerr := f.Close(); err == nil && cerr != nil {
		return fmt.Errorf("jobs: unpack input: write %s: %w", name, cerr)
	}
	if err != nil {
		if src.Err != nil {
			return fmt.Errorf("jobs: read input: %w", src.Err)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("jobs: unpack input: write %s: %w", name, err)
		}
		return refused("input: %s is cut short or damaged: %v", name, err)
	}
	mode := fs.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	if err := u.root.Chmod(name, mode); err != nil {
		return fmt.Errorf("jobs: unpack input: chmod %s: %w", name, err)
	}
	if !h.ModTime.IsZero() {
		if err := u.root.Chtimes(name, h.ModTime, h.ModTime); err != nil {
			return fmt.Errorf("jobs: unpack input: set the time of %s: %w", name, err)
		}
	}
	return nil
}
