package jobs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// readDirBatch is how many names are read from a directory at a time, so a
// huge directory is refused at the file limit without listing it whole.
const readDirBatch = 1024

// packEntry is one file found under the root.
type packEntry struct {
	name string // slash-separated, relative to the root, never "."
	info fs.FileInfo
	st   *syscall.Stat_t
	link string // symlink target
}

type inode struct{ dev, ino uint64 }

// Pack writes the tree under root as a gzip-compressed tar stream to w and
// returns the number of entries written.
//
// The archive holds, sorted by path (so a parent comes before its
// children), directories ("name/"), regular files and symlinks, with their
// permission bits and sticky bit (setuid and setgid are dropped), their
// modification time in whole seconds, uid and gid 0 and no user or group
// names. Nothing is followed: a symlink is stored as a symlink entry with
// its target as written, whatever it points at. A regular file with several
// hard links under root is stored once as a regular file (under the first
// of its paths) and then as hard-link entries naming that path.
//
// Pack refuses, with a *RefusedError and before writing anything, a tree
// holding a device file, a FIFO or a socket, an entry on another filesystem
// than root (a mount inside it), more than limits.MaxFiles entries, or more
// than limits.MaxBytes bytes of file content. The root itself is not an
// entry.
func Pack(root string, w io.Writer, limits Limits) (files uint32, err error) {
	limits = limits.WithDefaults()
	rt, err := os.OpenRoot(root)
	if err != nil {
		return 0, fmt.Errorf("jobs: open %s: %w", root, err)
	}
	defer rt.Close()
	rootInfo, err := rt.Lstat(".")
	if err != nil {
		return 0, fmt.Errorf("jobs: stat %s: %w", root, err)
	}
	rootSt, ok := rootInfo.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("jobs: stat %s: no device and inode numbers", root)
	}
	entries, err := scan(rt, rootSt.Dev, limits)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(entries, func(a, b packEntry) int { return strings.Compare(a.name, b.name) })

	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return 0, fmt.Errorf("jobs: gzip: %w", err)
	}
	tw := tar.NewWriter(zw)
	first := map[inode]string{} // hard-linked inode → path stored with content
	for _, e := range entries {
		if err := writeEntry(rt, tw, e, first); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("jobs: write archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("jobs: write archive: %w", err)
	}
	return uint32(len(entries)), nil
}

// scan walks the tree without following symlinks, checks every entry and
// the limits, and returns the entries in no particular order.
func scan(rt *os.Root, rootDev uint64, limits Limits) ([]packEntry, error) {
	var (
		out   []packEntry
		total int64
		sized = map[inode]bool{}
		dirs  = []string{"."}
	)
	for len(dirs) > 0 {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		f, err := rt.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return nil, fmt.Errorf("jobs: open directory %s: %w", dir, err)
		}
		for {
			names, rerr := f.Readdirnames(readDirBatch)
			for _, n := range names {
				name := n
				if dir != "." {
					name = dir + "/" + n
				}
				if uint64(len(out)) >= uint64(limits.MaxFiles) {
					f.Close()
					return nil, refused("output has more than %d files", limits.MaxFiles)
				}
				e, err := lstatEntry(rt, name, rootDev)
				if err != nil {
					f.Close()
					return nil, err
				}
				switch {
				case e.info.IsDir():
					dirs = append(dirs, name)
				case e.info.Mode().IsRegular():
					key := inode{uint64(e.st.Dev), e.st.Ino}
					if e.st.Nlink <= 1 || !sized[key] {
						total += e.info.Size()
						if e.st.Nlink > 1 {
							sized[key] = true
						}
					}
					if total > limits.MaxBytes {
						f.Close()
						return nil, refused("output is larger than its limit of %d bytes", limits.MaxBytes)
					}
				}
				out = append(out, e)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				f.Close()
				return nil, fmt.Errorf("jobs: read directory %s: %w", dir, rerr)
			}
		}
		f.Close()
	}
	return out, nil
}

// lstatEntry describes one path and refuses what cannot be collected.
func lstatEntry(rt *os.Root, name string, rootDev uint64) (packEntry, error) {
	info, err := rt.Lstat(name)
	if err != nil {
		return packEntry{}, fmt.Errorf("jobs: stat %s: %w", name, err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return packEntry{}, fmt.Errorf("jobs: stat %s: no device and inode numbers", name)
	}
	e := packEntry{name: name, info: info, st: st}
	const only = "only regular files, directories and symlinks are collected"
	m := info.Mode()
	switch {
	case m&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		return e, refused("output: %s is a device file; %s", name, only)
	case m&fs.ModeNamedPipe != 0:
		return e, refused("output: %s is a FIFO (named pipe); %s", name, only)
	case m&fs.ModeSocket != 0:
		return e, refused("output: %s is a socket; %s", name, only)
	case m&fs.ModeSymlink != 0:
		if e.link, err = rt.Readlink(name); err != nil {
			return e, fmt.Errorf("jobs: read symlink %s: %w", name, err)
		}
	case m.IsDir(), m.IsRegular():
	default:
		return e, refused("output: %s has an unsupported file type (%s); %s", name, m.Type(), only)
	}
	if uint64(st.Dev) != rootDev {
		return e, refused("output: %s is on another filesystem (a mount inside the output directory); only the output directory's own files are collected", name)
	}
	return e, nil
}

func writeEntry(rt *os.Root, tw *tar.Writer, e packEntry, first map[inode]string) error {
	m := e.info.Mode()
	h := &tar.Header{
		Name:    e.name,
		Mode:    int64(m.Perm()),
		ModTime: time.Unix(e.info.ModTime().Unix(), 0),
	}
	if m&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	switch {
	case m.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("jobs: write archive: %w", err)
		}
		return nil
	case m&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.link
		h.Mode = 0o777
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("jobs: write archive: %w", err)
		}
		return nil
	}
	// A regular file.
	key := inode{uint64(e.st.Dev), e.st.Ino}
	if e.st.Nlink > 1 {
		if target, ok := first[key]; ok {
			h.Typeflag = tar.TypeLink
			h.Linkname = target
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("jobs: write archive: %w", err)
			}
			return nil
		}
		first[key] = e.name
	}
	f, err := rt.OpenFile(e.name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("jobs: open %s: %w", e.name, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("jobs: stat %s: %w", e.name, err)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); !ok || !info.Mode().IsRegular() || st.Dev != e.st.Dev || st.Ino != e.st.Ino {
		return fmt.Errorf("jobs: %s changed while the output was packed", e.name)
	}
	h.Typeflag = tar.TypeReg
	h.Size = e.info.Size()
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("jobs: write archive: %w", err)
	}
	if _, err := io.CopyN(tw, f, h.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("jobs: %s shrank while the output was packed", e.name)
		}
		return fmt.Errorf("jobs: pack %s: %w", e.name, err)
	}
	return nil
}
