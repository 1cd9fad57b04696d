// Package streamio reads a stream of byte chunks (a gRPC stream of blob
// pieces) as an io.Reader, without a goroutine or a pipe, and bounds reads
// by a context.
package streamio

import (
	"context"
	"errors"
	"io"
)

// Reader reads the chunks recv returns until it returns io.EOF. first, if
// not empty, is read before any call to recv.
func Reader(first []byte, recv func() ([]byte, error)) io.Reader {
	return &reader{buf: first, recv: recv}
}

type reader struct {
	buf  []byte
	recv func() ([]byte, error)
	err  error
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := r.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			r.err = err
			continue
		}
		r.buf = chunk
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// WithContext returns a reader of r that fails its reads once ctx is done,
// so that a long copy stops when its caller goes away.
func WithContext(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Recorder passes reads through and keeps the first error of the reader
// beneath other than io.EOF, so that a parser's failure on damaged input
// can be told from the source's own trouble (a broken connection, a full
// disk): the first is the sender's to fix, the second may be retried.
type Recorder struct {
	R   io.Reader
	Err error
}

func (s *Recorder) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF && s.Err == nil {
		s.Err = err
	}
	return n, err
}
