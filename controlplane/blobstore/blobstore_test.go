package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// tempFiles lists what Put may leave in the store's top directory.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	s, dir := newStore(t)
	data := bytes.Repeat([]byte("container codes "), 100000)
	for _, want := range []string{"", sum(data), "sha256:" + sum(data)} {
		d, n, err := s.Put(context.Background(), bytes.NewReader(data), want, 0)
		if err != nil {
			t.Fatalf("Put(want %q): %v", want, err)
		}
		if d != "sha256:"+sum(data) || n != int64(len(data)) {
			t.Fatalf("Put = %s, %d", d, n)
		}
	}
	d := "sha256:" + sum(data)
	if _, err := os.Stat(filepath.Join(dir, "sha256", sum(data)[:2], sum(data))); err != nil {
		t.Fatalf("blob not at its path: %v", err)
	}
	rc, size, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) || size != int64(len(data)) {
		t.Fatalf("Open: %d bytes, size %d, err %v", len(got), size, err)
	}
	if n, err := s.Stat(d); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", n, err)
	}
	empty, _, err := s.Put(context.Background(), strings.NewReader(""), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	wantList := []string{d, empty}
	if empty < d {
		wantList = []string{empty, d}
	}
	if strings.Join(list, ",") != strings.Join(wantList, ",") {
		t.Fatalf("List = %v, want %v", list, wantList)
	}
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	if _, _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open removed: %v", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat removed: %v", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("temporary files left: %v", tf)
	}
}

func TestInvalidDigests(t *testing.T) {
	s, _ := newStore(t)
	good := sum([]byte("x"))
	bad := []string{
		"", good, "sha256:", "sha256:" + good[:63], "sha256:" + good + "0",
		"sha256:" + strings.ToUpper(good), "SHA256:" + good, "sha512:" + good,
		"sha256:../../../../etc/passwd", "sha256:" + good[:62] + "/x", " sha256:" + good,
	}
	for _, d := range bad {
		if _, _, err := s.Open(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Open(%q): %v", d, err)
		}
		if _, err := s.Stat(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Stat(%q): %v", d, err)
		}
		if err := s.Remove(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Remove(%q): %v", d, err)
		}
	}
	for _, w := range []string{"x", good[:63], strings.ToUpper(good), "sha512:" + good, "sha256:"} {
		if _, _, err := s.Put(context.Background(), strings.NewReader("x"), w, 0); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Put(want %q): %v", w, err)
		}
	}
}

func TestWrongDigestRefused(t *testing.T) {
	s, dir := newStore(t)
	data := []byte("the real content")
	other := sum([]byte("something else"))
	_, _, err := s.Put(context.Background(), bytes.NewReader(data), other, 0)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Put with a wrong digest: %v", err)
	}
	for _, d := range []string{other, sum(data)} {
		if _, err := s.Stat("sha256:" + d); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a refused Put, Stat(%s) = %v", d, err)
		}
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("List = %v", l)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("temporary files left: %v", tf)
	}
}

func TestSizeLimit(t *testing.T) {
	s, dir := newStore(t)
	data := bytes.Repeat([]byte{7}, 1000)
	if _, n, err := s.Put(context.Background(), bytes.NewReader(data), "", 1000); err != nil || n != 1000 {
		t.Fatalf("Put at the limit: %d, %v", n, err)
	}
	data = append(data, 8)
	if _, _, err := s.Put(context.Background(), bytes.NewReader(data), "", 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put over the limit: %v", err)
	}
	if _, err := s.Stat("sha256:" + sum(data)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oversized blob stored: %v", err)
	}
	// An endless reader stops at the limit.
	if _, _, err := s.Put(context.Background(), endless{}, "", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put of an endless reader: %v", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("temporary files left: %v", tf)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestCorruptionDetectedOnRead(t *testing.T) {
	s, dir := newStore(t)
	data := bytes.Repeat([]byte("abcdefgh"), 10000)
	d, _, err := s.Put(context.Background(), bytes.NewReader(data), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sha256", sum(data)[:2], sum(data))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 1
	if err := os.WriteFile(p, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading a damaged blob: %d bytes, err %v", len(got), err)
	}

	// A truncated file fails too.
	if err := os.WriteFile(p, data[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err = s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading a truncated blob: %v", err)
	}
	rc.Close()

	// Putting the content again repairs the blob.
	if _, _, err := s.Put(context.Background(), bytes.NewReader(data), sum(data), 0); err != nil {
		t.Fatal(err)
	}
	rc, _, err = s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %v", err)
	}
	rc.Close()
}

func TestConcurrentPutOfSameContent(t *testing.T) {
	s, dir := newStore(t)
	data := bytes.Repeat([]byte("same bytes "), 50000)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	digests := make([]string, n)
	for i := range n {
		wg.Go(func() {
			digests[i], _, errs[i] = s.Put(context.Background(), smallPieces(data), sum(data), 0)
		})
	}
	// Readers race with the writers; every read they complete is intact.
	for range 4 {
		wg.Go(func() {
			for range 50 {
				rc, _, err := s.Open("sha256:" + sum(data))
				if err != nil {
					continue
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("concurrent read: %d bytes, %v", len(got), err)
				}
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || digests[i] != "sha256:"+sum(data) {
			t.Fatalf("Put %d: %s, %v", i, digests[i], errs[i])
		}
	}
	if l, _ := s.List(); len(l) != 1 {
		t.Fatalf("List = %v", l)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("temporary files left: %v", tf)
	}
}

// smallPieces reads data in small pieces so that concurrent Puts interleave.
func smallPieces(data []byte) io.Reader {
	return &smallReader{b: data}
}

type smallReader struct{ b []byte }

func (r *smallReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4096)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestTempFilesCleaned(t *testing.T) {
	s, dir := newStore(t)
	// A reader that fails half way.
	r := io.MultiReader(strings.NewReader("partial"), errReader{})
	if _, _, err := s.Put(context.Background(), r, "", 0); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Put of a failing reader: %v", err)
	}
	// A canceled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Put(ctx, strings.NewReader("data"), "", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v", err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("temporary files left: %v", tf)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("List = %v", l)
	}
	// What a crash leaves behind is removed when the store is opened.
	if err := os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if tf := tempFiles(t, dir); len(tf) != 0 {
		t.Fatalf("stale temporary files kept: %v", tf)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestListSkipsStrangers(t *testing.T) {
	s, dir := newStore(t)
	d, _, err := s.Put(context.Background(), strings.NewReader("x"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := strings.TrimPrefix(d, "sha256:")
	// Misplaced, misnamed and non-regular entries are not blobs.
	os.WriteFile(filepath.Join(dir, "sha256", h[:2], "notes.txt"), nil, 0o600)
	os.MkdirAll(filepath.Join(dir, "sha256", "zz"), 0o700)
	os.WriteFile(filepath.Join(dir, "sha256", "zz", h), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "sha256", h[:2], strings.Repeat("a", 64)), 0o700)
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0] != d {
		t.Fatalf("List = %v, %v", l, err)
	}
}
