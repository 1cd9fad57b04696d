package ctl

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestEntryName(t *testing.T) {
	cases := map[string]string{
		"a.txt": "a.txt", "./a.txt": "a.txt", "dir/": "dir", "a//b/./c": "a/b/c", ".": "", "./": "",
		"..": "!", "../x": "!", "a/../../x": "!", "a/../b": "!", "/etc/passwd": "!", "/": "!", "a\x00b": "!",
	}
	for in, want := range cases {
		got, err := entryName(in)
		if err != nil {
			got = "!"
		}
		if got != want {
			t.Errorf("entryName(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}

// extractBytes extracts a tar.gz held in memory.
func extractBytes(data []byte, dir string, opts extractOptions) (extractStats, error) {
	return extractArchive(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, dir, opts)
}

func TestExtractNotATarGz(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := extractBytes([]byte("not gzip at all"), dir, extractOptions{}); err == nil || !strings.Contains(err.Error(), "not a tar.gz") {
		t.Errorf("garbage: %v", err)
	}
	// A damaged tail fails in the check, before anything is written.
	good := makeTarGz(t, tarEntry{name: "a", body: strings.Repeat("a", 10000)})
	bad := append([]byte(nil), good[:len(good)-8]...)
	if _, err := extractBytes(bad, dir, extractOptions{}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("truncated archive: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed extraction left %s", dir)
	}
}

func TestExtractMakesReadOnlyDirsWritable(t *testing.T) {
	dir := t.TempDir()
	data := makeTarGz(t, tarEntry{name: "ro/", typ: tar.TypeDir, mode: 0o500}, tarEntry{name: "ro/f", body: "x", mode: 0o400})
	st, err := extractBytes(data, dir, extractOptions{})
	if err != nil || st.files != 1 || st.bytes != 1 {
		t.Fatalf("extract: %+v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ro", "f")); err != nil || string(b) != "x" {
		t.Errorf("ro/f: %q %v", b, err)
	}
}

func TestExtractUndoesWhatItMadeOnFailure(t *testing.T) {
	// Writing can fail after the check pass (a full disk, a file made
	// meanwhile); undo then removes what was made, newest first.
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	x := &extractor{root: root, seen: map[string]byte{}}
	data := makeTar(t, tarEntry{name: "a/b/c.txt", body: "c"}, tarEntry{name: "l", typ: tar.TypeSymlink, link: "a/b"})
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err := x.entry(h, tr); err != nil {
			t.Fatal(err)
		}
	}
	if got := tree(t, dir); len(got) != 4 {
		t.Fatalf("made %v", got)
	}
	x.undo()
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("undo left %v", got)
	}
}

// FuzzExtract feeds the extractor tar archives (gzipped here, so that the
// fuzzer mutates the tar itself): whatever they hold, nothing may appear or
// change outside the directory, a link already in it must not be written
// through, and a refused archive must leave the directory as it was.
func FuzzExtract(f *testing.F) {
	seeds := [][]tarEntry{
		{{name: "a.txt", body: "a"}, {name: "d/", typ: tar.TypeDir}, {name: "d/b.txt", body: "b"}},
		{{name: "../x", body: "evil"}},
		{{name: "/abs", body: "evil"}},
		{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/x", body: "evil"}},
		{{name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "d/", typ: tar.TypeDir}, {name: "l/x", body: "through"}},
		{{name: "esc/x", body: "through the existing link"}},
		{{name: "f", body: "1"}, {name: "h", typ: tar.TypeLink, link: "f"}, {name: "h2", typ: tar.TypeLink, link: "../f"}},
		{{name: "dev", typ: tar.TypeChar}, {name: "fifo", typ: tar.TypeFifo}},
		{{name: "a", body: "1"}, {name: "a/b", body: "2"}},
	}
	for _, s := range seeds {
		f.Add(makeTar(f, s...), false)
	}
	f.Add([]byte("not a tar"), true)
	f.Fuzz(func(t *testing.T, tarData []byte, force bool) {
		parent := t.TempDir()
		sentinel := filepath.Join(parent, "sentinel")
		if err := os.MkdirAll(sentinel, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(sentinel, "keep"), []byte("keep"), 0o644)
		dir := filepath.Join(parent, "out")
		os.Mkdir(dir, 0o755)
		os.Symlink("../sentinel", filepath.Join(dir, "esc"))
		before := tree(t, parent)

		_, err := extractBytes(gzipBytes(tarData), dir, extractOptions{force: force})

		after := tree(t, parent)
		for p, v := range after {
			if !strings.HasPrefix(p, "out"+string(filepath.Separator)) && p != "out" && before[p] != v {
				t.Fatalf("outside DIR: %s is %q, was %q", p, v, before[p])
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok && !strings.HasPrefix(p, "out") {
				t.Fatalf("outside DIR: %s is gone", p)
			}
		}
		if err != nil {
			if !equalMaps(after, before) {
				t.Fatalf("a refused archive (%v) changed DIR: %v, was %v", err, keys(after), keys(before))
			}
			return
		}
		if l, _ := os.Readlink(filepath.Join(dir, "esc")); l != "../sentinel" && !force {
			t.Fatalf("the existing link esc was replaced without force")
		}
		// Every link the archive made points inside DIR.
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 || p == filepath.Join(dir, "esc") {
				return err
			}
			target, _ := os.Readlink(p)
			if filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(strings.TrimPrefix(p, dir+"/")), target)) {
				t.Fatalf("link %s points outside: %q", p, target)
			}
			return nil
		})
	})
}

func TestExtractRefusesSparseFiles(t *testing.T) {
	// archive/tar writes no GNU sparse records: write the PAX header as a
	// file, then make it one.
	rec := func(k, v string) string {
		line := " " + k + "=" + v + "\n"
		n := len(line)
		for len(strconv.Itoa(n))+len(line) != n {
			n = len(strconv.Itoa(n)) + len(line)
		}
		return strconv.Itoa(n) + line
	}
	pax := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") + rec("GNU.sparse.name", "sparse") + rec("GNU.sparse.realsize", "1099511627776")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "pax", Typeflag: tar.TypeReg, Size: int64(len(pax)), Mode: 0o644, Format: tar.FormatUSTAR})
	tw.Write([]byte(pax))
	tw.Flush()
	// The sparse map of format 1.0 heads the data: no entries.
	sparseMap := "0\n"
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Size: 512, Mode: 0o644, Format: tar.FormatUSTAR})
	tw.Write([]byte(sparseMap + strings.Repeat("\x00", 512-len(sparseMap))))
	tw.Close()
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))

	dir := t.TempDir()
	_, err := extractBytes(gzipBytes(b), dir, extractOptions{})
	if err == nil || !strings.Contains(err.Error(), `refused entry "sparse": a sparse file`) {
		t.Errorf("sparse entry: %v", err)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("left %v", got)
	}
}
