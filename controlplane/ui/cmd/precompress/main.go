// Command precompress writes name.gz (gzip, klauspost/compress) and name.br
// (brotli) beside each compressible file of the dashboard's build, for the
// server to send to clients that accept them. A variant that would not be
// smaller than its file is not kept; variants whose file is gone are
// removed. `make ui` runs it:
//
//	go run ./controlplane/ui/cmd/precompress controlplane/ui/dist
package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// compressible are the extensions of text-like files worth compressing
// (images and fonts of the build are compressed already).
var compressible = map[string]bool{
	".html": true, ".js": true, ".mjs": true, ".css": true, ".json": true, ".map": true,
	".svg": true, ".txt": true, ".webmanifest": true, ".xml": true, ".wasm": true, ".ico": true,
}

// minSize is the smallest file worth a variant: below it, headers cost more.
const minSize = 256

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: precompress DIR (the dashboard's build, e.g. controlplane/ui/dist)")
		os.Exit(2)
	}
	n, saved, err := run(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "precompress: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("precompress: %d variants written in %s (%d bytes of files, %d as gzip, %d as brotli)\n", n, os.Args[1], saved.plain, saved.gzip, saved.brotli)
}

type sizes struct{ plain, gzip, brotli int64 }

func run(dir string) (int, sizes, error) {
	var total sizes
	n := 0
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		switch filepath.Ext(p) {
		case ".gz", ".br":
			// A variant whose file is gone (an older build) goes too.
			if _, err := os.Stat(strings.TrimSuffix(strings.TrimSuffix(p, ".gz"), ".br")); os.IsNotExist(err) {
				return os.Remove(p)
			}
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return 0, total, err
	}
	for _, p := range files {
		if !compressible[filepath.Ext(p)] {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return n, total, err
		}
		gz, br := gzipBytes(data), brotliBytes(data)
		for _, v := range []struct {
			ext  string
			data []byte
			size *int64
		}{{".gz", gz, &total.gzip}, {".br", br, &total.brotli}} {
			if len(data) < minSize || len(v.data) >= len(data) {
				if err := os.Remove(p + v.ext); err != nil && !os.IsNotExist(err) {
					return n, total, err
				}
				*v.size += int64(len(data))
				continue
			}
			if err := os.WriteFile(p+v.ext, v.data, 0o644); err != nil {
				return n, total, err
			}
			*v.size += int64(len(v.data))
			n++
		}
		total.plain += int64(len(data))
	}
	return n, total, nil
}

func gzipBytes(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // the level is valid
	_, _ = w.Write(data)                                  // writes to memory
	_ = w.Close()
	return b.Bytes()
}

func brotliBytes(data []byte) []byte {
	var b bytes.Buffer
	w := brotli.NewWriterLevel(&b, brotli.BestCompression)
	_, _ = w.Write(data) // writes to memory
	_ = w.Close()
	return b.Bytes()
}
