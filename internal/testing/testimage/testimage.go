// Package testimage builds tiny OCI image archives from the host's
// busybox-static so tests and dev mode never download an image.
//
// The archive is an OCI image layout in a tar stream (oci-layout, index.json,
// blobs/sha256/...) that containerd's `client.Import` and `ctr image import`
// accept. It holds one image for the host's platform (linux/amd64 here): a
// single gzip layer with /bin/busybox (copied from the host), /bin/sh linked
// to it, /tmp (1777), /etc/passwd and /etc/group with root and nobody
// (65534). Output is deterministic: the same name and the same host busybox
// give the same bytes.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is where the host's static busybox is read from.
var BusyboxPath = "/bin/busybox"

// AnnotationImageName is the annotation containerd reads for the image name
// on import.
const AnnotationImageName = "io.containerd.image.name"

// epoch is the fixed modification time of every file in the archive.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Normalize turns a reference into its full docker form: "cc-demo" becomes
// "docker.io/library/cc-demo:latest". It returns the full name and the tag
// (empty for a reference by digest).
func Normalize(name string) (full, tag string, err error) {
	named, err := reference.ParseDockerRef(name)
	if err != nil {
		return "", "", fmt.Errorf("testimage: image name %q is not a valid reference: %w", name, err)
	}
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return named.String(), tag, nil
}

// BuildBusybox returns the archive WriteBusybox writes.
func BuildBusybox(name string) ([]byte, error) {
	var buf bytes.Buffer
	if err := WriteBusybox(&buf, name); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteBusybox writes an OCI image-layout tar holding one busybox image named
// name (normalized like docker) to w.
func WriteBusybox(w io.Writer, name string) error {
	full, tag, err := Normalize(name)
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("testimage: read %s (install Debian's busybox-static, see scripts/prereqs.sh): %w", BusyboxPath, err)
	}

	layer, diffID, err := busyboxLayer(bb)
	if err != nil {
		return err
	}
	layerDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}

	created := epoch
	config, err := json.Marshal(ocispec.Image{
		Created: &created,
		Platform: ocispec.Platform{
			Architecture: goruntime.GOARCH,
			OS:           "linux",
		},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "containercodes testimage: busybox-static",
		}},
	})
	if err != nil {
		return fmt.Errorf("testimage: encode config: %w", err)
	}
	configDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(config),
		Size:      int64(len(config)),
	}

	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return fmt.Errorf("testimage: encode manifest: %w", err)
	}
	refName := tag
	if refName == "" {
		refName = full
	}
	manifestDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromBytes(manifest),
		Size:      int64(len(manifest)),
		Platform:  &ocispec.Platform{Architecture: goruntime.GOARCH, OS: "linux"},
		Annotations: map[string]string{
			AnnotationImageName:       full,
			ocispec.AnnotationRefName: refName,
		},
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return fmt.Errorf("testimage: encode index: %w", err)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("testimage: encode oci-layout: %w", err)
	}

	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(dirHeader(d, 0o755)); err != nil {
			return fmt.Errorf("testimage: write archive: %w", err)
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{"blobs/sha256/" + layerDesc.Digest.Encoded(), layer},
		{"blobs/sha256/" + configDesc.Digest.Encoded(), config},
		{"blobs/sha256/" + manifestDesc.Digest.Encoded(), manifest},
		{ocispec.ImageIndexFile, index},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return fmt.Errorf("testimage: write archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("testimage: write archive: %w", err)
	}
	return nil
}

// busyboxLayer returns the gzip-compressed layer and the digest of its
// uncompressed tar (the diff id).
func busyboxLayer(bb []byte) (layer []byte, diffID digest.Digest, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"tmp/", 0o1777}} {
		if err := tw.WriteHeader(dirHeader(d.name, d.mode)); err != nil {
			return nil, "", fmt.Errorf("testimage: build layer: %w", err)
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bb); err != nil {
		return nil, "", fmt.Errorf("testimage: build layer: %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeSymlink,
		Name:     "bin/sh",
		Linkname: "busybox",
		Mode:     0o777,
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}); err != nil {
		return nil, "", fmt.Errorf("testimage: build layer: %w", err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	if err := writeFile(tw, "etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, "", fmt.Errorf("testimage: build layer: %w", err)
	}
	if err := writeFile(tw, "etc/group", 0o644, []byte(group)); err != nil {
		return nil, "", fmt.Errorf("testimage: build layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("testimage: build layer: %w", err)
	}

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", fmt.Errorf("testimage: compress layer: %w", err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", fmt.Errorf("testimage: compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("testimage: compress layer: %w", err)
	}
	return gz.Bytes(), digest.FromBytes(raw.Bytes()), nil
}

func dirHeader(name string, mode int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeDir,
		Name:     name,
		Mode:     mode,
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     mode,
		Size:     int64(len(data)),
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
