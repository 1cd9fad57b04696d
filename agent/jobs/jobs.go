// Package jobs holds the pure file work of job attempts on an agent: packing
// a finished attempt's /output directory into a tar.gz (Pack) and unpacking
// a job's input tar.gz into a directory (Unpack). It knows nothing of
// containerd or of where the runtime keeps things; agent/runtime calls it
// with the paths.
//
// Both sides treat the data as hostile: the output was written by the job,
// the input by whoever submitted it. Neither follows a symlink, neither
// lets a name leave its root, and both enforce limits on bytes and entries.
// A refusal caused by the data itself (a device file, a limit, an unsafe
// name) is a *RefusedError, whose message is meant for the job's owner; any
// other error is the agent's own trouble (I/O) and may be retried.
package jobs

import (
	"errors"
	"fmt"

	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Limits bound what Pack collects. Zero fields take the defaults
// (jobspec.DefaultOutputLimitBytes, jobspec.DefaultMaxOutputFiles).
type Limits struct {
	// MaxBytes caps the total content of the regular files (a file with
	// several hard links counts once).
	MaxBytes int64
	// MaxFiles caps the entries: regular files, directories, symlinks and
	// hard links, not counting the root itself.
	MaxFiles uint32
}

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = jobspec.DefaultOutputLimitBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = jobspec.DefaultMaxOutputFiles
	}
	return l
}

// LimitsFor returns the output limits of a sandbox spec (defaults for zero
// fields or a nil spec).
func LimitsFor(sb *ccv1.JobSandbox) Limits {
	return Limits{MaxBytes: sb.GetOutputLimitBytes(), MaxFiles: sb.GetMaxOutputFiles()}.WithDefaults()
}

// Packed describes an archive written to a file.
type Packed struct {
	// Path is the archive's file.
	Path string
	// SHA256 is the digest of the file, "sha256:<hex>".
	SHA256 string
	// Size is the file's size in bytes.
	Size int64
	// Files is the number of entries in an output archive (0 for logs).
	Files uint32
}

// RefusedError is a refusal caused by the job's data (its output or its
// input), not by the agent: the attempt fails with Msg, and trying again
// gives the same answer.
type RefusedError struct {
	Msg string
}

func (e *RefusedError) Error() string { return e.Msg }

func refused(format string, args ...any) error {
	return &RefusedError{Msg: fmt.Sprintf(format, args...)}
}

// IsRefused reports whether err (or an error it wraps) is a *RefusedError.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}
