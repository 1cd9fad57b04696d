// Package sitebundle turns the tar.gz of a static site's directory into a
// bundle (Build, on the control plane at deploy) and a bundle into a
// directory an agent serves (Unpack, ReadManifest).
//
// A bundle is a plain, deterministic tar: "manifest.json" first, then every
// file of the site under "files/", then the precompressed variants under
// "enc/br/", "enc/zstd/" and "enc/gzip/" (so a user's "x.gz" can never
// collide with a variant). The same input gives the same bytes, so the same
// site deployed twice has the same digest. The tar is not compressed again:
// the compressible files are already there in three compressed forms, the
// rest are mostly images and archives, and an agent unpacks it without a
// decompression pass.
//
// The input of Build is untrusted (a user's upload): only regular files and
// directories are accepted, names must be clean, relative UTF-8 paths, and
// the limits are enforced while reading. A refusal wraps ErrInvalid and says
// which entry and what is wrong.
package sitebundle

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every refusal of bad input (an upload Build
// refuses, or a damaged bundle Unpack refuses).
var ErrInvalid = errors.New("invalid site bundle")

// Defaults of Limits.
const (
	DefaultMaxBytes int64  = 1 << 30
	DefaultMaxFiles uint32 = 100_000
)

// Limits bound what Build accepts. Zero fields take the defaults.
type Limits struct {
	// MaxBytes caps the total size of the files' content.
	MaxBytes int64
	// MaxFiles caps the entries of the upload: files and directories.
	MaxFiles uint32
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

// Info describes a built bundle.
type Info struct {
	// Files is the number of the site's files (variants not counted).
	Files uint32
	// ContentBytes is their total size (variants not counted).
	ContentBytes int64
	// Manifest lists the files as the bundle holds them.
	Manifest *Manifest
}

// Names inside a bundle and an unpacked directory.
const (
	ManifestName = "manifest.json"
	FilesPrefix  = "files/"
	encPrefix    = "enc/"
)

// Encodings are the content codings of the variants, in the order of
// preference at equal quality.
var Encodings = []string{"br", "zstd", "gzip"}

// ManifestVersion is the version of the manifest's format.
const ManifestVersion = 1

// Manifest lists a bundle's files. It is the allow-list of what an agent
// serves.
type Manifest struct {
	Version int    `json:"version"`
	Files   []File `json:"files"` // sorted by Path
}

// File is one file of the site.
type File struct {
	// Path is relative to the site's root, clean, with "/" separators.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
	// Type is the MIME type (from the extension, else sniffed at build).
	Type string `json:"type"`
	// MTime is the modification time, in Unix seconds (Last-Modified).
	MTime    int64     `json:"mtime"`
	Variants []Variant `json:"variants,omitempty"` // in the order of Encodings
}

// Stored is the file's name in the bundle and the unpacked directory.
func (f *File) Stored() string { return FilesPrefix + f.Path }

// Variant is a precompressed form of a file.
type Variant struct {
	Encoding string `json:"encoding"` // "br", "zstd" or "gzip"
	Name     string `json:"name"`     // stored name, "enc/<encoding>/<path>"
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

func variantName(enc, p string) string { return encPrefix + enc + "/" + p }

// ReadManifest reads and checks the manifest of an unpacked bundle.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("sitebundle: read manifest: %w", err)
	}
	return parseManifest(b)
}

// maxManifestBytes bounds the manifest Unpack and ReadManifest accept.
const maxManifestBytes = 256 << 20

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// check verifies what an agent relies on: known version, clean unique
// paths in order, hex digests, variant names where they belong.
func (m *Manifest) check() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("%w: manifest version %d, want %d", ErrInvalid, m.Version, ManifestVersion)
	}
	for i := range m.Files {
		f := &m.Files[i]
		if err := checkName(f.Path); err != nil {
			return fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return fmt.Errorf("%w: manifest: %s is out of order or listed twice", ErrInvalid, f.Path)
		}
		if f.Size < 0 || !isHexSHA256(f.SHA256) {
			return fmt.Errorf("%w: manifest: %s has a bad size or digest", ErrInvalid, f.Path)
		}
		if len(f.Variants) > len(Encodings) {
			return fmt.Errorf("%w: manifest: %s has too many variants", ErrInvalid, f.Path)
		}
		for j, v := range f.Variants {
			if j > 0 && encIndex(f.Variants[j-1].Encoding) >= encIndex(v.Encoding) {
				return fmt.Errorf("%w: manifest: %s lists its variants out of order", ErrInvalid, f.Path)
			}
			if encIndex(v.Encoding) < 0 || v.Name != variantName(v.Encoding, f.Path) || v.Size < 0 || !isHexSHA256(v.SHA256) {
				return fmt.Errorf("%w: manifest: %s has a bad %q variant", ErrInvalid, f.Path, v.Encoding)
			}
		}
	}
	return nil
}

// Lookup returns the file at p (a manifest path), or nil.
func (m *Manifest) Lookup(p string) *File {
	lo, hi := 0, len(m.Files)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.Files[mid].Path < p {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(m.Files) && m.Files[lo].Path == p {
		return &m.Files[lo]
	}
	return nil
}

func encIndex(enc string) int {
	for i, e := range Encodings {
		if e == enc {
			return i
		}
	}
	return -1
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// checkName accepts a clean, relative, valid UTF-8 path without ".", ".."
// or empty components, control characters or backslashes (a URL could not
// name such a file safely).
func checkName(p string) error {
	switch {
	case p == "":
		return errors.New("an empty name")
	case !utf8.ValidString(p):
		return fmt.Errorf("%q is not valid UTF-8", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s is an absolute path; names must be relative", p)
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("%q holds a backslash", p)
	case len(p) > 4096:
		return fmt.Errorf("%.64s... is longer than 4096 bytes", p)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q holds a control character", p)
		}
	}
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "..":
			return fmt.Errorf("%s has a \"..\" component; names must stay inside the site", p)
		case ".", "":
			return fmt.Errorf("%s is not a clean path", p)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%s is not a clean path", p)
	}
	return nil
}
