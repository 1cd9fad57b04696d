package testimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containercodes/cc/internal/testing/tartest"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, full, tag string }{
		{"cc-demo", "docker.io/library/cc-demo:latest", "latest"},
		{"cc-demo:v1", "docker.io/library/cc-demo:v1", "v1"},
		{"example.com/a/b:2", "example.com/a/b:2", "2"},
		{"docker.io/library/cc-demo:latest", "docker.io/library/cc-demo:latest", "latest"},
	} {
		full, tag, err := Normalize(c.in)
		if err != nil || full != c.full || tag != c.tag {
			t.Errorf("Normalize(%q) = %q, %q, %v; want %q, %q", c.in, full, tag, err, c.full, c.tag)
		}
	}
	if _, _, err := Normalize("not a reference"); err == nil {
		t.Error("Normalize accepted an invalid reference")
	}
}

func TestArchiveIsDeterministicAndNamed(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("no %s: %v", BusyboxPath, err)
	}
	a, err := BuildBusybox("cc-demo")
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildBusybox("docker.io/library/cc-demo:latest")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same name gave different bytes")
	}
	files := map[string][]byte{}
	for _, e := range tartest.Read(t, bytes.NewReader(a)) {
		files[e.Header.Name] = e.Content
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Fatal("no oci-layout")
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	m := idx.Manifests[0]
	if m.Annotations[AnnotationImageName] != "docker.io/library/cc-demo:latest" || m.Annotations[ocispec.AnnotationRefName] != "latest" {
		t.Fatalf("annotations %v", m.Annotations)
	}
	if _, ok := files["blobs/sha256/"+m.Digest.Encoded()]; !ok {
		t.Fatal("manifest blob missing")
	}
}

// TestImportAndRun imports the archive into a real containerd and runs
// busybox from it.
func TestImportAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs containerd")
	}
	const sock = "/run/containerd/containerd.sock"
	if _, err := os.Stat(sock); err != nil {
		t.Skipf("containerd is not running (%v); start it with scripts/prereqs.sh", err)
	}
	client, err := containerd.New(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	ns := "cc-test-" + hex.EncodeToString(rnd)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 2*time.Minute)
	defer cancel()

	archive, err := BuildBusybox("cc-testimage")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := client.Import(ctx, bytes.NewReader(archive))
	t.Cleanup(func() { cleanupNamespace(t, client, ns) })
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/cc-testimage:latest" {
		t.Fatalf("imported %v", imgs)
	}
	img := containerd.NewImage(client, imgs[0])
	if err := img.Unpack(ctx, ""); err != nil {
		t.Fatal(err)
	}

	id := "testimage-" + hex.EncodeToString(rnd)
	c, err := client.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("/bin/busybox", "echo", "hi")))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, io.Discard)))
	if err != nil {
		t.Fatal(err)
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-exit:
		if st.ExitCode() != 0 {
			t.Errorf("exit code %d", st.ExitCode())
		}
	case <-ctx.Done():
		t.Fatal("task did not exit")
	}
	task.IO().Wait()
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "hi" {
		t.Errorf("output %q, want hi", got)
	}
}

// cleanupNamespace removes everything the test put in namespace ns, then ns.
func cleanupNamespace(t *testing.T, client *containerd.Client, ns string) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	cs, _ := client.Containers(ctx)
	for _, c := range cs {
		if task, err := c.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Logf("cleanup: delete container %s: %v", c.ID(), err)
		}
	}
	imgs, _ := client.ImageService().List(ctx)
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := client.ImageService().Delete(ctx, img.Name, opts...); err != nil {
			t.Logf("cleanup: delete image %s: %v", img.Name, err)
		}
	}
	if err := client.NamespaceService().Delete(ctx, ns); err != nil {
		t.Logf("cleanup: delete namespace %s: %v", ns, err)
	}
	// runc leaves the namespace's parent cgroups behind.
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", c.Name(), ns))
	}
}
