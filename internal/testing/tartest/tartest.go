// Package tartest reads a whole tar stream in tests: the entries, in order,
// with their contents, so that a test asserts on an archive in one line.
package tartest

import (
	"archive/tar"
	"errors"
	"io"
	"testing"
)

// Entry is one member of an archive.
type Entry struct {
	Header  *tar.Header
	Content []byte
}

// Read returns every entry of the tar stream r, in order, failing the test
// on a malformed stream.
func Read(t testing.TB, r io.Reader) []Entry {
	t.Helper()
	var out []Entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		out = append(out, Entry{Header: h, Content: b})
	}
}
