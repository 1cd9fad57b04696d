package jobs

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/containercodes/cc/internal/testing/tartest"
)

// archived is one entry read back from an archive.
type archived struct {
	typ     byte
	mode    int64
	content string
	link    string
	uid     int
	gid     int
	mtime   time.Time
}

// readArchive reads a tar.gz into entries by name, in order.
func readArchive(t *testing.T, b []byte) (names []string, entries map[string]archived) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	entries = map[string]archived{}
	for _, e := range tartest.Read(t, zr) {
		h := e.Header
		names = append(names, h.Name)
		entries[h.Name] = archived{typ: h.Typeflag, mode: h.Mode, content: string(e.Content), link: h.Linkname, uid: h.Uid, gid: h.Gid, mtime: h.ModTime}
	}
	return names, entries
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestPack(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	type want struct {
		names []string
		check func(t *testing.T, e map[string]archived)
		err   string // substring of a refusal
	}
	for _, c := range []struct {
		name   string
		limits Limits
		setup  func(t *testing.T, dir string)
		want   want
	}{
		{
			name: "files and directories, sorted, modes and times",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "b.txt"), "bee\n", 0o644)
				write(t, filepath.Join(dir, "a", "x.sh"), "#!/bin/sh\n", 0o755)
				write(t, filepath.Join(dir, "a.txt"), "", 0o600)
				write(t, filepath.Join(dir, "suid"), "s", 0o4755|os.ModeSetuid)
				os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid|os.ModeSetgid)
				os.Mkdir(filepath.Join(dir, "sticky"), 0o777)
				os.Chmod(filepath.Join(dir, "sticky"), 0o777|os.ModeSticky)
				for _, p := range []string{"b.txt", "a/x.sh", "a", "a.txt", "suid", "sticky"} {
					os.Chtimes(filepath.Join(dir, p), mtime, mtime)
				}
			},
			want: want{
				names: []string{"a/", "a.txt", "a/x.sh", "b.txt", "sticky/", "suid"}, // by path: "a" < "a.txt" < "a/x.sh"
				check: func(t *testing.T, e map[string]archived) {
					if g := e["b.txt"]; g.typ != tar.TypeReg || g.content != "bee\n" || g.mode != 0o644 || !g.mtime.Equal(mtime.Truncate(time.Second)) || g.uid != 0 || g.gid != 0 {
						t.Errorf("b.txt: %+v", g)
					}
					if g := e["a/x.sh"]; g.mode != 0o755 || g.content != "#!/bin/sh\n" {
						t.Errorf("a/x.sh: %+v", g)
					}
					if g := e["a.txt"]; g.mode != 0o600 || g.content != "" {
						t.Errorf("a.txt: %+v", g)
					}
					if g := e["suid"]; g.mode != 0o755 {
						t.Errorf("setuid/setgid not stripped: %o", g.mode)
					}
					if g := e["a/"]; g.typ != tar.TypeDir {
						t.Errorf("a/: %+v", g)
					}
					if g := e["sticky/"]; g.typ != tar.TypeDir || g.mode != 0o1777 {
						t.Errorf("sticky/: %+v (mode %o)", g, g.mode)
					}
				},
			},
		},
		{
			name:  "empty",
			setup: func(t *testing.T, dir string) {},
			want:  want{names: nil},
		},
		{
			name: "symlinks are stored, never followed",
			setup: func(t *testing.T, dir string) {
				os.Symlink("/etc/shadow", filepath.Join(dir, "s"))
				os.Symlink("..", filepath.Join(dir, "up"))
				os.Symlink("missing", filepath.Join(dir, "dangling"))
				os.Symlink("/", filepath.Join(dir, "rootdir"))
			},
			want: want{
				names: []string{"dangling", "rootdir", "s", "up"},
				check: func(t *testing.T, e map[string]archived) {
					for n, target := range map[string]string{"s": "/etc/shadow", "up": "..", "dangling": "missing", "rootdir": "/"} {
						if g := e[n]; g.typ != tar.TypeSymlink || g.link != target || g.content != "" {
							t.Errorf("%s: %+v", n, g)
						}
					}
				},
			},
		},
		{
			name: "hard links stored once",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "z", "orig"), "12345678", 0o644)
				os.Link(filepath.Join(dir, "z", "orig"), filepath.Join(dir, "a-link"))
				os.Link(filepath.Join(dir, "z", "orig"), filepath.Join(dir, "m-link"))
			},
			// 8 bytes counted once, though three names hold them.
			limits: Limits{MaxBytes: 10},
			want: want{
				names: []string{"a-link", "m-link", "z/", "z/orig"},
				check: func(t *testing.T, e map[string]archived) {
					if g := e["a-link"]; g.typ != tar.TypeReg || g.content != "12345678" {
						t.Errorf("a-link: %+v", g)
					}
					for _, n := range []string{"m-link", "z/orig"} {
						if g := e[n]; g.typ != tar.TypeLink || g.link != "a-link" || g.content != "" {
							t.Errorf("%s: %+v", n, g)
						}
					}
				},
			},
		},
		{
			name: "fifo refused",
			setup: func(t *testing.T, dir string) {
				os.Mkdir(filepath.Join(dir, "dir"), 0o755)
				if err := syscall.Mkfifo(filepath.Join(dir, "dir", "p"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: want{err: "output: dir/p is a FIFO (named pipe); only regular files, directories and symlinks are collected"},
		},
		{
			name: "socket refused",
			setup: func(t *testing.T, dir string) {
				l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "sock"), Net: "unix"})
				if err != nil {
					t.Fatal(err)
				}
				l.SetUnlinkOnClose(false)
				l.Close()
			},
			want: want{err: "output: sock is a socket"},
		},
		{
			name: "device refused",
			setup: func(t *testing.T, dir string) {
				if os.Getuid() != 0 {
					t.Skip("mknod needs root")
				}
				os.Mkdir(filepath.Join(dir, "dir"), 0o755)
				if err := syscall.Mknod(filepath.Join(dir, "dir", "x"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
					t.Fatal(err)
				}
			},
			want: want{err: "output: dir/x is a device file; only regular files, directories and symlinks are collected"},
		},
		{
			name:   "too many files",
			limits: Limits{MaxFiles: 2},
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "d", "a"), "", 0o644)
				write(t, filepath.Join(dir, "b"), "", 0o644)
			},
			want: want{err: "output has more than 2 files"},
		},
		{
			name:   "files at the limit",
			limits: Limits{MaxFiles: 3, MaxBytes: 4},
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "d", "a"), "12", 0o644)
				write(t, filepath.Join(dir, "b"), "34", 0o644)
			},
			want: want{names: []string{"b", "d/", "d/a"}},
		},
		{
			name:   "too large",
			limits: Limits{MaxBytes: 10},
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "a"), "123456", 0o644)
				write(t, filepath.Join(dir, "b"), "12345", 0o644)
			},
			want: want{err: "output is larger than its limit of 10 bytes"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			var buf bytes.Buffer
			n, err := Pack(dir, &buf, c.limits)
			if c.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.want.err) || !IsRefused(err) {
					t.Fatalf("err %v, want a refusal containing %q", err, c.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names, entries := readArchive(t, buf.Bytes())
			if strings.Join(names, ",") != strings.Join(c.want.names, ",") || int(n) != len(c.want.names) {
				t.Fatalf("entries %q (n=%d), want %q", names, n, c.want.names)
			}
			if c.want.check != nil {
				c.want.check(t, entries)
			}
			// The same tree packs to the same bytes.
			var again bytes.Buffer
			if _, err := Pack(dir, &again, c.limits); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("second pack differs (%v)", err)
			}
		})
	}
}

