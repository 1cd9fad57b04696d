// Package imagearchive reads the names and shape of an image archive (OCI
// image layout or docker save) without extracting it; input is untrusted.
//
// Inspect reads the tar stream once, keeping only the small metadata files
// (oci-layout, index.json, manifest.json) and the names of the entries, and
// checks that the blobs the metadata points to are in the archive. It never
// writes files.
package imagearchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// ErrInvalidArchive is an archive Inspect refuses; the message says why.
var ErrInvalidArchive = errors.New("invalid image archive")

// Formats Inspect reports.
const (
	FormatOCI    = "oci"
	FormatDocker = "docker"
)

// Limits on untrusted input.
const (
	// MaxMetadataSize bounds index.json and manifest.json.
	MaxMetadataSize = 4 << 20
	maxLayoutSize   = 64 << 10 // oci-layout
	maxEntries      = 1 << 17
	maxNameBytes    = 16 << 20 // all entry names together
	maxLinkHops     = 16
)

// Info is what an archive holds.
type Info struct {
	// Format is FormatOCI for an OCI image layout (also what docker 25 and
	// later save, alongside a manifest.json) or FormatDocker for the older
	// docker save format.
	Format string
	// Names are the normalized references the archive tags its images
	// with, in the order found, without duplicates; none for an untagged
	// archive.
	Names []string
}

const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

var blobDigest = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

// archive is what one pass over the tar stream collects.
type archive struct {
	layout, index, manifest []byte // nil when absent
	files                   map[string]bool
	links                   map[string]string // symlink → target, both cleaned
	nameBytes               int
}

// Inspect reads an image archive from r and returns its format and names.
// It reads r up to the tar archive's end marker, not necessarily to EOF; a
// caller teeing the stream elsewhere must drain r. Errors wrap
// ErrInvalidArchive, or are r's own read errors.
func Inspect(r io.Reader) (*Info, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if err := checkCompression(br); err != nil {
		return nil, err
	}
	a, err := scan(br)
	if err != nil {
		return nil, err
	}
	return a.info()
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArchive}, args...)...)
}

func checkCompression(br *bufio.Reader) error {
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	kinds := []struct {
		magic []byte
		name  string
		fix   string
	}{
		{[]byte{0x1f, 0x8b}, "gzip", "gunzip"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd", "zstd -d"},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz", "unxz"},
		{[]byte("BZh"), "bzip2", "bunzip2"},
	}
	for _, k := range kinds {
		if bytes.HasPrefix(head, k.magic) {
			return invalid("the archive is %s-compressed; load the plain tar (decompress it with %s first)", k.name, k.fix)
		}
	}
	return nil
}

// cleanPath checks a path inside the archive and returns it cleaned:
// relative, no "..", no "./" prefix, no trailing slash.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("absolute path %q", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("path %q contains \"..\"", p)
		}
	}
	return path.Clean(p), nil
}

// readErr remembers the first error of the reader under the tar reader, to
// tell a failing stream from a malformed archive.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// tarError is the error for a failure of the tar reader: the stream's own
// error, or else an invalid archive.
func (e *readErr) tarError(err error, where string) error {
	if e.err != nil {
		return e.err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("the tar archive is truncated (%s)", where)
	}
	return invalid("not a readable tar archive (%s): %v", where, err)
}

func scan(r io.Reader) (*archive, error) {
	a := &archive{files: map[string]bool{}, links: map[string]string{}}
	src := &readErr{r: r}
	tr := tar.NewReader(src)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return nil, invalid("the archive is empty")
			}
			return a, nil
		}
		// ErrInsecurePath (only with GODEBUG=tarinsecurepath=0) comes
		// with a header; the checks below refuse what matters here.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return nil, src.tarError(err, fmt.Sprintf("entry %d", n+1))
		}
		if n >= maxEntries {
			return nil, invalid("more than %d entries", maxEntries)
		}
		name, err := cleanPath(hdr.Name)
		if err != nil {
			return nil, invalid("entry %d: %v", n+1, err)
		}
		a.nameBytes += len(name)
		if a.nameBytes > maxNameBytes {
			return nil, invalid("the entry names are longer than %d bytes together", maxNameBytes)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			a.files[name] = true
		case tar.TypeSymlink:
			// A symlink's target is relative to its directory (docker save
			// links duplicate layers as ../<id>/layer.tar); it must stay in
			// the archive.
			if strings.HasPrefix(hdr.Linkname, "/") {
				return nil, invalid("symlink %q points to an absolute path", name)
			}
			target := path.Join(path.Dir(name), hdr.Linkname)
			if target == ".." || strings.HasPrefix(target, "../") {
				return nil, invalid("symlink %q points outside the archive", name)
			}
			a.links[name] = target
		case tar.TypeLink:
			target, err := cleanPath(hdr.Linkname)
			if err != nil {
				return nil, invalid("hard link %q: %v", name, err)
			}
			a.links[name] = target
		}
		var dst *[]byte
		limit := int64(MaxMetadataSize)
		switch name {
		case "oci-layout":
			dst, limit = &a.layout, maxLayoutSize
		case "index.json":
			dst = &a.index
		case "manifest.json":
			dst = &a.manifest
		default:
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, invalid("%s is not a regular file", name)
		}
		if *dst != nil {
			return nil, invalid("%s appears twice", name)
		}
		if hdr.Size > limit {
			return nil, invalid("%s is %d bytes, more than the limit of %d", name, hdr.Size, limit)
		}
		b, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return nil, src.tarError(err, name)
		}
		if int64(len(b)) > limit {
			return nil, invalid("%s is more than %d bytes", name, limit)
		}
		if b == nil {
			b = []byte{}
		}
		*dst = b
	}
}

