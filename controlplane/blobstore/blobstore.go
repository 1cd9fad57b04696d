// Package blobstore is a server's local content-addressed file store for
// blobs (image archives, job inputs, outputs and logs): sha256 names,
// verified on write and on read.
//
// A blob named "sha256:<hex>" lives at <dir>/sha256/<hex[:2]>/<hex>. Writes
// go to a temporary file in <dir>, are hashed while written, synced and then
// renamed into place, so a blob under its name is always complete. Reads hash
// the bytes again and fail at the end when the file was changed on disk.
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containercodes/cc/internal/streamio"
)

// Errors the store returns; test them with errors.Is.
var (
	// ErrInvalidDigest is a digest that is not "sha256:" and 64 lowercase
	// hex digits (or, for Put's expected digest, just the 64 hex digits).
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrNotFound is a blob the store does not hold.
	ErrNotFound = errors.New("blob not found")
	// ErrDigestMismatch is content whose sha256 is not the one expected: on
	// Put, bytes that differ from the caller's digest; on read, a file that
	// changed on disk.
	ErrDigestMismatch = errors.New("blob digest mismatch")
	// ErrTooLarge is a Put over its size limit.
	ErrTooLarge = errors.New("blob too large")
)

const (
	algo       = "sha256"
	prefix     = algo + ":"
	tempPrefix = ".put-"
)

// Store is a blob directory. Its methods are safe for concurrent use.
type Store struct {
	dir string
}

// New opens (creating if needed) the store in dir and removes temporary
// files a crash left behind, so a directory has one Store at a time: a
// second New over it would remove the first one's uploads in progress.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("blobstore: no directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, algo), 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("blobstore: remove stale temporary file: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// parseDigest returns the hex of "sha256:<64 lowercase hex>".
func parseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, prefix)
	if !ok || !isHex64(h) {
		return "", fmt.Errorf("%w %q: want sha256:<64 lowercase hex digits>", ErrInvalidDigest, d)
	}
	return h, nil
}

func isHex64(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *Store) path(h string) string {
	return filepath.Join(s.dir, algo, h[:2], h)
}

// Put stores what r yields. wantSHA256 is the expected digest, as 64 hex
// digits or "sha256:<hex>", or "" when unknown; maxBytes > 0 limits the size.
// It returns the blob's digest ("sha256:<hex>") and size. On any error
// nothing is stored. Putting content the store already holds succeeds.
// A canceled ctx stops Put at its next read.
func (s *Store) Put(ctx context.Context, r io.Reader, wantSHA256 string, maxBytes int64) (digest string, size int64, err error) {
	want := strings.TrimPrefix(wantSHA256, prefix)
	if wantSHA256 != "" && !isHex64(want) {
		return "", 0, fmt.Errorf("%w %q: want 64 lowercase hex digits", ErrInvalidDigest, wantSHA256)
	}
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()

	h := sha256.New()
	src := streamio.WithContext(ctx, r)
	if maxBytes > 0 {
		src = io.LimitReader(src, maxBytes+1)
	}
	size, err = io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, 256<<10))
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: write: %w", err)
	}
	if maxBytes > 0 && size > maxBytes {
		return "", 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return "", 0, fmt.Errorf("%w: the content's sha256 is %s, not the expected %s", ErrDigestMismatch, got, want)
	}
	if err = f.Sync(); err != nil {
		return "", 0, fmt.Errorf("blobstore: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		f = nil
		return "", 0, fmt.Errorf("blobstore: close: %w", err)
	}
	f = nil
	if err = ctx.Err(); err != nil {
		return "", 0, err
	}
	if err = os.Chmod(tmp, 0o400); err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	final := s.path(got)
	if err = os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	// Renaming over a blob that is already there replaces it with the same
	// bytes (and repairs it, had it been damaged); readers that have it
	// open keep reading the old file.
	if err = os.Rename(tmp, final); err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	if err = syncDir(filepath.Dir(final)); err != nil {
		return "", 0, fmt.Errorf("blobstore: %w", err)
	}
	return prefix + got, size, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open opens a blob for reading and returns its size. The reader hashes what
// it reads: at the end it returns an error wrapping ErrDigestMismatch instead
// of io.EOF when the bytes are not the blob's, or when there are more or fewer
// of them than size.
func (s *Store) Open(digest string) (io.ReadCloser, int64, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	return &verifier{f: f, h: sha256.New(), want: h, size: fi.Size()}, fi.Size(), nil
}

// verifier reads a blob file and checks its digest at EOF.
type verifier struct {
	f    *os.File
	h    hash.Hash
	want string
	size int64
	n    int64
	err  error // sticky end result
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		got := hex.EncodeToString(v.h.Sum(nil))
		switch {
		case v.n != v.size:
			err = fmt.Errorf("%w: blob sha256:%s changed while read (%d bytes, expected %d)", ErrDigestMismatch, v.want, v.n, v.size)
		case got != v.want:
			err = fmt.Errorf("%w: blob sha256:%s is damaged on disk (its content hashes to sha256:%s)", ErrDigestMismatch, v.want, got)
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// Stat returns a blob's size.
func (s *Store) Stat(digest string) (int64, error) {
	h, err := parseDigest(digest)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return 0, fmt.Errorf("blobstore: %w", err)
	}
	return fi.Size(), nil
}

// Remove deletes a blob. Readers that have it open keep reading it.
func (s *Store) Remove(digest string) error {
	h, err := parseDigest(digest)
	if err != nil {
		return err
	}
	err = os.Remove(s.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// List returns the digests of every blob, sorted. Files that are not blobs
// (wrong names or places) are skipped.
func (s *Store) List() ([]string, error) {
	root := filepath.Join(s.dir, algo)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	var out []string
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
		for _, f := range files {
			n := f.Name()
			if f.Type().IsRegular() && isHex64(n) && n[:2] == d.Name() {
				out = append(out, prefix+n)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
