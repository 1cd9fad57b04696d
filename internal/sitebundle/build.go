package sitebundle

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/containercodes/cc/internal/streamio"
)

// Build reads src, the tar.gz of a site's directory (untrusted), and writes
// the bundle to dst. The same input gives the same bytes.
//
// It accepts regular files and directories (and pax global headers, as
// `git archive` writes), with names that are relative, clean, valid UTF-8
// without control characters or backslashes ("./" in front and "/" after a
// directory are fine). It refuses, with an error wrapping ErrInvalid:
// links, devices, FIFOs and other types, absolute names and ".."
// components, a name listed twice or both a file and a directory, more
// entries than lim.MaxFiles, more content than lim.MaxBytes, and a stream
// that is not a tar.gz. Errors of src itself and of dst are returned as
// they are.
//
// The files are spooled to an unlinked temporary file while the manifest
// is made, so memory stays small whatever the site's size.
func Build(ctx context.Context, src io.Reader, dst io.Writer, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	spool, err := os.CreateTemp("", "sitebundle-*")
	if err != nil {
		return Info{}, fmt.Errorf("sitebundle: spool: %w", err)
	}
	os.Remove(spool.Name())
	defer spool.Close()

	b := &builder{ctx: ctx, lim: lim, spool: spool, files: map[string]*spooled{}, dirs: map[string]bool{}, declared: map[string]bool{}}
	if err := b.read(src); err != nil {
		return Info{}, err
	}
	m, err := b.manifest()
	if err != nil {
		return Info{}, err
	}
	if err := b.write(dst, m); err != nil {
		return Info{}, err
	}
	return Info{Files: uint32(len(m.Files)), ContentBytes: b.total, Manifest: m}, nil
}

type spooled struct {
	off, size int64
	sum       string
	head      []byte // up to 512 bytes, for sniffing
	mtime     int64
	variants  []spooledVariant
}

type spooledVariant struct {
	enc       string
	off, size int64
	sum       string
}

type builder struct {
	ctx      context.Context
	lim      Limits
	spool    *os.File
	end      int64 // of the spool's content
	files    map[string]*spooled
	dirs     map[string]bool // declared or implied by a file under them
	declared map[string]bool // directories listed as entries
	entries  uint32
	total    int64
}

// limitedReader fails once more than n bytes were read: the decompressed
// stream is bounded even by headers and padding that no limit counts.
type limitedReader struct {
	r io.Reader
	n int64
}

var errStreamTooLong = errors.New("stream too long")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errStreamTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (b *builder) blame(src *streamio.Recorder, err error, what string) error {
	if src.Err != nil {
		return fmt.Errorf("sitebundle: read upload: %w", src.Err)
	}
	if errors.Is(err, errStreamTooLong) {
		return invalid("the archive is larger than its limit (%d bytes of content and %d entries)", b.lim.MaxBytes, b.lim.MaxFiles)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return invalid("%s: %v", what, err)
}

func (b *builder) read(r io.Reader) error {
	src := &streamio.Recorder{R: r}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return b.blame(src, err, "the upload is not a gzip stream")
	}
	defer zr.Close()
	slack := int64(b.lim.MaxFiles)*2048 + 64<<20
	tr := tar.NewReader(&limitedReader{r: zr, n: b.lim.MaxBytes + slack})
	for {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return b.blame(src, err, "the upload is not a valid tar.gz archive")
		}
		if err := b.entry(h, tr, src); err != nil {
			return err
		}
	}
}

// entryName normalizes a tar name ("./a/", "a/b") and checks it; "" is the
// root.
func entryName(h *tar.Header) (string, error) {
	n := h.Name
	for strings.HasPrefix(n, "./") {
		n = n[2:]
	}
	if h.Typeflag == tar.TypeDir {
		n = strings.TrimSuffix(n, "/")
	}
	if n == "" || n == "." {
		return "", nil
	}
	if err := checkName(n); err != nil {
		return "", invalid("entry %q: %v", h.Name, err)
	}
	return n, nil
}

const only = "only regular files and directories are accepted"