// exists reports whether p (cleaned) is a regular file in the archive,
// following links.
func (a *archive) exists(p string) bool {
	for range maxLinkHops {
		if a.files[p] {
			return true
		}
		t, ok := a.links[p]
		if !ok {
			return false
		}
		p = t
	}
	return false
}

func (a *archive) info() (*Info, error) {
	hasOCI := a.layout != nil || a.index != nil
	if a.manifest == nil {
		switch {
		case !hasOCI:
			return nil, invalid("found neither an OCI image layout (oci-layout and index.json) nor a docker save manifest (manifest.json); is it an image archive (docker save, ctr export, skopeo copy oci-archive:)?")
		case a.layout == nil:
			return nil, invalid("index.json without an oci-layout file: not an OCI image layout")
		case a.index == nil:
			return nil, invalid("oci-layout without index.json: the OCI image layout is incomplete")
		}
	}
	info := &Info{Format: FormatDocker}
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			info.Names = append(info.Names, n)
		}
	}
	if a.layout != nil && a.index != nil {
		info.Format = FormatOCI
		names, err := a.ociNames()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			add(n)
		}
	}
	if a.manifest != nil {
		names, err := a.dockerNames()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			add(n)
		}
	}
	return info, nil
}

func (a *archive) ociNames() ([]string, error) {
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(a.layout, &layout); err != nil {
		return nil, invalid("oci-layout: %v", err)
	}
	if layout.Version == "" {
		return nil, invalid("oci-layout: no imageLayoutVersion")
	}
	var idx ociIndex
	if err := json.Unmarshal(a.index, &idx); err != nil {
		return nil, invalid("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, invalid("index.json: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if len(idx.Manifests) == 0 {
		return nil, invalid("index.json lists no manifests")
	}
	var names []string
	for i, m := range idx.Manifests {
		if !blobDigest.MatchString(m.Digest) {
			return nil, invalid("index.json: manifests[%d]: bad digest %q", i, m.Digest)
		}
		alg, hex, _ := strings.Cut(m.Digest, ":")
		if !a.exists("blobs/" + alg + "/" + hex) {
			return nil, invalid("index.json: manifests[%d]: the archive lacks its blob blobs/%s/%s", i, alg, hex)
		}
		if full := m.Annotations[annotationContainerdName]; full != "" {
			n, err := Normalize(full)
			if err != nil {
				return nil, invalid("index.json: manifests[%d]: %s: %v", i, annotationContainerdName, err)
			}
			names = append(names, n)
			continue
		}
		// org.opencontainers.image.ref.name is often only a tag ("latest"),
		// which names nothing by itself; and it is loosely specified, so
		// a value that is no valid reference is ignored, not an error.
		ref := m.Annotations[annotationRefName]
		if !strings.ContainsAny(ref, "/:@") {
			continue
		}
		if n, err := Normalize(ref); err == nil {
			names = append(names, n)
		}
	}
	return names, nil
}

func (a *archive) dockerNames() ([]string, error) {
	var ms []dockerManifest
	if err := json.Unmarshal(a.manifest, &ms); err != nil {
		return nil, invalid("manifest.json: %v", err)
	}
	if len(ms) == 0 {
		return nil, invalid("manifest.json lists no images")
	}
	var names []string
	for i, m := range ms {
		if m.Config == "" {
			return nil, invalid("manifest.json: [%d]: no Config", i)
		}
		for _, p := range append([]string{m.Config}, m.Layers...) {
			c, err := cleanPath(p)
			if err != nil {
				return nil, invalid("manifest.json: [%d]: %v", i, err)
			}
			if !a.exists(c) {
				return nil, invalid("manifest.json: [%d]: the archive lacks %s", i, c)
			}
		}
		for _, t := range m.RepoTags {
			n, err := Normalize(t)
			if err != nil {
				return nil, invalid("manifest.json: [%d]: RepoTags: %v", i, err)
			}
			names = append(names, n)
		}
	}
	return names, nil
}
