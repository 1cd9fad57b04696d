package imagearchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/containercodes/cc/internal/testing/testimage"
)

type entry struct {
	name string
	body string
	typ  byte // tar.TypeReg when 0
	link string
}

func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	layerBody  = "not really a layer"
	configBody = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
)

// ociEntries is an OCI layout with one manifest carrying annotations.
func ociEntries(t testing.TB, annotations map[string]string) []entry {
	t.Helper()
	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + digestOf(configBody), "size": len(configBody)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + digestOf(layerBody), "size": len(layerBody)}},
	})
	index := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      "sha256:" + digestOf(manifest),
			"size":        len(manifest),
			"annotations": annotations,
		}},
	})
	return []entry{
		{name: "blobs/", typ: tar.TypeDir},
		{name: "blobs/sha256/", typ: tar.TypeDir},
		{name: "blobs/sha256/" + digestOf(layerBody), body: layerBody},
		{name: "blobs/sha256/" + digestOf(configBody), body: configBody},
		{name: "blobs/sha256/" + digestOf(manifest), body: manifest},
		{name: "index.json", body: index},
		{name: "oci-layout", body: `{"imageLayoutVersion":"1.0.0"}`},
	}
}

// dockerEntries is a docker save archive (the pre-25 layout).
func dockerEntries(t testing.TB, repoTags []string) []entry {
	t.Helper()
	id := digestOf(layerBody)
	return []entry{
		{name: id + "/", typ: tar.TypeDir},
		{name: id + "/layer.tar", body: layerBody},
		{name: id + "/VERSION", body: "1.0"},
		{name: digestOf(configBody) + ".json", body: configBody},
		{name: "manifest.json", body: mustJSON(t, []any{map[string]any{
			"Config":   digestOf(configBody) + ".json",
			"RepoTags": repoTags,
			"Layers":   []string{id + "/layer.tar"},
		}})},
		{name: "repositories", body: "{}"},
	}
}

func without(es []entry, name string) []entry {
	return slices.DeleteFunc(slices.Clone(es), func(e entry) bool { return e.name == name })
}

func replace(es []entry, name, body string) []entry {
	out := slices.Clone(es)
	for i := range out {
		if out[i].name == name {
			out[i].body = body
		}
	}
	return out
}

func TestInspect(t *testing.T) {
	busybox := map[string]string{annotationContainerdName: "docker.io/library/busybox:latest", annotationRefName: "latest"}
	docker25 := append(ociEntries(t, busybox), dockerEntries(t, []string{"busybox:latest", "example.com/tools/box:2"})[4])
	docker25 = append(docker25, dockerEntries(t, nil)[:4]...)
	symlinked := dockerEntries(t, []string{"busybox"})
	other := digestOf("other")
	symlinked = append(symlinked,
		entry{name: other + "/", typ: tar.TypeDir},
		entry{name: other + "/layer.tar", typ: tar.TypeSymlink, link: "../" + digestOf(layerBody) + "/layer.tar"},
	)
	symlinked = replace(symlinked, "manifest.json", mustJSON(t, []any{map[string]any{
		"Config": digestOf(configBody) + ".json", "RepoTags": []string{"busybox"},
		"Layers": []string{digestOf(layerBody) + "/layer.tar", other + "/layer.tar"},
	}}))
	dotSlash := ociEntries(t, busybox)
	for i := range dotSlash {
		dotSlash[i].name = "./" + dotSlash[i].name
	}

	tests := []struct {
		name    string
		entries []entry
		format  string
		names   []string
	}{
		{"oci with containerd name", ociEntries(t, busybox), FormatOCI, []string{"docker.io/library/busybox:latest"}},
		{"oci with a short containerd name", ociEntries(t, map[string]string{annotationContainerdName: "busybox:1.36"}), FormatOCI, []string{"docker.io/library/busybox:1.36"}},
		{"oci with only a tag", ociEntries(t, map[string]string{annotationRefName: "latest"}), FormatOCI, nil},
		{"oci with a full ref.name", ociEntries(t, map[string]string{annotationRefName: "localhost:5000/app"}), FormatOCI, []string{"localhost:5000/app:latest"}},
		{"oci with a bad ref.name", ociEntries(t, map[string]string{annotationRefName: "Bad/Name:x"}), FormatOCI, nil},
		{"oci without annotations", ociEntries(t, nil), FormatOCI, nil},
		{"oci with ./ paths", dotSlash, FormatOCI, []string{"docker.io/library/busybox:latest"}},
		{"docker save", dockerEntries(t, []string{"busybox:latest", "foo/bar:1", "busybox"}), FormatDocker, []string{"docker.io/library/busybox:latest", "docker.io/foo/bar:1"}},
		{"docker save untagged", dockerEntries(t, nil), FormatDocker, nil},
		{"docker save with a linked layer", symlinked, FormatDocker, []string{"docker.io/library/busybox:latest"}},
		{"docker 25 save: both", docker25, FormatOCI, []string{"docker.io/library/busybox:latest", "example.com/tools/box:2"}},
		{"docker manifest beside an incomplete oci layout", append(dockerEntries(t, []string{"x"}), entry{name: "oci-layout", body: "{}"}), FormatDocker, []string{"docker.io/library/x:latest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Inspect(bytes.NewReader(tarball(t, tt.entries...)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != tt.format || !slices.Equal(info.Names, tt.names) {
				t.Fatalf("Inspect = %+v, want %s %q", info, tt.format, tt.names)
			}
		})
	}
}