func (b *builder) entry(h *tar.Header, tr *tar.Reader, src *streamio.Recorder) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	b.entries++
	if b.entries > b.lim.MaxFiles {
		return invalid("the archive has more than %d entries (files and directories)", b.lim.MaxFiles)
	}
	name, err := entryName(h)
	if err != nil {
		return err
	}
	if name == "" {
		if h.Typeflag == tar.TypeDir {
			return nil
		}
		return invalid("entry %q of type %q names the site's root; %s", h.Name, string(h.Typeflag), only)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if b.declared[name] {
			return invalid("entry %q: the directory %s is listed twice", h.Name, name)
		}
		if b.files[name] != nil {
			return invalid("entry %q: %s is both a file and a directory", h.Name, name)
		}
		if err := b.parents(h.Name, name); err != nil {
			return err
		}
		b.declared[name] = true
		b.dirs[name] = true
		return nil
	case tar.TypeReg, tar.TypeRegA:
		if b.files[name] != nil {
			return invalid("entry %q: the file %s is listed twice", h.Name, name)
		}
		if b.dirs[name] {
			return invalid("entry %q: %s is both a directory and a file", h.Name, name)
		}
		if err := b.parents(h.Name, name); err != nil {
			return err
		}
		return b.file(h, name, tr, src)
	case tar.TypeSymlink:
		return invalid("entry %q is a symbolic link (to %q); %s: copy the file instead", h.Name, h.Linkname, only)
	case tar.TypeLink:
		return invalid("entry %q is a hard link (to %q); %s", h.Name, h.Linkname, only)
	case tar.TypeChar, tar.TypeBlock:
		return invalid("entry %q is a device file; %s", h.Name, only)
	case tar.TypeFifo:
		return invalid("entry %q is a FIFO (named pipe); %s", h.Name, only)
	default:
		return invalid("entry %q has the unsupported tar type %q; %s", h.Name, string(h.Typeflag), only)
	}
}

// parents records the directories above name, refusing one that is a file.
func (b *builder) parents(raw, name string) error {
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if b.files[d] != nil {
			return invalid("entry %q: %s is under %s, which is a file", raw, name, d)
		}
		if b.dirs[d] {
			break
		}
	}
	for d := path.Dir(name); d != "." && !b.dirs[d]; d = path.Dir(d) {
		b.dirs[d] = true
	}
	return nil
}

// headWriter keeps the first 512 bytes written.
type headWriter struct{ head []byte }

func (w *headWriter) Write(p []byte) (int, error) {
	if n := 512 - len(w.head); n > 0 {
		w.head = append(w.head, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (b *builder) file(h *tar.Header, name string, tr *tar.Reader, src *streamio.Recorder) error {
	if h.Size < 0 || h.Size > b.lim.MaxBytes-b.total {
		return invalid("entry %q: the files are larger than their limit of %d bytes", h.Name, b.lim.MaxBytes)
	}
	sum := sha256.New()
	hw := &headWriter{}
	out := io.NewOffsetWriter(b.spool, b.end)
	n, err := io.Copy(io.MultiWriter(out, sum, hw), tr)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("sitebundle: spool: %w", err)
		}
		return b.blame(src, err, fmt.Sprintf("entry %q is cut short or damaged", h.Name))
	}
	if n != h.Size {
		return invalid("entry %q is cut short", h.Name)
	}
	var mtime int64
	if !h.ModTime.IsZero() {
		mtime = h.ModTime.Unix()
	}
	b.files[name] = &spooled{off: b.end, size: n, sum: hex.EncodeToString(sum.Sum(nil)), head: hw.head, mtime: mtime}
	b.end += n
	b.total += n
	return nil
}

// manifest lists the files in order and makes their variants.
func (b *builder) manifest() (*Manifest, error) {
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	m := &Manifest{Version: ManifestVersion, Files: make([]File, 0, len(names))}
	for _, n := range names {
		s := b.files[n]
		f := File{Path: n, Size: s.size, SHA256: s.sum, Type: typeOf(n, s.head), MTime: s.mtime}
		if s.size >= minCompressSize && compressible(f.Type) {
			for _, enc := range Encodings {
				if err := b.ctx.Err(); err != nil {
					return nil, err
				}
				v, ok, err := b.compress(s, enc)
				if err != nil {
					return nil, err
				}
				if ok {
					s.variants = append(s.variants, v)
					f.Variants = append(f.Variants, Variant{Encoding: enc, Name: variantName(enc, n), Size: v.size, SHA256: v.sum})
				}
			}
		}
		m.Files = append(m.Files, f)
	}
	return m, nil
}

// capWriter fails once its total would reach max: a variant no smaller
// than the file is not kept, and need not be finished.
type capWriter struct {
	w   io.Writer
	n   int64
	max int64
}

var errNotSmaller = errors.New("not smaller")

func (c *capWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) >= c.max {
		return 0, errNotSmaller
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// window returns the log2 of a compression window that fits size bytes,
// within [lo, hi]: a small file needs no large window, and its encoder no
// large tables.
func window(size int64, lo, hi int) int {
	bits := lo
	for bits < hi && int64(1)<<bits < size {
		bits++
	}
	return bits
}

func newEncoder(enc string, w io.Writer, size int64) (io.WriteCloser, error) {
	switch enc {
	case "br":
		q := brotli.BestCompression
		if size > 4<<20 {
			q = 9 // quality 11 runs at about 1 MB/s
		}
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: q, LGWin: window(size, 10, 22)}), nil
	case "zstd":
		zw, _ := zstdEncoders.Get().(*zstd.Encoder)
		if zw == nil {
			// An 8 MiB window: browsers accept no more (RFC 9659).
			var err error
			zw, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
				zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20))
			if err != nil {
				return nil, err
			}
		}
		zw.Reset(w)
		return &pooledZstd{zw}, nil
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	}
	return nil, fmt.Errorf("sitebundle: unknown encoding %q", enc)
}