func TestPackOtherFilesystem(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	_, err := Pack(dir, io.Discard, Limits{})
	if err == nil || !strings.Contains(err.Error(), "output: mnt is on another filesystem") || !IsRefused(err) {
		t.Fatalf("err %v", err)
	}
}

func TestPackMissingRoot(t *testing.T) {
	_, err := Pack(filepath.Join(t.TempDir(), "nope"), io.Discard, Limits{})
	if err == nil || IsRefused(err) {
		t.Fatalf("err %v, want an I/O error", err)
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "b", "c.txt"), "deep\n", 0o640)
	write(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\n", 0o700)
	os.Link(filepath.Join(dir, "run.sh"), filepath.Join(dir, "a", "hard"))
	os.Symlink("../run.sh", filepath.Join(dir, "a", "rel"))
	var buf bytes.Buffer
	if _, err := Pack(dir, &buf, Limits{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rt, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := Unpack(&buf, rt, 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a", "b", "c.txt")); string(b) != "deep\n" {
		t.Errorf("c.txt: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a", "rel")); string(b) != "#!/bin/sh\n" {
		t.Errorf("a/rel: %q", b)
	}
	st1, _ := os.Stat(filepath.Join(out, "a", "hard"))
	st2, _ := os.Stat(filepath.Join(out, "run.sh"))
	if !os.SameFile(st1, st2) || st2.Mode().Perm() != 0o755 {
		t.Errorf("hard link lost or mode %v", st2.Mode())
	}
}
