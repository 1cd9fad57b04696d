package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/imagearchive"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultMaxImageSize is the largest image archive LoadImage accepts unless
// ImageService.MaxImageSize says otherwise.
const DefaultMaxImageSize int64 = 8 << 30

// minDigestPrefix is how many hex digits of a digest name an image.
const minDigestPrefix = 12

// ImageService implements cc.v1.ImageService: archives go to the
// replicated blob store, their digests and names through raft.
type ImageService struct {
	ccv1.UnimplementedImageServiceServer

	// MaxImageSize is the largest archive LoadImage accepts, in bytes;
	// NewImageService sets DefaultMaxImageSize.
	MaxImageSize int64

	core  *Core
	blobs *blobs.Store
	log   *slog.Logger

	// mu orders writing image records against removing blobs, so that no
	// record is written for a blob being removed and no blob is removed
	// that a record or a load in progress holds.
	mu       sync.Mutex
	inflight map[string]int // digest → loads between storing the blob and writing the record
}

// NewImageService returns the image API over the core and the replicated
// blob store (which waits, when an archive is loaded, until it is on a
// majority of the servers).
func NewImageService(core *Core, store *blobs.Store, log *slog.Logger) *ImageService {
	if log == nil {
		log = core.Log
	}
	return &ImageService{
		MaxImageSize: DefaultMaxImageSize,
		core:         core,
		blobs:        store,
		log:          log,
		inflight:     map[string]int{},
	}
}

// Register adds the service to a gRPC server.
func (s *ImageService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterImageServiceServer(g, s)
}

// errInspectStopped ends the blob store's read when the archive is refused.
var errInspectStopped = errors.New("the archive was refused")

type putResult struct {
	digest string
	size   int64
	err    error
}

type inspectResult struct {
	info *imagearchive.Info
	err  error
}

// LoadImage implements ImageService. The bytes stream through a pipe into
// the blob store and, teed, into the archive inspector; neither holds the
// archive in memory.
func (s *ImageService) LoadImage(stream ccv1.ImageService_LoadImageServer) error {
	if err := s.core.Disk.Check(); err != nil {
		return err
	}
	hdr, err := uploadHeader[*ccv1.LoadImageRequest, *ccv1.LoadImageHeader](stream.Recv)
	if err != nil {
		return err
	}
	maxSize := s.MaxImageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxImageSize
	}
	switch {
	case hdr.Size < 0:
		return invalidArg("header: size %d is negative", hdr.Size)
	case hdr.Size > maxSize:
		return invalidArg("the archive is %d bytes, more than this server's limit of %d", hdr.Size, maxSize)
	case hdr.Sha256 != "" && !blobs.IsHex64(strings.TrimPrefix(hdr.Sha256, "sha256:")):
		return invalidArg("header: sha256 %q is not 64 lowercase hex digits", hdr.Sha256)
	}
	limit := maxSize
	if hdr.Size > 0 {
		limit = hdr.Size
	}

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	upR, upW := io.Pipe() // received chunks → blob store
	inR, inW := io.Pipe() // what the blob store reads → inspector

	inspected := make(chan inspectResult, 1)
	go func() {
		info, err := imagearchive.Inspect(inR)
		if err != nil {
			inR.CloseWithError(errInspectStopped)
		} else {
			// What follows the tar end marker (padding) still goes to
			// the blob store.
			_, _ = io.Copy(io.Discard, inR)
		}
		inspected <- inspectResult{info, err}
	}()
	stored := make(chan putResult, 1)
	go func() {
		d, n, err := s.blobs.Local().Put(ctx, io.TeeReader(upR, inW), hdr.Sha256, limit)
		if err != nil {
			inW.CloseWithError(err)
			upR.CloseWithError(err)
		} else {
			inW.Close()
			upR.Close()
		}
		stored <- putResult{d, n, err}
	}()

	var recvErr error
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			upW.Close()
			break
		}
		if err == nil && msg.GetHeader() != nil {
			err = invalidArg("a second header in one upload")
		}
		if err != nil {
			recvErr = err
			upW.CloseWithError(err)
			break
		}
		if _, err := upW.Write(msg.GetChunk()); err != nil {
			break // the blob store stopped reading; its result says why
		}
	}
	put, insp := <-stored, <-inspected

	if recvErr != nil {
		return recvErr
	}
	if put.err != nil && !errors.Is(put.err, errInspectStopped) {
		switch {
		case errors.Is(put.err, blobstore.ErrDigestMismatch):
			return invalidArg("the archive does not match the header's sha256: %v", put.err)
		case errors.Is(put.err, blobstore.ErrTooLarge) && hdr.Size > 0:
			return invalidArg("the upload is longer than the %d bytes its header gave", hdr.Size)
		case errors.Is(put.err, blobstore.ErrTooLarge):
			return invalidArg("the archive is larger than this server's limit of %d bytes", maxSize)
		case errors.Is(put.err, context.Canceled), errors.Is(put.err, context.DeadlineExceeded):
			return put.err
		}
		return fmt.Errorf("store the archive: %w", put.err)
	}
	if put.err == nil {
		s.claim(put.digest)
	}
	if insp.err != nil {
		if put.err == nil {
			s.release(put.digest, true)
		}
		if errors.Is(insp.err, imagearchive.ErrInvalidArchive) {
			return invalidArg("%v", insp.err)
		}
		return fmt.Errorf("read the archive: %w", insp.err)
	}
	if put.err != nil {
		return fmt.Errorf("store the archive: %w", put.err)
	}
	if hdr.Size > 0 && put.size != hdr.Size {
		s.release(put.digest, true)
		return invalidArg("the upload ended after %d bytes; its header gave %d", put.size, hdr.Size)
	}
	if len(insp.info.Names) == 0 {
		s.release(put.digest, true)
		return invalidArg("the archive names no image; tag it (docker save NAME / set an image name annotation)")
	}

	// Blobs never go through raft, so the archive is copied to the other
	// servers before the image is recorded: losing any minority of servers
	// must not lose it.
	if _, _, err := s.blobs.Replicate(ctx, put.digest, "the archive", "load it again when the servers are back"); err != nil {
		s.release(put.digest, true)
		return err
	}
	img, err := s.record(ctx, &ccv1.Image{Digest: put.digest, Names: insp.info.Names, Size: put.size})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "image loaded", "digest", img.Digest, "names", img.Names, "size", img.Size, "format", insp.info.Format)
	return stream.SendAndClose(&ccv1.LoadImageResponse{Image: img})
}

