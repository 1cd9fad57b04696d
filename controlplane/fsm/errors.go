package fsm

import "errors"

// kinds names the errors a command can be refused with, so that a refusal
// on the leader crosses to the follower that forwarded the write and is
// still recognised there with errors.Is.
var kinds = map[string]error{
	"not_found":           ErrNotFound,
	"exists":              ErrExists,
	"invalid":             ErrInvalid,
	"unknown_command":     ErrUnknownCommand,
	"unsupported_version": ErrUnsupportedVersion,
	"not_initialized":     ErrNotInitialized,
	"token_invalid":       ErrTokenInvalid,
	"conflict":            ErrConflict,
	"failed_precondition": ErrFailedPrecondition,
	"quota_exceeded":      ErrQuotaExceeded,
}

// ErrConflict is a write made from a stale read (an expected version that
// is not current any more); ErrFailedPrecondition a write the current
// state does not allow.
var (
	ErrConflict           = errors.New("conflict")
	ErrFailedPrecondition = errors.New("failed precondition")
)

// ErrorKind names the sentinel err wraps, or "" for any other error.
func ErrorKind(err error) string {
	for k, e := range kinds {
		if errors.Is(err, e) {
			return k
		}
	}
	return ""
}

// RemoteError is a refusal that happened on another server.
type RemoteError struct {
	Kind error // the sentinel, or nil
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap makes errors.Is see the sentinel.
func (e *RemoteError) Unwrap() error { return e.Kind }

// ErrorFromKind rebuilds an error reported by another server.
func ErrorFromKind(kind, msg string) error {
	if msg == "" {
		return nil
	}
	return &RemoteError{Kind: kinds[kind], Msg: msg}
}