// zstdEncoders keeps encoders between files and builds: one allocates
// tens of MiB of tables, and Reset makes it write the same bytes as a
// new one.
var zstdEncoders sync.Pool

type pooledZstd struct{ *zstd.Encoder }

func (p *pooledZstd) Close() error {
	err := p.Encoder.Close()
	p.Encoder.Reset(nil)
	zstdEncoders.Put(p.Encoder)
	return err
}

// compress writes the enc variant of s after the spool's content; ok is
// false when it is not smaller than the file.
func (b *builder) compress(s *spooled, enc string) (spooledVariant, bool, error) {
	sum := sha256.New()
	cw := &capWriter{w: io.MultiWriter(io.NewOffsetWriter(b.spool, b.end), sum), max: s.size}
	zw, err := newEncoder(enc, cw, s.size)
	if err != nil {
		return spooledVariant{}, false, err
	}
	_, err = io.Copy(zw, io.NewSectionReader(b.spool, s.off, s.size))
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errNotSmaller) {
		return spooledVariant{}, false, nil
	}
	if err != nil {
		return spooledVariant{}, false, fmt.Errorf("sitebundle: compress (%s): %w", enc, err)
	}
	v := spooledVariant{enc: enc, off: b.end, size: cw.n, sum: hexSum(sum)}
	b.end += cw.n
	return v, true, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func header(name string, size, mtime int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: time.Unix(mtime, 0)}
}

// write writes the bundle: the manifest, the files, then the variants.
func (b *builder) write(dst io.Writer, m *Manifest) error {
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("sitebundle: manifest: %w", err)
	}
	tw := tar.NewWriter(dst)
	if err := tw.WriteHeader(header(ManifestName, int64(len(mb)), 0)); err != nil {
		return fmt.Errorf("sitebundle: write: %w", err)
	}
	if _, err := tw.Write(mb); err != nil {
		return fmt.Errorf("sitebundle: write: %w", err)
	}
	put := func(name string, off, size, mtime int64) error {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := tw.WriteHeader(header(name, size, mtime)); err != nil {
			return fmt.Errorf("sitebundle: write %s: %w", name, err)
		}
		if _, err := io.Copy(tw, io.NewSectionReader(b.spool, off, size)); err != nil {
			return fmt.Errorf("sitebundle: write %s: %w", name, err)
		}
		return nil
	}
	for i := range m.Files {
		f := &m.Files[i]
		s := b.files[f.Path]
		if err := put(f.Stored(), s.off, s.size, s.mtime); err != nil {
			return err
		}
	}
	for i := range m.Files {
		f := &m.Files[i]
		s := b.files[f.Path]
		for j, v := range s.variants {
			if err := put(f.Variants[j].Name, v.off, v.size, s.mtime); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("sitebundle: write: %w", err)
	}
	return nil
}