// claim marks a stored blob as held by a load in progress.
func (s *ImageService) claim(digest string) {
	s.mu.Lock()
	s.inflight[digest]++
	s.mu.Unlock()
}

// release ends a load's claim; with drop, the blob is removed unless an
// image record or another load holds it.
func (s *ImageService) release(digest string, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(digest)
	if drop {
		s.dropLocked(digest)
	}
}

func (s *ImageService) releaseLocked(digest string) {
	if s.inflight[digest]--; s.inflight[digest] <= 0 {
		delete(s.inflight, digest)
	}
}

// dropLocked removes a blob that no image record and no load holds.
func (s *ImageService) dropLocked(digest string) {
	if s.inflight[digest] > 0 {
		return
	}
	if _, err := s.image(digest); !errors.Is(err, fsm.ErrNotFound) {
		return // held by a record, or unknown: keep it
	}
	if err := s.blobs.Local().Remove(digest); err != nil && !errors.Is(err, blobstore.ErrNotFound) {
		s.log.Warn("remove image blob", "digest", digest, "err", err)
	}
}

// record writes the image record of a stored, claimed blob and releases
// the claim.
func (s *ImageService) record(ctx context.Context, img *ccv1.Image) (*ccv1.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.releaseLocked(img.Digest)
	if _, err := s.blobs.Local().Stat(img.Digest); err != nil {
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, status.Error(codes.Aborted, "the image was removed while it loaded; load it again")
		}
		return nil, err
	}
	// A failed proposal may still have been committed, so the blob stays.
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_IMAGE, &statev1.PutImage{Image: img}); err != nil {
		return nil, err
	}
	return s.image(img.Digest)
}

// image returns the record with that digest.
func (s *ImageService) image(digest string) (*ccv1.Image, error) {
	imgs, err := s.core.FSM.Images()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if img.Digest == digest {
			return img, nil
		}
	}
	return nil, fmt.Errorf("image %s: %w", digest, fsm.ErrNotFound)
}

