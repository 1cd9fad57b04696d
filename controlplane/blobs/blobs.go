// Package blobs keeps the blobs of the cluster (image archives, job inputs,
// outputs and logs) on a majority of the servers. Blobs never go through
// raft: a Store writes to this server's blobstore.Store, copies what it
// stores to the other servers before it answers, fetches a blob this server
// lacks from them, and a GC removes the blobs no record refers to.
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/metrics"
)

// Peers copies blobs between servers.
type Peers interface {
	// Push copies a local blob to the other servers and says how many
	// servers hold it now, this one included, and how many voters there are.
	Push(ctx context.Context, digest string) (have, voters int, err error)
	// Pull fetches a blob from another server into the local store.
	Pull(ctx context.Context, digest string) error
}

// Store is the replicated blob store: the local store and the other
// servers behind it.
type Store struct {
	local   *blobstore.Store
	peers   Peers // nil on a lone server
	log     *slog.Logger
	metrics *metrics.Metrics
}

// WithMetrics makes the store count and time its copies to and fetches
// from the other servers.
func (s *Store) WithMetrics(m *metrics.Metrics) *Store {
	s.metrics = m
	return s
}

// New returns the replicated store over this server's blob store. peers
// may be nil (a lone server: every blob is on all the servers there are).
func New(local *blobstore.Store, peers Peers, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{local: local, peers: peers, log: log}
}

// Local is this server's own store: what is written there is not copied.
func (s *Store) Local() *blobstore.Store { return s.local }

// Upload describes bytes to store with StoreReplicated.
type Upload struct {
	// What names the bytes in errors: "the input", "the output".
	What string
	// Size, when positive, is the exact size the sender announced.
	Size int64
	// SHA256 ("<hex>" or "sha256:<hex>"), when set, is checked.
	SHA256 string
	// Limit is the most bytes accepted.
	Limit int64
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// StoreReplicated stores what r yields in the local store, checking the
// size and digest u announces, then copies it to the other servers. It
// returns only once a majority of the voters hold it: before, a blob could
// be lost with a minority of servers, since blobs never go through raft.
// The sender's mistakes are InvalidArgument statuses; too few servers
// reached is Unavailable (the blob stays here: sending it again is cheap).
func (s *Store) StoreReplicated(ctx context.Context, r io.Reader, u Upload) (digest string, size int64, have, voters int, err error) {
	switch {
	case u.Size < 0:
		return "", 0, 0, 0, invalidArg("header: size %d is negative", u.Size)
	case u.Size > u.Limit:
		return "", 0, 0, 0, invalidArg("%s is %d bytes, more than the limit of %d", u.What, u.Size, u.Limit)
	case u.SHA256 != "" && !IsHex64(strings.TrimPrefix(u.SHA256, "sha256:")):
		return "", 0, 0, 0, invalidArg("header: sha256 %q is not 64 lowercase hex digits (with or without sha256:)", u.SHA256)
	}
	limit := u.Limit
	if u.Size > 0 {
		limit = u.Size
	}
	digest, size, err = s.local.Put(ctx, r, u.SHA256, limit)
	var streamErr interface{ GRPCStatus() *status.Status }
	switch {
	case err == nil:
	case errors.As(err, &streamErr):
		return "", 0, 0, 0, streamErr.GRPCStatus().Err() // the stream's own error
	case errors.Is(err, blobstore.ErrDigestMismatch):
		return "", 0, 0, 0, invalidArg("%s does not match the header's sha256: %v", u.What, err)
	case errors.Is(err, blobstore.ErrTooLarge) && u.Size > 0:
		return "", 0, 0, 0, invalidArg("the upload is longer than the %d bytes its header gave", u.Size)
	case errors.Is(err, blobstore.ErrTooLarge):
		return "", 0, 0, 0, invalidArg("%s is larger than the limit of %d bytes", u.What, u.Limit)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "", 0, 0, 0, err
	default:
		return "", 0, 0, 0, fmt.Errorf("store %s: %w", u.What, err)
	}
	if u.Size > 0 && size != u.Size {
		return "", 0, 0, 0, invalidArg("the upload ended after %d bytes; its header gave %d", size, u.Size)
	}
	have, voters, err = s.Replicate(ctx, digest, u.What, "send it again when the servers are back")
	if err != nil {
		return "", 0, have, voters, err
	}
	return digest, size, have, voters, nil
}

// Replicate copies a locally stored blob to the other servers and fails
// with Unavailable unless a majority of the voters hold it then. what
// names the blob in the error, retry says what to do about it.
func (s *Store) Replicate(ctx context.Context, digest, what, retry string) (have, voters int, err error) {
	if s.peers == nil {
		return 1, 1, nil
	}
	start := time.Now()
	have, voters, perr := s.peers.Push(ctx, digest)
	s.metrics.BlobReplicated(have >= voters/2+1, time.Since(start))
	if have < voters/2+1 {
		return have, voters, status.Errorf(codes.Unavailable, "%s reached %d of %d servers, not a majority (%v); %s", what, have, voters, perr, retry)
	}
	return have, voters, nil
}

// Open opens a stored blob, fetching it from the other servers first when
// this one lacks it (it was away when the blob was stored). The reader
// verifies the bytes as they are read. A blob no server has is
// blobstore.ErrNotFound.
func (s *Store) Open(digest string) (io.ReadCloser, int64, error) {
	rc, size, err := s.local.Open(digest)
	if errors.Is(err, blobstore.ErrNotFound) && s.peers != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		perr := s.peers.Pull(ctx, digest)
		cancel()
		s.metrics.BlobFetched(perr == nil)
		if perr == nil {
			rc, size, err = s.local.Open(digest)
		} else {
			s.log.Warn("cannot fetch a blob from the other servers", "digest", digest, "err", perr)
		}
	}
	return rc, size, err
}

// Has says whether a blob is stored here, fetching it from the other
// servers when this one lacks it. A blob no server has is
// blobstore.ErrNotFound.
func (s *Store) Has(ctx context.Context, digest string) error {
	_, err := s.local.Stat(digest)
	if errors.Is(err, blobstore.ErrNotFound) && s.peers != nil {
		perr := s.peers.Pull(ctx, digest)
		s.metrics.BlobFetched(perr == nil)
		if perr == nil {
			_, err = s.local.Stat(digest)
		}
	}
	return err
}

// IsHex says whether h is only lowercase hex digits.
func IsHex(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IsHex64 says whether h is the hex of a sha256 digest (without "sha256:").
func IsHex64(h string) bool { return len(h) == 64 && IsHex(h) }
