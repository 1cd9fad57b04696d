package logger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"
)

// Log files.
//
// A container's output lives in <StateDir>/logs/<container-id>/: the current
// file "output.log" and up to max-files rotated ones, "output.log.1" (newest)
// to "output.log.<max-files>" (oldest). A file is rotated before a record
// would take it past max-bytes (a record larger than max-bytes gets a file
// of its own).
//
// Each file is JSON lines, one record per read from the container's stdout
// or stderr pipe, in the order the logger received them:
//
//	{"t":"2025-01-02T03:04:05.123456789Z","s":"stdout","d":"hello\n"}
//	{"t":"2025-01-02T03:04:05.2Z","s":"stderr","b":"/w=="}
//
// t is the time the piece was read (RFC 3339, UTC), s the stream ("stdout"
// or "stderr"), and the data is in d as text when it is valid UTF-8, else in
// b as base64.

const (
	// FileName is the current log file; rotated ones add ".1", ".2", ...
	FileName = "output.log"

	// DefaultMaxBytes is the size at which a log file is rotated.
	DefaultMaxBytes = 10 << 20
	// DefaultMaxFiles is how many rotated files are kept beside the
	// current one.
	DefaultMaxFiles = 3
)

// Record is one line of a log file.
type Record struct {
	Time   time.Time `json:"t"`
	Stream string    `json:"s"`
	Text   string    `json:"d,omitempty"`
	Bin    []byte    `json:"b,omitempty"`
}

// Data is the piece of output the record holds.
func (r *Record) Data() []byte {
	if r.Bin != nil {
		return r.Bin
	}
	return []byte(r.Text)
}

// Encode makes the line of a record (with its newline).
func Encode(stream string, t time.Time, data []byte) []byte {
	rec := Record{Time: t.UTC(), Stream: stream}
	if utf8.Valid(data) {
		rec.Text = string(data)
	} else {
		rec.Bin = data
	}
	b, _ := json.Marshal(&rec) // cannot fail: plain fields
	return append(b, '\n')
}

// Writer appends records to a container's log directory with size-based
// rotation. It is safe for one goroutine at a time; the logger serializes
// the two streams through it.
type Writer struct {
	dir      string
	maxBytes int64
	maxFiles int
	// Now is the clock of the records; time.Now by default.
	Now func() time.Time

	f    *os.File
	size int64
}

// NewWriter opens the log of dir for appending.
func NewWriter(dir string, maxBytes int64, maxFiles int) (*Writer, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxFiles < 0 {
		maxFiles = 0
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	w := &Writer{dir: dir, maxBytes: maxBytes, maxFiles: maxFiles, Now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) path(n int) string {
	if n == 0 {
		return filepath.Join(w.dir, FileName)
	}
	return filepath.Join(w.dir, FileName+"."+strconv.Itoa(n))
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path(0), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log file: %w", err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write appends one record for data read from stream.
func (w *Writer) Write(stream string, data []byte) error {
	rec := Encode(stream, w.Now(), data)
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	if w.size > 0 && w.size+int64(len(rec)) > w.maxBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(rec)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log file: %w", err)
	}
	return nil
}

func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close log file: %w", err)
	}
	w.f = nil
	if w.maxFiles == 0 {
		if err := os.Remove(w.path(0)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
		return w.open()
	}
	if err := os.Remove(w.path(w.maxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate log file: %w", err)
	}
	for n := w.maxFiles - 1; n >= 0; n-- {
		if err := os.Rename(w.path(n), w.path(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	return w.open()
}

// Close closes the current file.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
