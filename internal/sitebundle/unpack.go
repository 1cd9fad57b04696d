package sitebundle

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// Unpack writes the bundle read from r into dir, which must not exist yet.
// It unpacks into a fresh sibling directory and renames it to dir at the
// end, so a half-unpacked site is never seen under dir. Every file is
// written through an os.Root (no name leaves it, no link is made or
// followed), must be listed in the manifest, and must match its size and
// SHA-256; every listed file must be there. A bundle that fails these
// checks is refused with an error wrapping ErrInvalid.
func Unpack(r io.Reader, dir string) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("sitebundle: unpack: %s already exists", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".unpack-*")
	if err != nil {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	defer root.Close()
	if err := unpack(r, root); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	return nil
}

type expected struct {
	size, mtime int64
	sum         string
	seen        bool
}

func unpack(r io.Reader, root *os.Root) error {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return fmt.Errorf("%w: no manifest: %v", ErrInvalid, err)
	}
	if h.Name != ManifestName || h.Typeflag != tar.TypeReg || h.Size < 0 || h.Size > maxManifestBytes {
		return fmt.Errorf("%w: the first entry is %q, not the manifest", ErrInvalid, h.Name)
	}
	mb, err := io.ReadAll(tr)
	if err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	m, err := parseManifest(mb)
	if err != nil {
		return err
	}
	want := make(map[string]*expected, len(m.Files))
	for _, f := range m.Files {
		want[f.Stored()] = &expected{size: f.Size, mtime: f.MTime, sum: f.SHA256}
		for _, v := range f.Variants {
			want[v.Name] = &expected{size: v.Size, mtime: f.MTime, sum: v.SHA256}
		}
	}
	if err := root.WriteFile(ManifestName, mb, 0o644); err != nil {
		return fmt.Errorf("sitebundle: unpack: %w", err)
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		e := want[h.Name]
		switch {
		case e == nil:
			return fmt.Errorf("%w: %q is not in the manifest", ErrInvalid, h.Name)
		case e.seen:
			return fmt.Errorf("%w: %q is in the bundle twice", ErrInvalid, h.Name)
		case h.Typeflag != tar.TypeReg:
			return fmt.Errorf("%w: %q is not a regular file", ErrInvalid, h.Name)
		case h.Size != e.size:
			return fmt.Errorf("%w: %q has %d bytes, the manifest says %d", ErrInvalid, h.Name, h.Size, e.size)
		}
		e.seen = true
		if err := writeFile(root, h.Name, tr, e); err != nil {
			return err
		}
	}
	for name, e := range want {
		if !e.seen {
			return fmt.Errorf("%w: %q is in the manifest but not in the bundle", ErrInvalid, name)
		}
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, e *expected) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("sitebundle: unpack %s: %w", name, err)
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("sitebundle: unpack %s: %w", name, err)
	}
	sum := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, sum), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("sitebundle: unpack %s: %w", name, err)
		}
		return fmt.Errorf("%w: %q is cut short: %v", ErrInvalid, name, err)
	}
	if got := hexSum(sum); got != e.sum {
		return fmt.Errorf("%w: %q has sha256 %s, the manifest says %s", ErrInvalid, name, got, e.sum)
	}
	t := time.Unix(e.mtime, 0)
	if err := root.Chtimes(name, t, t); err != nil {
		return fmt.Errorf("sitebundle: unpack %s: %w", name, err)
	}
	return nil
}