func TestInspectRefuses(t *testing.T) {
	busybox := map[string]string{annotationContainerdName: "busybox"}
	oci := ociEntries(t, busybox)
	docker := dockerEntries(t, []string{"busybox"})
	big := `{"schemaVersion":2,"manifests":[]}` + strings.Repeat(" ", MaxMetadataSize)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball(t, oci...))
	zw.Close()
	full := tarball(t, oci...)

	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty input", nil, "empty"},
		{"empty tar", tarball(t), "empty"},
		{"not a tar", []byte(strings.Repeat("hello world\n", 100)), "not a readable tar"},
		{"short garbage", []byte("hello"), "truncated"},
		{"truncated", full[:len(full)/2], "truncated"},
		{"gzip", gz.Bytes(), "gzip-compressed"},
		{"no layout", tarball(t, entry{name: "hello.txt", body: "hi"}), "found neither"},
		{"oci without oci-layout", tarball(t, without(oci, "oci-layout")...), "without an oci-layout"},
		{"oci without index.json", tarball(t, without(oci, "index.json")...), "without index.json"},
		{"oci missing its manifest blob", tarball(t, oci[0], oci[5], oci[6]), "lacks its blob"},
		{"oci bad layout", tarball(t, replace(oci, "oci-layout", "{}")...), "imageLayoutVersion"},
		{"oci bad json", tarball(t, replace(oci, "index.json", "{")...), "index.json"},
		{"oci bad schema", tarball(t, replace(oci, "index.json", `{"schemaVersion":1,"manifests":[]}`)...), "schemaVersion"},
		{"oci no manifests", tarball(t, replace(oci, "index.json", `{"schemaVersion":2,"manifests":[]}`)...), "no manifests"},
		{"oci bad digest", tarball(t, replace(oci, "index.json", `{"schemaVersion":2,"manifests":[{"digest":"sha256:../../x"}]}`)...), "bad digest"},
		{"oci bad containerd name", tarball(t, ociEntries(t, map[string]string{annotationContainerdName: "busybox/Case"})...), "lowercase"},
		{"index.json too large", tarball(t, replace(oci, "index.json", big)...), "limit"},
		{"manifest.json too large", tarball(t, replace(docker, "manifest.json", "[]"+strings.Repeat(" ", MaxMetadataSize))...), "limit"},
		{"index.json twice", tarball(t, append(oci, entry{name: "./index.json", body: "{}"})...), "twice"},
		{"index.json a symlink", tarball(t, append(without(oci, "index.json"), entry{name: "index.json", typ: tar.TypeSymlink, link: "blobs/sha256/x"})...), "not a regular file"},
		{"dot-dot path", tarball(t, append(oci, entry{name: "blobs/../../etc/passwd", body: "x"})...), `".."`},
		{"absolute path", tarball(t, append(oci, entry{name: "/etc/passwd", body: "x"})...), "absolute"},
		{"escaping symlink", tarball(t, append(docker, entry{name: "a/b", typ: tar.TypeSymlink, link: "../../x"})...), "outside"},
		{"absolute symlink", tarball(t, append(docker, entry{name: "a", typ: tar.TypeSymlink, link: "/etc/passwd"})...), "absolute"},
		{"escaping hard link", tarball(t, append(docker, entry{name: "a", typ: tar.TypeLink, link: "../x"})...), `".."`},
		{"docker missing layer", tarball(t, without(docker, digestOf(layerBody)+"/layer.tar")...), "lacks"},
		{"docker missing config", tarball(t, without(docker, digestOf(configBody)+".json")...), "lacks"},
		{"docker layer path escapes", tarball(t, replace(docker, "manifest.json", `[{"Config":"../c.json","Layers":[]}]`)...), `".."`},
		{"docker no config", tarball(t, replace(docker, "manifest.json", `[{"Layers":[]}]`)...), "no Config"},
		{"docker empty manifest", tarball(t, replace(docker, "manifest.json", `[]`)...), "no images"},
		{"docker manifest not a list", tarball(t, replace(docker, "manifest.json", `{}`)...), "manifest.json"},
		{"docker bad tag", tarball(t, dockerEntries(t, []string{"Busybox:latest"})...), "lowercase"},
		{"link loop", tarball(t, append(replace(docker, "manifest.json", `[{"Config":"a","Layers":[]}]`),
			entry{name: "a", typ: tar.TypeSymlink, link: "b"}, entry{name: "b", typ: tar.TypeSymlink, link: "a"})...), "lacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Inspect(bytes.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Inspect = %+v, want an error with %q", info, tt.want)
			}
			if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Inspect error %q, want ErrInvalidArchive with %q", err, tt.want)
			}
		})
	}
}

