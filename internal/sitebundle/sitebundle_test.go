package sitebundle

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func bundle(t *testing.T, hdrs ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		body := []byte(h.Name)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	tw.Close()
	return &buf
}

func TestUnpack(t *testing.T) {
	dir := t.TempDir()
	b := bundle(t, &tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "index.html", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "a/b/c.css", Typeflag: tar.TypeReg, Mode: 0o644})
	if err := Unpack(b, dir); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "a/b/c.css")); err != nil || string(got) != "a/b/c.css" {
		t.Fatalf("a/b/c.css: %q, %v", got, err)
	}
}

func TestUnpackRefuses(t *testing.T) {
	cases := map[string]*tar.Header{
		"symlink":   {Name: "x", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"hard link": {Name: "x", Typeflag: tar.TypeLink, Linkname: "index.html"},
		"dot dot":   {Name: "../x", Typeflag: tar.TypeReg, Mode: 0o644},
		"absolute":  {Name: "/x", Typeflag: tar.TypeReg, Mode: 0o644},
		"device":    {Name: "x", Typeflag: tar.TypeChar},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			if err := Unpack(bundle(t, h), filepath.Join(parent, "site")); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Lstat(filepath.Join(parent, "x")); err == nil {
				t.Fatal("wrote outside the site")
			}
		})
	}
}