// ListImages implements ImageService: sorted by first name, images without
// names last (by digest).
func (s *ImageService) ListImages(ctx context.Context, _ *ccv1.ListImagesRequest) (*ccv1.ListImagesResponse, error) {
	imgs, err := s.core.FSM.Images()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(imgs, func(i, j int) bool {
		a, b := imgs[i], imgs[j]
		if (len(a.Names) == 0) != (len(b.Names) == 0) {
			return len(a.Names) > 0
		}
		if len(a.Names) > 0 && a.Names[0] != b.Names[0] {
			return a.Names[0] < b.Names[0]
		}
		return a.Digest < b.Digest
	})
	return &ccv1.ListImagesResponse{Images: imgs}, nil
}

// RemoveImage implements ImageService. The image is named by its digest
// ("sha256:<hex>", or at least 12 leading hex digits, with or without
// "sha256:") or by any of its names; the record goes with all its names.
func (s *ImageService) RemoveImage(ctx context.Context, req *ccv1.RemoveImageRequest) (*ccv1.RemoveImageResponse, error) {
	if req.GetImage() == "" {
		return nil, invalidArg("image: required, a name or a digest (see `ccctl image ls`)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.find(req.GetImage())
	if err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_IMAGE, &statev1.RemoveImage{Digest: img.Digest}); err != nil {
		return nil, err
	}
	s.dropLocked(img.Digest)
	s.log.Info("image removed", "digest", img.Digest, "names", img.Names)
	return &ccv1.RemoveImageResponse{}, nil
}

// find looks an image up by digest, digest prefix or name.
func (s *ImageService) find(ref string) (*ccv1.Image, error) {
	imgs, err := s.core.FSM.Images()
	if err != nil {
		return nil, err
	}
	hex, prefixed := strings.CutPrefix(ref, "sha256:")
	if prefixed || (len(hex) >= minDigestPrefix && len(hex) <= 64 && blobs.IsHex(hex)) {
		if len(hex) < minDigestPrefix || len(hex) > 64 || !blobs.IsHex(hex) {
			return nil, invalidArg("digest %q: give sha256: and at least %d of its lowercase hex digits", ref, minDigestPrefix)
		}
		var found []*ccv1.Image
		for _, img := range imgs {
			if strings.HasPrefix(img.Digest, "sha256:"+hex) {
				found = append(found, img)
			}
		}
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1:
			return nil, invalidArg("digest prefix %q matches %d images; give more digits", ref, len(found))
		case prefixed:
			return nil, fmt.Errorf("image %s is not loaded (see `ccctl image ls`): %w", ref, fsm.ErrNotFound)
		}
		// A bare hex string that is no digest may still be a name.
	}
	name, err := imagearchive.Normalize(ref)
	if err != nil {
		return nil, invalidArg("image %q: %v", ref, err)
	}
	for _, img := range imgs {
		for _, n := range img.Names {
			if n == name {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %s is not loaded (see `ccctl image ls`): %w", name, fsm.ErrNotFound)
}

// resolveImage finds the loaded image a user-typed name (like "busybox")
// refers to, after normalizing it. Errors wrap ErrInvalidArgument or
// fsm.ErrNotFound.
func resolveImage(f *fsm.FSM, name string) (*ccv1.Image, error) {
	n, err := imagearchive.Normalize(name)
	if err != nil {
		return nil, fmt.Errorf("%w: image %q: %v", ErrInvalidArgument, name, err)
	}
	imgs, err := f.Images()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		for _, x := range img.Names {
			if x == n {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %s is not loaded (load it with `ccctl image load`): %w", n, fsm.ErrNotFound)
}

// OpenBlob opens the archive of a loaded image for an agent to fetch; the
// reader verifies the bytes as they are read (see blobstore.Store.Open).
// Only digests of image records are served. Errors wrap ErrInvalidArgument
// or fsm.ErrNotFound.
func (s *ImageService) OpenBlob(digest string) (io.ReadCloser, int64, error) {
	if !strings.HasPrefix(digest, "sha256:") || !blobs.IsHex64(digest[len("sha256:"):]) {
		return nil, 0, fmt.Errorf("%w: digest %q: want sha256:<64 lowercase hex digits>", ErrInvalidArgument, digest)
	}
	if _, err := s.image(digest); err != nil {
		return nil, 0, err
	}
	rc, size, err := s.blobs.Open(digest)
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, 0, fmt.Errorf("the archive of image %s is not on this server: %w", digest, fsm.ErrNotFound)
	}
	return rc, size, err
}
