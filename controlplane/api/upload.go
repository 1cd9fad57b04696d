package api

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/streamio"
)

// invalidArg is the caller's mistake, as an InvalidArgument status.
func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// uploadHeader receives the first message of an upload stream, which must
// carry its header.
func uploadHeader[M interface{ GetHeader() H }, H comparable](recv func() (M, error)) (H, error) {
	var none H
	first, err := recv()
	if errors.Is(err, io.EOF) {
		return none, invalidArg("an upload starts with a header message")
	}
	if err != nil {
		return none, err
	}
	hdr := first.GetHeader()
	if hdr == none {
		return none, invalidArg("the first message of an upload must be its header")
	}
	return hdr, nil
}

// uploadBody reads the chunks that follow an upload's header as a stream
// of bytes; a second header is an error.
func uploadBody[M interface {
	GetHeader() H
	GetChunk() []byte
}, H comparable](recv func() (M, error)) io.Reader {
	var none H
	return streamio.Reader(nil, func() ([]byte, error) {
		m, err := recv()
		if err != nil {
			return nil, err
		}
		if m.GetHeader() != none {
			return nil, invalidArg("a second header in one upload")
		}
		return m.GetChunk(), nil
	})
}

// prepareTempDir makes dir (the server's tmp/, where uploads and
// extractions are spooled) and removes what a previous run left there
// under pattern. An empty dir means the system's, left alone.
func prepareTempDir(dir, pattern string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, p := range stale {
		os.Remove(p)
	}
	return nil
}
