package jobs

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// ent is an archive entry for tests: a header and, for regular files, the
// content.
type ent struct {
	h    tar.Header
	data string
}

func file(name, data string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data: data}
}
func dir(name string) ent { return ent{h: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}} }
func symlink(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}}
}
func hardlink(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

func tgz(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range ents {
		h := e.h
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func unpackInto(t testing.TB, data []byte, max int64) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	rt, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	return out, Unpack(bytes.NewReader(data), rt, max)
}

func TestUnpack(t *testing.T) {
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	exe := file("bin/run", "#!/bin/sh\n")
	exe.h.Mode = 0o4700 // setuid dropped, any x bit → 0755
	timed := file("t", "x")
	timed.h.ModTime = mtime
	priv := file("secret", "s")
	priv.h.Mode = 0o600
	dev := ent{h: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3}}
	fifo := ent{h: tar.Header{Typeflag: tar.TypeFifo, Name: "p"}}
	for _, c := range []struct {
		name  string
		ents  []ent
		max   int64
		err   string // substring of a refusal
		check func(t *testing.T, root string)
	}{
		{
			name: "files, directories, links",
			ents: []ent{dir("./"), dir("d/"), file("d/a.txt", "hello"), exe, timed, priv, symlink("d/l", "a.txt"), symlink("bin/up", "../d/a.txt"), hardlink("h", "d/a.txt"), file("implicit/parent/f", "p")},
			check: func(t *testing.T, root string) {
				for p, want := range map[string]string{"d/a.txt": "hello", "d/l": "hello", "bin/up": "hello", "h": "hello", "implicit/parent/f": "p"} {
					if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
						t.Errorf("%s: %q %v", p, b, err)
					}
				}
				modes := map[string]fs.FileMode{"bin/run": 0o755, "secret": 0o644, "d": fs.ModeDir | 0o755, "implicit": fs.ModeDir | 0o755, "d/a.txt": 0o644}
				for p, want := range modes {
					st, err := os.Lstat(filepath.Join(root, p))
					if err != nil || st.Mode() != want {
						t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode(), want, err)
					}
				}
				if st, _ := os.Stat(filepath.Join(root, "t")); !st.ModTime().Equal(mtime) {
					t.Errorf("mtime %v", st.ModTime())
				}
				if l, _ := os.Readlink(filepath.Join(root, "d/l")); l != "a.txt" {
					t.Errorf("d/l → %q", l)
				}
			},
		},
		{name: "later file wins", ents: []ent{file("a", "1"), file("a", "2")}, check: func(t *testing.T, root string) {
			if b, _ := os.ReadFile(filepath.Join(root, "a")); string(b) != "2" {
				t.Errorf("a = %q", b)
			}
		}},
		{name: "file replaces a symlink without following it", ents: []ent{file("target", "keep"), symlink("a", "target"), file("a", "new")}, check: func(t *testing.T, root string) {
			if b, _ := os.ReadFile(filepath.Join(root, "target")); string(b) != "keep" {
				t.Errorf("target = %q", b)
			}
			if st, _ := os.Lstat(filepath.Join(root, "a")); !st.Mode().IsRegular() {
				t.Errorf("a: %v", st.Mode())
			}
		}},
		{name: "empty archive", ents: nil},
		{name: "absolute name", ents: []ent{file("/etc/passwd", "x")}, err: "input: /etc/passwd is an absolute path"},
		{name: "dot-dot name", ents: []ent{file("a/../../x", "x")}, err: `input: a/../../x has a ".." component`},
		{name: "dot-dot inside", ents: []ent{file("a/../b", "x")}, err: `has a ".." component`},
		{name: "absolute symlink", ents: []ent{symlink("s", "/etc/shadow")}, err: "input: symlink s points at the absolute path /etc/shadow"},
		{name: "symlink out", ents: []ent{symlink("d/s", "../../x")}, err: "input: symlink d/s → ../../x points outside the input"},
		{name: "symlink dot-dot after a name", ents: []ent{symlink("s", "a/../../x")}, err: `has ".." after a name`},
		{name: "symlink chain", ents: []ent{symlink("y", "."), symlink("x", "y/..")}, err: `has ".." after a name`},
		{name: "entry under a symlink", ents: []ent{dir("real/"), symlink("s", "real"), file("s/x", "x")}, err: "input: s is a symlink"},
		{name: "directory over a symlink", ents: []ent{symlink("s", "."), dir("s/")}, err: "input: s is a symlink"},
		{name: "directory over a file", ents: []ent{file("a", "1"), dir("a/")}, err: "input: a is both a file and a directory"},
		{name: "file over a directory", ents: []ent{dir("a/"), file("a", "1")}, err: "input: a is both a directory and a file"},
		{name: "hard link to nothing", ents: []ent{hardlink("h", "nope")}, err: "input: hard link h names nope"},
		{name: "hard link outside", ents: []ent{hardlink("h", "../etc/passwd")}, err: "input: hard link h names"},
		{name: "hard link to a symlink", ents: []ent{symlink("s", "x"), hardlink("h", "s")}, err: "not a regular file"},
		{name: "hard link through a symlink", ents: []ent{dir("d/"), file("d/f", "x"), symlink("s", "d"), hardlink("h", "s/f")}, err: "not a regular file"},
		{name: "device", ents: []ent{dev}, err: "input: dev/null is a device file"},
		{name: "fifo", ents: []ent{fifo}, err: "input: p is a FIFO"},
		{name: "over the limit", ents: []ent{file("a", strings.Repeat("x", 600)), file("b", strings.Repeat("y", 600))}, max: 2000, err: "input is larger than its limit of 2000 bytes"},
		{name: "many empty files over the limit", ents: []ent{file("a", ""), file("b", ""), file("c", "")}, max: 1500, err: "input is larger than its limit"},
		{name: "at the limit", ents: []ent{file("a", strings.Repeat("x", 488))}, max: 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, err := unpackInto(t, tgz(t, c.ents...), c.max)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !IsRefused(err) {
					t.Fatalf("err %v, want a refusal containing %q", err, c.err)
				}
				checkContained(t, filepath.Dir(root))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, root)
			}
			checkContained(t, filepath.Dir(root))
		})
	}
}

