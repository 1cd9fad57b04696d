package sitebundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

type entry struct {
	name string
	typ  byte
	body string
	link string
}

func reg(name, body string) entry { return entry{name: name, typ: tar.TypeReg, body: body} }

var mtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// tarGz makes a tar.gz of the entries, in their order.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, ModTime: mtime, Linkname: e.link}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// plainTar is the tar inside tarGz's output.
func plainTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarGz(t, entries...)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func build(t testing.TB, lim Limits, entries ...entry) ([]byte, Info, error) {
	t.Helper()
	var out bytes.Buffer
	info, err := Build(context.Background(), bytes.NewReader(tarGz(t, entries...)), &out, lim)
	return out.Bytes(), info, err
}

func randomText(n int) string {
	words := []string{"static ", "site ", "edge ", "<div class=\"x\">", "</div>\n", "container ", "codes "}
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(words[(i*7+i/3)%len(words)])
	}
	return b.String()[:n]
}

func randomBytes(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

func sampleSite() []entry {
	return []entry{
		{name: "./", typ: tar.TypeDir},
		reg("./index.html", "<!doctype html>"+randomText(4000)),
		reg("./app.js", "console.log('hi');"+randomText(1000)),
		{name: "./sub/", typ: tar.TypeDir},
		reg("./sub/page.html", "<p>small</p>"),
		reg("./logo.png", "\x89PNG\r\n\x1a\n"+randomBytes(2000)),
		reg("./noext", randomText(600)),
		reg("./random.txt", randomBytes(1000)),
		reg("./x.gz", "user file named x.gz"),
	}
}

func TestRoundTrip(t *testing.T) {
	site := sampleSite()
	bundle, info, err := build(t, Limits{}, site...)
	if err != nil {
		t.Fatal(err)
	}
	if info.Files != 7 {
		t.Errorf("Files = %d, want 7", info.Files)
	}
	dir := filepath.Join(t.TempDir(), "site")
	if err := Unpack(bytes.NewReader(bundle), dir); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var content int64
	types := map[string]string{}
	variants := map[string]int{}
	for _, e := range site {
		if e.typ != tar.TypeReg {
			continue
		}
		p := strings.TrimPrefix(e.name, "./")
		f := m.Lookup(p)
		if f == nil {
			t.Fatalf("%s not in the manifest", p)
		}
		content += f.Size
		types[p] = f.Type
		variants[p] = len(f.Variants)
		got, err := os.ReadFile(filepath.Join(dir, "files", p))
		if err != nil || string(got) != e.body {
			t.Errorf("%s: content differs (%v)", p, err)
		}
		if f.MTime != mtime.Unix() {
			t.Errorf("%s: mtime %d, want %d", p, f.MTime, mtime.Unix())
		}
		for _, v := range f.Variants {
			z, err := os.ReadFile(filepath.Join(dir, v.Name))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(z)) >= f.Size {
				t.Errorf("%s: %s variant of %d bytes is not smaller than %d", p, v.Encoding, len(z), f.Size)
			}
			if plain := decode(t, v.Encoding, z); plain != e.body {
				t.Errorf("%s: the %s variant does not decode to the file", p, v.Encoding)
			}
		}
	}
	if info.ContentBytes != content {
		t.Errorf("ContentBytes = %d, want %d", info.ContentBytes, content)
	}
	wantTypes := map[string]string{
		"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
		"logo.png": "image/png", "noext": "text/plain; charset=utf-8",
	}
	for p, want := range wantTypes {
		if types[p] != want {
			t.Errorf("type of %s = %q, want %q", p, types[p], want)
		}
	}
	wantVariants := map[string]int{"index.html": 3, "app.js": 3, "noext": 3, "sub/page.html": 0, "logo.png": 0, "random.txt": 0, "x.gz": 0}
	for p, want := range wantVariants {
		if variants[p] != want {
			t.Errorf("%s has %d variants, want %d", p, variants[p], want)
		}
	}
	if f := m.Lookup("index.html"); f.Variants[0].Name != "enc/br/index.html" {
		t.Errorf("variant name %q", f.Variants[0].Name)
	}
	// Nothing is left beside dir.
	left, _ := os.ReadDir(filepath.Dir(dir))
	if len(left) != 1 {
		t.Errorf("beside the site: %v", left)
	}
}

func decode(t *testing.T, enc string, z []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "br":
		r = brotli.NewReader(bytes.NewReader(z))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", enc, err)
	}
	return string(b)
}

