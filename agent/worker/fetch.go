package worker

import (
	"context"
	"fmt"
	"io"

	"github.com/containercodes/cc/internal/streamio"
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
	r := streamio.Reader(nil, func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("fetch blob: %w", err)
		}
		return m.GetData(), err
	})
	return &blobReader{Reader: r, cancel: cancel}, nil
}

type blobReader struct {
	io.Reader
	cancel context.CancelFunc
}

func (r *blobReader) Close() error {
	r.cancel()
	return nil
}