func TestUnpackNotAnArchive(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not gzip"), tgz(t, file("a", "hello"))[:30]} {
		_, err := unpackInto(t, data, 0)
		if err == nil || !IsRefused(err) {
			t.Errorf("%q: err %v, want a refusal", data, err)
		}
	}
	// A broken reader is the agent's trouble, not a refusal.
	boom := errors.New("connection reset")
	out := t.TempDir()
	rt, _ := os.OpenRoot(out)
	defer rt.Close()
	whole := tgz(t, file("a", strings.Repeat("z", 100000)))
	err := Unpack(io.MultiReader(bytes.NewReader(whole[:len(whole)/2]), &failing{boom}), rt, 0)
	if !errors.Is(err, boom) || IsRefused(err) {
		t.Errorf("err %v, want %v unrefused", err, boom)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

// checkContained fails when anything appeared beside root in parent, or a
// symlink under root resolves outside it.
func checkContained(t testing.TB, parent string) {
	t.Helper()
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "root" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("unpack wrote beside its root: %q", names)
	}
	root := filepath.Join(parent, "root")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop: harmless
		}
		if target != root && !strings.HasPrefix(target, root+"/") {
			t.Fatalf("symlink %s resolves to %s, outside %s", p, target, root)
		}
		return nil
	})
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			t.Fatalf("%s has mode %v", p, info.Mode())
		}
		return nil
	})
}

func FuzzUnpack(f *testing.F) {
	f.Add(tgz(f, dir("d/"), file("d/a", "hello"), symlink("d/l", "a"), hardlink("h", "d/a")))
	f.Add(tgz(f, file("/abs", "x")))
	f.Add(tgz(f, symlink("y", "."), symlink("x", "y/..")))
	f.Add(tgz(f, symlink("s", "../x"), file("s/y", "z")))
	f.Add(tgz(f, dir("a/"), file("a", "x"), file("a/b/c/d", "e")))
	f.Add(tgz(f, ent{h: tar.Header{Typeflag: tar.TypeChar, Name: "c"}}))
	f.Add(tgz(f, file(strings.Repeat("n/", 60)+"f", "deep")))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := unpackInto(t, data, 1<<20)
		if err != nil && !IsRefused(err) {
			// Only the agent's own writes may fail otherwise (e.g. a name
			// too long for the filesystem).
			var pe *fs.PathError
			var le *os.LinkError
			if !errors.As(err, &pe) && !errors.As(err, &le) {
				t.Fatalf("unexpected error kind: %v", err)
			}
		}
		checkContained(t, filepath.Dir(root))
	})
}
