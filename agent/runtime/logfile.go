package runtime

import (
	"bufio"
	"bytes"
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
	logFileName = "output.log"

	// DefaultLogMaxBytes is the size at which a log file is rotated.
	DefaultLogMaxBytes = 10 << 20
	// DefaultLogMaxFiles is how many rotated files are kept beside the
	// current one.
	DefaultLogMaxFiles = 3
)

// logRecord is one line of a log file.
type logRecord struct {
	Time   time.Time `json:"t"`
	Stream string    `json:"s"`
	Text   string    `json:"d,omitempty"`
	Bin    []byte    `json:"b,omitempty"`
}

func (r *logRecord) data() []byte {
	if r.Bin != nil {
		return r.Bin
	}
	return []byte(r.Text)
}

func encodeRecord(stream string, t time.Time, data []byte) []byte {
	rec := logRecord{Time: t.UTC(), Stream: stream}
	if utf8.Valid(data) {
		rec.Text = string(data)
	} else {
		rec.Bin = data
	}
	b, _ := json.Marshal(&rec) // cannot fail: plain fields
	return append(b, '\n')
}

// logWriter appends records to a container's log directory with size-based
// rotation. It is safe for one goroutine at a time; the logger serializes
// the two streams through it.
type logWriter struct {
	dir      string
	maxBytes int64
	maxFiles int
	now      func() time.Time

	f    *os.File
	size int64
}

func newLogWriter(dir string, maxBytes int64, maxFiles int) (*logWriter, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultLogMaxBytes
	}
	if maxFiles < 0 {
		maxFiles = 0
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	w := &logWriter{dir: dir, maxBytes: maxBytes, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) path(n int) string {
	if n == 0 {
		return filepath.Join(w.dir, logFileName)
	}
	return filepath.Join(w.dir, logFileName+"."+strconv.Itoa(n))
}

func (w *logWriter) open() error {
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
func (w *logWriter) Write(stream string, data []byte) error {
	rec := encodeRecord(stream, w.now(), data)
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

func (w *logWriter) rotate() error {
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

func (w *logWriter) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// logFiles returns the log files of dir, oldest first.
func logFiles(dir string) []string {
	var rotated []int
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if len(name) > len(logFileName)+1 && name[:len(logFileName)+1] == logFileName+"." {
			if n, err := strconv.Atoi(name[len(logFileName)+1:]); err == nil && n > 0 {
				rotated = append(rotated, n)
			}
		}
	}
	// Highest number is oldest.
	for i := 1; i < len(rotated); i++ {
		for j := i; j > 0 && rotated[j] > rotated[j-1]; j-- {
			rotated[j], rotated[j-1] = rotated[j-1], rotated[j]
		}
	}
	var out []string
	for _, n := range rotated {
		out = append(out, filepath.Join(dir, logFileName+"."+strconv.Itoa(n)))
	}
	return append(out, filepath.Join(dir, logFileName))
}

// recordReader reads complete records from a log file that may still grow.
type recordReader struct {
	f       *os.File
	br      *bufio.Reader
	partial []byte
}

func newRecordReader(f *os.File) *recordReader {
	return &recordReader{f: f, br: bufio.NewReaderSize(f, 64<<10)}
}

// next returns the next complete record, or io.EOF when none is complete
// yet (a half-written line is kept for the next call).
func (r *recordReader) next() (*logRecord, error) {
	for {
		line, err := r.br.ReadBytes('\n')
		if len(line) > 0 {
			r.partial = append(r.partial, line...)
		}
		if err != nil {
			return nil, err
		}
		full := r.partial
		r.partial = nil
		full = bytes.TrimSpace(full)
		if len(full) == 0 {
			continue
		}
		var rec logRecord
		if jerr := json.Unmarshal(full, &rec); jerr != nil {
			continue // a damaged line: skip it
		}
		return &rec, nil
	}
}

// readAllRecords reads every complete record of the files, in order.
func readAllRecords(files []string) ([]*logRecord, error) {
	var out []*logRecord
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		rr := newRecordReader(f)
		for {
			rec, err := rr.next()
			if err != nil {
				break
			}
			out = append(out, rec)
		}
		f.Close()
	}
	return out, nil
}

// tailRecords keeps the last n lines of recs (all when n <= 0): it drops
// whole records before them and cuts the first kept record at a line start.
// Lines are counted over the interleaved output; a last line without a
// newline counts as a line.
func tailRecords(recs []*logRecord, n int64) []*logRecord {
	if n <= 0 || len(recs) == 0 {
		return recs
	}
	skipTrailing := true
	var count int64
	for i := len(recs) - 1; i >= 0; i-- {
		d := recs[i].data()
		for j := len(d) - 1; j >= 0; j-- {
			if d[j] != '\n' {
				skipTrailing = false
				continue
			}
			if skipTrailing {
				skipTrailing = false
				continue
			}
			count++
			if count == n {
				out := make([]*logRecord, 0, len(recs)-i)
				if j+1 < len(d) {
					first := *recs[i]
					first.Text, first.Bin = "", nil
					rest := append([]byte(nil), d[j+1:]...)
					if utf8.Valid(rest) {
						first.Text = string(rest)
					} else {
						first.Bin = rest
					}
					out = append(out, &first)
				}
				return append(out, recs[i+1:]...)
			}
		}
	}
	return recs
}