func TestDeterministic(t *testing.T) {
	site := sampleSite()
	a, _, err := build(t, Limits{}, site...)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := build(t, Limits{}, site...)
	if err != nil {
		t.Fatal(err)
	}
	// The same files in another order, without directory entries.
	var shuffled []entry
	for i := len(site) - 1; i >= 0; i-- {
		if site[i].typ == tar.TypeReg {
			shuffled = append(shuffled, site[i])
		}
	}
	c, _, err := build(t, Limits{}, shuffled...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
		t.Fatal("two builds of the same site differ")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	h, err := tr.Next()
	if err != nil || h.Name != ManifestName {
		t.Fatalf("first entry %v %v, want the manifest", h, err)
	}
}

func TestRefusals(t *testing.T) {
	big := randomText(2000)
	cases := []struct {
		name    string
		lim     Limits
		entries []entry
		want    string
	}{
		{"symlink", Limits{}, []entry{{name: "a", typ: tar.TypeSymlink, link: "/etc/passwd"}}, `entry "a" is a symbolic link`},
		{"hard link", Limits{}, []entry{reg("a", "x"), {name: "b", typ: tar.TypeLink, link: "a"}}, `entry "b" is a hard link`},
		{"dotdot", Limits{}, []entry{reg("../x", "x")}, `entry "../x": ../x has a ".." component`},
		{"inner dotdot", Limits{}, []entry{reg("a/../../x", "x")}, `has a ".." component`},
		{"absolute", Limits{}, []entry{reg("/etc/x", "x")}, `entry "/etc/x": /etc/x is an absolute path`},
		{"device", Limits{}, []entry{{name: "dev", typ: tar.TypeChar}}, `entry "dev" is a device file`},
		{"fifo", Limits{}, []entry{{name: "p", typ: tar.TypeFifo}}, `entry "p" is a FIFO`},
		{"duplicate", Limits{}, []entry{reg("a", "1"), reg("./a", "2")}, `the file a is listed twice`},
		{"duplicate dir", Limits{}, []entry{{name: "d/", typ: tar.TypeDir}, {name: "d", typ: tar.TypeDir}}, `the directory d is listed twice`},
		{"file then dir", Limits{}, []entry{reg("a", "1"), reg("a/b", "2")}, `a/b is under a, which is a file`},
		{"dir then file", Limits{}, []entry{reg("a/b", "1"), reg("a", "2")}, `a is both a directory and a file`},
		{"backslash", Limits{}, []entry{reg(`a\..\b`, "x")}, `holds a backslash`},
		{"bad utf8", Limits{}, []entry{reg("a\xff", "x")}, `is not valid UTF-8`},
		{"control", Limits{}, []entry{reg("a\nb", "x")}, `holds a control character`},
		{"unclean", Limits{}, []entry{reg("a//b", "x")}, `is not a clean path`},
		{"too many bytes", Limits{MaxBytes: 3000}, []entry{reg("a", big), reg("b", big)}, `entry "b": the files are larger than their limit of 3000 bytes`},
		{"too many files", Limits{MaxFiles: 2}, []entry{reg("a", "1"), reg("b", "2"), reg("c", "3")}, `more than 2 entries`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := build(t, c.lim, c.entries...)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to say %q", err, c.want)
			}
		})
	}
	_, err := Build(context.Background(), strings.NewReader("not gzip"), io.Discard, Limits{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a gzip stream") {
		t.Errorf("not gzip: %v", err)
	}
	tgz := tarGz(t, reg("a", big))
	_, err = Build(context.Background(), bytes.NewReader(tgz[:len(tgz)/2]), io.Discard, Limits{})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("cut short: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, bytes.NewReader(tgz), io.Discard, Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// rewrite copies a bundle, changing the entries f returns false for.
func rewrite(t *testing.T, bundle []byte, f func(h *tar.Header, body []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(bundle))
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		body = f(h, body)
		if body == nil {
			continue
		}
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}

func TestUnpackRefuses(t *testing.T) {
	bundle, _, err := build(t, Limits{}, sampleSite()...)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"tampered", rewrite(t, bundle, func(h *tar.Header, b []byte) []byte {
			if h.Name == "files/sub/page.html" {
				b[0] ^= 1
			}
			return b
		}), `"files/sub/page.html" has sha256`},
		{"missing", rewrite(t, bundle, func(h *tar.Header, b []byte) []byte {
			if h.Name == "files/app.js" {
				return nil
			}
			return b
		}), `"files/app.js" is in the manifest but not in the bundle`},
		{"extra", rewrite(t, bundle, func(h *tar.Header, b []byte) []byte {
			if h.Name == "files/app.js" {
				h.Name = "files/../../evil"
			}
			return b
		}), `"files/../../evil" is not in the manifest`},
		{"no manifest", rewrite(t, bundle, func(h *tar.Header, b []byte) []byte {
			if h.Name == ManifestName {
				return nil
			}
			return b
		}), `not the manifest`},
		{"bad manifest", rewrite(t, bundle, func(h *tar.Header, b []byte) []byte {
			if h.Name == ManifestName {
				return bytes.Replace(b, []byte(`"path":"app.js"`), []byte(`"path":"../app.js"`), 1)
			}
			return b
		}), `has a ".." component`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			err := Unpack(bytes.NewReader(c.bundle), filepath.Join(parent, "site"))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, c.want)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
	dir := t.TempDir()
	if err := Unpack(bytes.NewReader(bundle), dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("unpack into an existing dir: %v", err)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(tarGz(f, sampleSite()...), false)
	f.Add(tarGz(f, reg("a/b/c.css", randomText(300)), entry{name: "l", typ: tar.TypeSymlink, link: "../x"}), false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, false)
	f.Add(plainTar(f, reg("index.html", randomText(400)), reg("x/y.svg", "<svg/>")), true)
	// gzipped: data is the tar itself, gzipped here, so that mutations
	// reach the tar parser and the checks rather than break the deflate
	// stream.
	f.Fuzz(func(t *testing.T, data []byte, gzipped bool) {
		if gzipped {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			data = buf.Bytes()
		}
		var out bytes.Buffer
		info, err := Build(context.Background(), bytes.NewReader(data), &out, Limits{MaxBytes: 1 << 20, MaxFiles: 64})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not wrapping ErrInvalid: %v", err)
			}
			return
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "site")
		if err := Unpack(bytes.NewReader(out.Bytes()), dir); err != nil {
			t.Fatalf("unpack of a built bundle: %v", err)
		}
		m, err := ReadManifest(dir)
		if err != nil || uint32(len(m.Files)) != info.Files {
			t.Fatalf("manifest: %v", err)
		}
		if left, _ := os.ReadDir(parent); len(left) != 1 {
			t.Fatalf("beside the site: %v", left)
		}
		// Every file on disk is under dir and listed.
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if rel == ManifestName {
				return nil
			}
			if !d.Type().IsRegular() {
				t.Errorf("%s is not a regular file", rel)
			}
			if strings.HasPrefix(rel, FilesPrefix) && m.Lookup(strings.TrimPrefix(rel, FilesPrefix)) == nil {
				t.Errorf("%s is not in the manifest", rel)
			}
			return nil
		})
	})
}