// The archives the project builds for its tests inspect as they should.
func TestInspectTestImage(t *testing.T) {
	for name, want := range map[string]string{"busybox": "docker.io/library/busybox:latest", "localhost:5000/cc/demo:v1": "localhost:5000/cc/demo:v1"} {
		data, err := testimage.BuildBusybox(name)
		if err != nil {
			t.Skipf("no test image: %v", err)
		}
		info, err := Inspect(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.Format != FormatOCI || !slices.Equal(info.Names, []string{want}) {
			t.Fatalf("Inspect(testimage %q) = %+v", name, info)
		}
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// A failing stream is reported as itself, not as a bad archive.
func TestInspectPassesReadErrors(t *testing.T) {
	data := tarball(t, ociEntries(t, nil)...)
	boom := errors.New("boom")
	for _, n := range []int{0, 3, 700, len(data) / 2, len(data) - 1025} {
		_, err := Inspect(&failingReader{r: bytes.NewReader(data[:n]), err: boom})
		if !errors.Is(err, boom) || errors.Is(err, ErrInvalidArchive) {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	good := map[string]string{
		"busybox":                              "docker.io/library/busybox:latest",
		"busybox:1.36":                         "docker.io/library/busybox:1.36",
		"library/busybox":                      "docker.io/library/busybox:latest",
		"docker.io/busybox":                    "docker.io/library/busybox:latest",
		"index.docker.io/busybox:1":            "docker.io/library/busybox:1",
		"docker.io/library/busybox:x":          "docker.io/library/busybox:x",
		"foo/bar:1":                            "docker.io/foo/bar:1",
		"foo/bar/baz":                          "docker.io/foo/bar/baz:latest",
		"localhost/x":                          "localhost/x:latest",
		"localhost:5000/x":                     "localhost:5000/x:latest",
		"localhost:5000/x:v1.2_3-rc":           "localhost:5000/x:v1.2_3-rc",
		"localhost":                            "docker.io/library/localhost:latest",
		"localhost:5000":                       "docker.io/library/localhost:5000",
		"ghcr.io/org/app:2":                    "ghcr.io/org/app:2",
		"Example.COM/app":                      "Example.COM/app:latest",
		"[::1]:5000/app":                       "[::1]:5000/app:latest",
		"a.b-c_d__e---f":                       "docker.io/library/a.b-c_d__e---f:latest",
		"busybox:Latest":                       "docker.io/library/busybox:Latest",
		"busybox@sha256:" + digestOf(""):       "docker.io/library/busybox@sha256:" + digestOf(""),
		"busybox:1@sha256:" + digestOf(""):     "docker.io/library/busybox:1@sha256:" + digestOf(""),
		"r.io:443/a/b@sha256:" + digestOf("x"): "r.io:443/a/b@sha256:" + digestOf("x"),
	}
	for in, want := range good {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if again, err := Normalize(got); err != nil || again != got {
			t.Errorf("Normalize(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
	bad := map[string]string{
		"":                                    "empty",
		"Busybox":                             "lowercase",
		"foo/Bar":                             "lowercase",
		"busybox:":                            "tag",
		"busybox:-x":                          "tag",
		"busybox:" + strings.Repeat("a", 129): "tag",
		"busybox@sha256:abc":                  "digest",
		"busybox@sha256:" + strings.ToUpper(digestOf("")): "digest",
		"busybox@md5:" + digestOf(""):                     "digest",
		"a@b@sha256:" + digestOf(""):                      "digest",
		"foo//bar":                                        "component",
		"/foo":                                            "component",
		"foo/":                                            "component",
		"example.com/":                                    "component",
		":latest":                                         "component",
		"foo_/bar":                                        "component",
		"-foo":                                            "component",
		"foo bar":                                         "component",
		" busybox":                                        "component",
		"bad_host.com/x":                                  "registry host",
		"host.com:port/x":                                 "registry host",
		digestOf("x"):                                     "id",
		strings.Repeat("a", 300):                          "longer",
		strings.Repeat("a/", 200) + "a":                   "longer",
		strings.Repeat("a", 600):                          "longer",
	}
	for in, want := range bad {
		got, err := Normalize(in)
		if err == nil || !errors.Is(err, ErrInvalidReference) || !strings.Contains(err.Error(), want) {
			t.Errorf("Normalize(%q) = %q, %v; want an error with %q", in, got, err, want)
		}
	}
}

// Docker bounds the repository path, without the registry host, at 255
// characters: a 238-character name is "library/" and 238 characters, under
// the bound, though "docker.io/library/" and it is over (issue 14, #14).
func TestNormalizeNameLengthLikeDocker(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, ref := range []string{
		a(238), a(247), a(248), "library/" + a(247), "foo/" + a(251), "foo/" + a(252),
		"ghcr.io/" + a(255), "ghcr.io/" + a(256), "localhost:5000/" + a(255), "localhost:5000/" + a(256),
		"docker.io/" + a(247), "docker.io/" + a(248), a(238) + ":" + a(128),
	} {
		n, err := Normalize(ref)
		named, rerr := reference.ParseDockerRef(ref)
		if (err == nil) != (rerr == nil) || (err == nil && n != named.String()) {
			t.Errorf("Normalize(%d characters %.20q...) = %.40q, %v; docker: %v", len(ref), ref, n, err, rerr)
		}
		if err != nil && !strings.Contains(err.Error(), "longer than 255") {
			t.Errorf("Normalize(%d characters): %v; want the length named", len(ref), err)
		}
	}
	if got, err := Normalize(a(238)); err != nil || got != "docker.io/library/"+a(238)+":latest" {
		t.Errorf("Normalize(238 characters) = %q, %v", got, err)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"busybox", "foo/bar:1", "localhost:5000/x", "docker.io/library/busybox:latest",
		"busybox@sha256:" + digestOf(""), "[::1]:5000/a", "Example.com/a", "a:b:c", "a/b/c:d@sha256:x", "index.docker.io/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := Normalize(ref)
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("Normalize(%q): error %v does not wrap ErrInvalidReference", ref, err)
			}
			return
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", ref, n, n, again, err)
		}
		if !strings.Contains(n, "/") || !(strings.Contains(n[strings.LastIndex(n, "/"):], ":") || strings.Contains(n, "@")) {
			t.Fatalf("Normalize(%q) = %q: not a full reference", ref, n)
		}
	})
}

// Without a digest, Normalize agrees with docker's parser, except that it
// refuses a first component that looks like a host and is not one.
func FuzzNormalizeLikeDocker(f *testing.F) {
	for _, s := range []string{"busybox", "foo/bar:1", "localhost:5000/x", "[::1]:5000/a", "Example.com/a", "A/b", "a__b", "x.com:123456/y", "index.docker.io/x:y",
		strings.Repeat("a", 238), strings.Repeat("a", 248), "foo/" + strings.Repeat("a", 252)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if strings.Contains(ref, "@") {
			return
		}
		n, err := Normalize(ref)
		named, rerr := reference.ParseDockerRef(ref)
		if err != nil && rerr == nil && strings.Contains(err.Error(), "bad registry host") {
			// Docker takes "a_b.c/d" for a host and, that failing, for a
			// path without host: "a_b.c/d:latest", not under docker.io.
			// Refusing it is better.
			return
		}
		if (err == nil) != (rerr == nil) || (err == nil && n != named.String()) {
			t.Fatalf("Normalize(%q) = %q, %v; docker: %v, %v", ref, n, err, named, rerr)
		}
	})
}

// FuzzInspect feeds raw bytes, and (past the tar checksums that stop most
// raw mutations) archives built around fuzzed index.json and manifest.json.
func FuzzInspect(f *testing.F) {
	oci := ociEntries(f, map[string]string{annotationContainerdName: "busybox"})
	docker := dockerEntries(f, []string{"busybox:latest", "foo/bar:1"})
	index, manifest := oci[5].body, docker[4].body
	f.Add(tarball(f, oci...), index, manifest)
	f.Add(tarball(f, ociEntries(f, map[string]string{annotationRefName: "foo/bar:1"})...), `{"schemaVersion":2,"manifests":[{"digest":"sha256:`+digestOf(layerBody)+`","annotations":{"org.opencontainers.image.ref.name":"a/b"}}]}`, `[{"Config":"a/../b"}]`)
	f.Add(tarball(f, docker...), "", `[{"Config":"`+digestOf(configBody)+`.json","Layers":["l"],"RepoTags":["x"]}]`)
	f.Add(tarball(f, append(dockerEntries(f, []string{"x"}), entry{name: "a", typ: tar.TypeSymlink, link: "../b"})...), "{", "[")
	f.Add(tarball(f, entry{name: "x", body: "y"}), `{"schemaVersion":2,"manifests":[{"digest":"sha256:`+digestOf("")+`"}]}`, "")
	f.Add([]byte{}, "", "")
	f.Add([]byte{0x1f, 0x8b, 0, 0}, "null", "null")
	f.Fuzz(func(t *testing.T, raw []byte, index, manifest string) {
		check := func(data []byte) {
			info, err := Inspect(bytes.NewReader(data))
			if err != nil {
				if !errors.Is(err, ErrInvalidArchive) {
					t.Fatalf("error %v does not wrap ErrInvalidArchive", err)
				}
				return
			}
			if info.Format != FormatOCI && info.Format != FormatDocker {
				t.Fatalf("format %q", info.Format)
			}
			seen := map[string]bool{}
			for _, n := range info.Names {
				if nn, err := Normalize(n); err != nil || nn != n || seen[n] {
					t.Fatalf("name %q: not normalized or repeated (%q, %v)", n, nn, err)
				}
				seen[n] = true
			}
		}
		check(raw)
		es := slices.Clone(oci[:5])
		es = append(es, dockerEntries(t, nil)[:4]...)
		if index != "" {
			es = append(es, entry{name: "index.json", body: index}, oci[6])
		}
		if manifest != "" {
			es = append(es, entry{name: "manifest.json", body: manifest})
		}
		check(tarball(t, es...))
	})
}
