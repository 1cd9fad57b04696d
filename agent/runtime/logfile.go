package runtime

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/containercodes/cc/agent/runtime/internal/logger"
)

// Log files: package logger (internal) writes them and says their format;
// the runtime reads them.

const (
	logFileName = logger.FileName

	// DefaultLogMaxBytes is the size at which a log file is rotated.
	DefaultLogMaxBytes = logger.DefaultMaxBytes
	// DefaultLogMaxFiles is how many rotated files are kept beside the
	// current one.
	DefaultLogMaxFiles = logger.DefaultMaxFiles
)

// logRecord is one line of a log file.
type logRecord = logger.Record

func encodeRecord(stream string, t time.Time, data []byte) []byte {
	return logger.Encode(stream, t, data)
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
		d := recs[i].Data()
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