func BenchmarkBuildSmall(b *testing.B) {
	in := tarGz(b, reg("index.html", randomText(2000)))
	for b.Loop() {
		if _, err := Build(context.Background(), bytes.NewReader(in), io.Discard, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzBuildEntries fuzzes the entries rather than the bytes: data is read
// as records (type, name length, name, body length, body) written with
// valid tar headers, so the mutations reach the name checks, the types,
// duplicates and limits instead of failing on a tar checksum.
func FuzzBuildEntries(f *testing.F) {
	rec := func(typ byte, name, body string) []byte {
		return append(append(append([]byte{typ, byte(len(name))}, name...), byte(len(body))), body...)
	}
	f.Add(append(rec('0', "index.html", randomText(255)), rec('5', "sub/", "")...))
	f.Add(append(rec('0', "a", "1"), rec('0', "a/b", "2")...))
	f.Add(append(rec('2', "l", "../x"), rec('0', "./x.svg", "<svg/>")...))
	f.Add(append(rec('0', "../a", "1"), rec('3', "dev", "")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for len(data) >= 2 {
			typ, n := data[0], int(data[1])
			data = data[2:]
			if n > len(data) {
				break
			}
			name := string(data[:n])
			data = data[n:]
			body := ""
			if len(data) > 0 {
				m := min(int(data[0]), len(data)-1)
				body, data = string(data[1:1+m]), data[1+m:]
			}
			h := &tar.Header{Typeflag: typ, Name: name, Mode: 0o644, ModTime: mtime}
			switch typ {
			case tar.TypeReg:
				h.Size = int64(len(body))
			case tar.TypeSymlink, tar.TypeLink:
				h.Linkname = body
			}
			if tw.WriteHeader(h) != nil {
				continue
			}
			if typ == tar.TypeReg {
				tw.Write([]byte(body))
			}
		}
		tw.Close()
		zw.Close()
		var out bytes.Buffer
		_, err := Build(context.Background(), &buf, &out, Limits{MaxBytes: 4096, MaxFiles: 16})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not wrapping ErrInvalid: %v", err)
			}
			return
		}
		dir := filepath.Join(t.TempDir(), "site")
		if err := Unpack(bytes.NewReader(out.Bytes()), dir); err != nil {
			t.Fatalf("unpack of a built bundle: %v", err)
		}
	})
}
