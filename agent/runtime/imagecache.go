package runtime

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageFresh is how long Start trusts the image EnsureImage last checked
// under a name without asking containerd again: the worker calls
// EnsureImage just before Start, so the second look-up is a repeat.
const imageFresh = 10 * time.Second

// resolvedImage is what starting a container reads of an image (its
// layers' diff IDs and its config), read once per version of the image:
// a version is the record's target, creation and update times, so an
// image removed and loaded again, or tagged anew, is read and checked
// for its unpacked snapshot again.
type resolvedImage struct {
	rec     images.Image
	diffIDs []digest.Digest
	config  ocispec.Descriptor
	blob    []byte    // the config
	checked time.Time // when the record was last read from containerd
}

func sameVersion(a, b images.Image) bool {
	return a.Target.Digest == b.Target.Digest && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// imageCache holds the resolved images by name.
type imageCache struct {
	mu sync.Mutex
	m  map[string]*resolvedImage
}

func (c *imageCache) get(name string) *resolvedImage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

func (c *imageCache) put(ri *resolvedImage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*resolvedImage{}
	}
	c.m[ri.rec.Name] = ri
}

// touch records that the record of name was read again unchanged.
func (c *imageCache) touch(name string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ri := c.m[name]; ri != nil {
		cp := *ri
		cp.checked = at
		c.m[name] = &cp
	}
}

func (c *imageCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}

func (c *imageCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

// resolveImage checks that img (its record just read) is unpacked for the
// default snapshotter, unpacking it if not, and reads its diff IDs and
// config, unless the cache has this version already.
func (r *Runtime) resolveImage(ctx context.Context, rec images.Image) (*resolvedImage, error) {
	now := time.Now()
	if ri := r.images.get(rec.Name); ri != nil && sameVersion(ri.rec, rec) {
		r.images.touch(rec.Name, now)
		return ri, nil
	}
	img := containerd.NewImage(r.client, rec)
	if err := r.unpack(ctx, img); err != nil {
		return nil, err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: read the layers of image %s: %w", rec.Name, err)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: read the config of image %s: %w", rec.Name, err)
	}
	blob, err := content.ReadBlob(ctx, img.ContentStore(), cfg)
	if err != nil {
		return nil, fmt.Errorf("runtime: read the config of image %s: %w", rec.Name, err)
	}
	ri := &resolvedImage{rec: rec, diffIDs: diffIDs, config: cfg, blob: blob, checked: now}
	r.images.put(ri)
	return ri, nil
}

// startImage is the image a start of ref uses: the one EnsureImage
// checked within imageFresh, else read and checked now.
func (r *Runtime) startImage(ctx context.Context, id, ref string) (containerd.Image, error) {
	if ri := r.images.get(ref); ri != nil && time.Since(ri.checked) < imageFresh {
		return &cachedImage{Image: containerd.NewImage(r.client, ri.rec), ri: ri}, nil
	}
	rec, err := r.client.ImageService().Get(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("runtime: start %s: image %s is not on this node; call EnsureImage first", id, ref)
		}
		return nil, fmt.Errorf("runtime: start %s: look up image %s: %w", id, ref, err)
	}
	ri, err := r.resolveImage(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &cachedImage{Image: containerd.NewImage(r.client, ri.rec), ri: ri}, nil
}

// cachedImage answers the reads of a container's creation (its snapshot's
// parent, its spec's image config) from a resolvedImage instead of
// containerd's content store.
type cachedImage struct {
	containerd.Image
	ri *resolvedImage
}

func (i *cachedImage) RootFS(context.Context) ([]digest.Digest, error) {
	return i.ri.diffIDs, nil
}

func (i *cachedImage) Config(context.Context) (ocispec.Descriptor, error) {
	return i.ri.config, nil
}

func (i *cachedImage) ContentStore() content.Store {
	return configStore{Store: i.Image.ContentStore(), ri: i.ri}
}

// configStore serves the image's config blob from memory.
type configStore struct {
	content.Store
	ri *resolvedImage
}

func (s configStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Digest == s.ri.config.Digest {
		return blobReader{bytes.NewReader(s.ri.blob)}, nil
	}
	return s.Store.ReaderAt(ctx, desc)
}

type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }
