package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	"github.com/containercodes/cc/internal/testing/testimage"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

type tarFile struct {
	name string
	body []byte
}

func tarOf(t *testing.T, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ociArchive builds a small OCI image layout whose one manifest is named
// name (none when ""); the layer is layerSize random bytes (no real tar:
// loading does not look into layers).
func ociArchive(t *testing.T, name string, layerSize int) []byte {
	t.Helper()
	layer := make([]byte, layerSize)
	rand.Read(layer)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + sha(layer) + `"]}}`)
	manifest := jsonOf(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sha(layer), "size": len(layer)}},
	})
	desc := map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(manifest), "size": len(manifest)}
	if name != "" {
		desc["annotations"] = map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}
	}
	return tarOf(t, []tarFile{
		{"blobs/sha256/" + sha(layer), layer},
		{"blobs/sha256/" + sha(config), config},
		{"blobs/sha256/" + sha(manifest), manifest},
		{"index.json", jsonOf(t, map[string]any{"schemaVersion": 2, "manifests": []any{desc}})},
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	})
}

// dockerArchive builds a docker save archive tagged with tags.
func dockerArchive(t *testing.T, tags ...string) []byte {
	t.Helper()
	layer := []byte("layer of " + strings.Join(tags, ","))
	config := []byte(`{"os":"linux"}`)
	return tarOf(t, []tarFile{
		{sha(layer) + "/layer.tar", layer},
		{sha(config) + ".json", config},
		{"manifest.json", jsonOf(t, []any{map[string]any{"Config": sha(config) + ".json", "RepoTags": tags, "Layers": []string{sha(layer) + "/layer.tar"}}})},
	})
}

// load uploads data in chunks of chunk bytes after hdr (no header when nil).
func load(t *testing.T, c ccv1.ImageServiceClient, hdr *ccv1.LoadImageHeader, data []byte, chunk int) (*ccv1.Image, error) {
	t.Helper()
	stream, err := c.LoadImage(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if hdr != nil {
		if err := stream.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Header{Header: hdr}}); err != nil {
			_, err = stream.CloseAndRecv()
			return nil, err
		}
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		if err := stream.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: data[:n]}}); err != nil {
			break // the server ended the call; CloseAndRecv says why
		}
		data = data[n:]
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetImage(), nil
}

func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
		t.Fatalf("error %v, want %v with %q", err, code, text)
	}
}

// blobFiles lists the files under the server's data dir named like a sha256.
func blobFiles(t *testing.T, s *testcluster.Server) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(s.Config.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n := d.Name(); !d.IsDir() && len(n) == 64 && strings.Trim(n, "0123456789abcdef") == "" {
			out["sha256:"+n] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(imgs []*ccv1.Image) [][]string {
	var out [][]string
	for _, i := range imgs {
		out = append(out, i.Names)
	}
	return out
}

func TestImages(t *testing.T) {
	s := testcluster.Start(t)
	c := s.Client().Images

	busybox := ociArchive(t, "docker.io/library/busybox:latest", 3<<20)
	img, err := load(t, c, &ccv1.LoadImageHeader{Size: int64(len(busybox)), Sha256: sha(busybox)}, busybox, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != "sha256:"+sha(busybox) || img.Size != int64(len(busybox)) || strings.Join(img.Names, ",") != "docker.io/library/busybox:latest" || img.CreatedAt == nil {
		t.Fatalf("loaded %v", img)
	}
	if !blobFiles(t, s)[img.Digest] {
		t.Fatalf("blob %s not stored", img.Digest)
	}
	// Loading again (without size or digest) changes nothing.
	again, err := load(t, c, &ccv1.LoadImageHeader{}, busybox, 1<<20)
	if err != nil || again.Digest != img.Digest || !again.CreatedAt.AsTime().Equal(img.CreatedAt.AsTime()) {
		t.Fatalf("reload: %v, %v", again, err)
	}

	app := dockerArchive(t, "example.com/app:1", "app:2")
	appImg, err := load(t, c, &ccv1.LoadImageHeader{}, app, 100)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(appImg.Names, ",") != "example.com/app:1,docker.io/library/app:2" {
		t.Fatalf("docker archive names %q", appImg.Names)
	}
	// A newer busybox takes the name; the old image keeps no name.
	busybox2 := ociArchive(t, "busybox", 1000)
	b2, err := load(t, c, &ccv1.LoadImageHeader{}, busybox2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListImages(ctxT(t), &ccv1.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := names(list.Images)
	if len(got) != 3 || list.Images[0].Digest != b2.Digest || list.Images[1].Digest != appImg.Digest || list.Images[2].Digest != img.Digest || len(got[2]) != 0 {
		t.Fatalf("ListImages names = %q", got)
	}

	// The project's test image loads under its name.
	if demo, err := testimage.BuildBusybox("cc-test/demo:v1"); err != nil {
		t.Logf("no test image: %v", err)
	} else if di, err := load(t, c, &ccv1.LoadImageHeader{Size: int64(len(demo)), Sha256: sha(demo)}, demo, 1<<20); err != nil {
		t.Fatal(err)
	} else if strings.Join(di.Names, ",") != "docker.io/cc-test/demo:v1" {
		t.Fatalf("test image names %q", di.Names)
	} else if _, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: "cc-test/demo:v1"}); err != nil {
		t.Fatal(err)
	}

	// Remove: by name, by digest prefix, by full digest.
	if _, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: "app:2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: strings.TrimPrefix(img.Digest, "sha256:")[:12]}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: b2.Digest}); err != nil {
		t.Fatal(err)
	}
	list, err = c.ListImages(ctxT(t), &ccv1.ListImagesRequest{})
	if err != nil || len(list.Images) != 0 {
		t.Fatalf("after removing all: %v, %v", names(list.GetImages()), err)
	}
	if b := blobFiles(t, s); len(b) != 0 {
		t.Fatalf("blobs left: %v", b)
	}

	for ref, code := range map[string]codes.Code{
		"busybox":                     codes.NotFound,
		img.Digest:                    codes.NotFound,
		"sha256:" + sha(busybox)[:12]: codes.NotFound,
		"sha256:abc":                  codes.InvalidArgument,
		"":                            codes.InvalidArgument,
		"Not/A/Valid:Name":            codes.InvalidArgument,
		sha(busybox)[:12]:             codes.NotFound, // neither a digest nor a name
	} {
		_, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: ref})
		if status.Code(err) != code {
			t.Errorf("RemoveImage(%q): %v, want %v", ref, err, code)
		}
	}
}

func TestLoadImageRefusals(t *testing.T) {
	s := testcluster.Start(t)
	c := s.Client().Images
	good := ociArchive(t, "busybox", 5000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(good)
	zw.Close()

	tests := []struct {
		name string
		hdr  *ccv1.LoadImageHeader
		data []byte
		text string
	}{
		{"no header", nil, good, "header"},
		{"nothing at all", nil, nil, "header"},
		{"wrong sha256", &ccv1.LoadImageHeader{Sha256: sha([]byte("other"))}, good, "sha256"},
		{"bad sha256", &ccv1.LoadImageHeader{Sha256: "xyz"}, good, "sha256"},
		{"shorter than its size", &ccv1.LoadImageHeader{Size: int64(len(good)) + 1}, good, "ended after"},
		{"longer than its size", &ccv1.LoadImageHeader{Size: int64(len(good)) - 1}, good, "longer than"},
		{"over the limit", &ccv1.LoadImageHeader{Size: 9 << 30}, good, "limit"},
		{"negative size", &ccv1.LoadImageHeader{Size: -1}, good, "negative"},
		{"empty", &ccv1.LoadImageHeader{}, nil, "empty"},
		{"not an archive", &ccv1.LoadImageHeader{}, bytes.Repeat([]byte("not a tar "), 10000), "not a readable tar"},
		{"no image layout", &ccv1.LoadImageHeader{}, tarOf(t, []tarFile{{"a.txt", []byte("hi")}}), "neither"},
		{"gzip", &ccv1.LoadImageHeader{}, gz.Bytes(), "gzip"},
		{"truncated", &ccv1.LoadImageHeader{}, good[:len(good)/2], "truncated"},
		{"unnamed", &ccv1.LoadImageHeader{}, ociArchive(t, "", 100), "the archive names no image; tag it"},
		{"untagged docker save", &ccv1.LoadImageHeader{}, dockerArchive(t), "names no image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, c, tt.hdr, tt.data, 1000)
			wantCode(t, err, codes.InvalidArgument, tt.text)
			if b := blobFiles(t, s); len(b) != 0 {
				t.Fatalf("blobs left: %v", b)
			}
		})
	}

	// A second header in the stream.
	stream, err := c.LoadImage(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	hdr := &ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Header{Header: &ccv1.LoadImageHeader{}}}
	stream.Send(hdr)
	stream.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: good[:100]}})
	stream.Send(hdr)
	_, err = stream.CloseAndRecv()
	wantCode(t, err, codes.InvalidArgument, "second header")

	// A canceled upload stores nothing.
	ctx, cancel := context.WithCancel(context.Background())
	stream, err = c.LoadImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(hdr)
	stream.Send(&ccv1.LoadImageRequest{Msg: &ccv1.LoadImageRequest_Chunk{Chunk: good[:3000]}})
	cancel()
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.Canceled {
		t.Fatalf("canceled upload: %v", err)
	}

	// After all that, a good archive still loads.
	img, err := load(t, c, &ccv1.LoadImageHeader{Size: int64(len(good))}, good, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if b := blobFiles(t, s); len(b) != 1 || !b[img.Digest] {
		t.Fatalf("blobs: %v", b)
	}
}

// Loads of the same archive at once all succeed and store it once; loads
// racing with removals leave either the image with its blob or neither.
func TestLoadImageConcurrently(t *testing.T) {
	s := testcluster.Start(t)
	c := s.Client().Images
	data := ociArchive(t, "busybox", 1<<20)
	errs := make(chan error, 16)
	for range 8 {
		go func() {
			_, err := load(t, c, &ccv1.LoadImageHeader{}, data, 64<<10)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	digest := "sha256:" + sha(data)
	if b := blobFiles(t, s); len(b) != 1 || !b[digest] {
		t.Fatalf("blobs: %v", b)
	}
	for range 8 {
		go func() {
			_, err := load(t, c, &ccv1.LoadImageHeader{}, data, 64<<10)
			if status.Code(err) == codes.Aborted {
				err = nil // the image was removed while it loaded
			}
			errs <- err
		}()
		go func() {
			_, err := c.RemoveImage(ctxT(t), &ccv1.RemoveImageRequest{Image: "busybox"})
			if status.Code(err) == codes.NotFound {
				err = nil
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.ListImages(ctxT(t), &ccv1.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b := blobFiles(t, s); len(list.Images) != len(b) || (len(b) == 1 && !b[digest]) {
		t.Fatalf("images %v, blobs %v", names(list.Images), b)
	}
}
