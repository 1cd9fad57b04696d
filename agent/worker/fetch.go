package worker

import (
	"context"
	"errors"
	"fmt"
	"io"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// fetchBlob opens a blob on the control plane as a stream.
func (w *Worker) fetchBlob(ctx context.Context, digest string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := w.client.FetchBlob(ctx, &ccv1.FetchBlobRequest{Digest: digest})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fetch %s: %w", digest, err)
	}
	return &blobReader{stream: stream, cancel: cancel}, nil
}

type blobReader struct {
	stream ccv1.AgentService_FetchBlobClient
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		m, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			r.err = io.EOF
			continue
		}
		if err != nil {
			r.err = fmt.Errorf("fetch blob: %w", err)
			continue
		}
		r.buf = m.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *blobReader) Close() error {
	r.cancel()
	return nil
}
