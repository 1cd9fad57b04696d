package uie2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// maxGzippedJS is the dashboard's budget of gzipped JavaScript, every
// chunk counted (issue 18: under 250 KB).
const maxGzippedJS = 250_000

var assetRef = regexp.MustCompile(`(?:src|href)="(/ui/assets/[^"]+\.js)"`)

// TestBundleSize: the JavaScript the first page loads (as the server sends
// it gzipped), and all of it (lazy chunks too) gzipped, within the budget.
func TestBundleSize(t *testing.T) {
	srv := testcluster.Start(t)
	if !dashboardBuilt(t, srv) {
		t.Skip("the dashboard is not built into this test binary: run `make ui` first (make test does); skipped")
	}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		tr := srv.HTTPClient().Transport.(*http.Transport).Clone()
		tr.DisableCompression = true // count the bytes on the wire
		res, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, b
	}
	res, index := get("/ui/")
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(index))
		if err != nil {
			t.Fatal(err)
		}
		index, _ = io.ReadAll(zr)
	}
	first := 0
	for _, m := range assetRef.FindAllStringSubmatch(string(index), -1) {
		res, b := get(m[1])
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s: status %d, Content-Encoding %q; want 200 gzip (make ui precompresses)", m[1], res.StatusCode, res.Header.Get("Content-Encoding"))
		}
		first += len(b)
	}
	// Every chunk of the build, as gzip would send it.
	root, err := testcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	all := 0
	files, _ := filepath.Glob(filepath.Join(root, "controlplane", "ui", "dist", "assets", "*.js"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		all += z.Len()
	}
	record(t, "bundle: %d bytes of gzipped JavaScript for the first page (%s), %d bytes gzipped in all %d chunks (budget %d)",
		first, strings.Join(func() []string {
			var s []string
			for _, m := range assetRef.FindAllStringSubmatch(string(index), -1) {
				s = append(s, m[1])
			}
			return s
		}(), ", "), all, len(files), maxGzippedJS)
	if all > maxGzippedJS {
		t.Errorf("the dashboard's JavaScript is %d bytes gzipped, over its budget of %d", all, maxGzippedJS)
	}
	if first == 0 {
		t.Errorf("index.html loads no script from /ui/assets/")
	}
}
