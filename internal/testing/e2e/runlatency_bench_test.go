package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	ccruntime "github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/internal/testing/testcluster"
	"github.com/containercodes/cc/internal/testing/testimage"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// benchImage is the busybox image all three methods run.
const benchImage = "docker.io/library/cc-bench-run:latest"

// benchCmd is the command every run executes.
var benchCmd = []string{"/bin/busybox", "true"}

const (
	benchPoll    = 5 * time.Millisecond
	benchTimeout = 90 * time.Second // one run, one removal
)

// BenchmarkRunLatency compares the time to run `/bin/busybox true` (network
// none) through cc's API (one in-process control plane and agent), through
// the containerd client directly, and with `ctr run --rm`. The three methods
// are interleaved per iteration; medians in ms are reported, with the ratios
// of cc's exited time to the other two. bench/run-latency.sh runs it.
func BenchmarkRunLatency(b *testing.B) {
	testcluster.RequireContainerd(b)
	if _, err := exec.LookPath("ctr"); err != nil {
		b.Fatalf("ctr is not installed: %v", err)
	}
	archive, err := testimage.BuildBusybox(benchImage)
	if err != nil {
		b.Fatal(err)
	}

	// cc: control plane, one agent, image loaded through the API.
	srv := testcluster.Start(b)
	cl := srv.Client()
	agent := srv.StartAgent("bench-node")
	cl.LoadImage(b, archive)

	// containerd client and ctr: a namespace of their own with the same image.
	ns := benchNamespace(b, archive)

	var ccRun, ccExit, clRun, clExit, ctrExit []time.Duration
	// One untimed warm-up of each: the agent fetches the image on first use.
	benchCC(b, cl, agent, "bench-warmup")
	benchClient(b, ns, "bench-client-warmup")
	benchCtr(b, ns.name, "bench-ctr-warmup")

	for i := 0; b.Loop(); i++ {
		r, e := benchCC(b, cl, agent, fmt.Sprintf("bench-cc-%d", i))
		ccRun, ccExit = append(ccRun, r), append(ccExit, e)
		r, e = benchClient(b, ns, fmt.Sprintf("bench-client-%d", i))
		clRun, clExit = append(clRun, r), append(clExit, e)
		ctrExit = append(ctrExit, benchCtr(b, ns.name, fmt.Sprintf("bench-%d", i)))
	}

	ms := func(ds []time.Duration) float64 { return float64(benchMedian(ds)) / float64(time.Millisecond) }
	b.ReportMetric(ms(ccRun), "cc-running-ms")
	b.ReportMetric(ms(ccExit), "cc-exited-ms")
	b.ReportMetric(ms(clRun), "client-running-ms")
	b.ReportMetric(ms(clExit), "client-exited-ms")
	b.ReportMetric(ms(ctrExit), "ctr-exited-ms")
	b.ReportMetric(ms(ccExit)/ms(clExit), "cc/client-exited")
	b.ReportMetric(ms(ccExit)/ms(ctrExit), "cc/ctr-exited")
}

func benchMedian(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// benchCC runs one container through the API and returns the time from
// CreateContainer until its status is first seen RUNNING or later, and until
// it is seen EXITED. Removal is not timed.
func benchCC(b *testing.B, cl *testcluster.Client, agent *testcluster.Agent, name string) (running, exited time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	start := time.Now()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: name, Spec: &ccv1.ContainerSpec{
		Image: benchImage, Command: benchCmd, Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
	}})
	if err != nil {
		b.Fatalf("create %s: %v", name, err)
	}
	id := r.Container.Id
	var last *ccv1.Container
	for {
		g, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		if err != nil {
			b.Fatalf("get %s: %v (last: %v)", name, err, last)
		}
		last = g.Container
		st := last.GetStatus().GetState()
		now := time.Since(start)
		if st == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			b.Fatalf("container %s failed: %v", name, last.GetStatus())
		}
		if running == 0 && (st == ccv1.ContainerState_CONTAINER_STATE_RUNNING || st == ccv1.ContainerState_CONTAINER_STATE_EXITED) {
			running = now
		}
		if st == ccv1.ContainerState_CONTAINER_STATE_EXITED {
			exited = now
			break
		}
		time.Sleep(benchPoll)
	}
	if code := last.GetStatus().GetExitCode(); code != 0 {
		b.Fatalf("container %s exited %d", name, code)
	}

	b.StopTimer()
	defer b.StartTimer()
	if _, err := cl.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: id, Force: true}); err != nil {
		b.Fatalf("remove %s: %v", name, err)
	}
	for {
		obs, err := agent.Runtime.List(ctx)
		if err != nil {
			b.Fatalf("list the agent's containers: %v", err)
		}
		if !slices.ContainsFunc(obs, func(o ccruntime.Observed) bool { return o.ID == id }) {
			return running, exited
		}
		select {
		case <-ctx.Done():
			b.Fatalf("the agent still has container %s", name)
		case <-time.After(benchPoll):
		}
	}
}

// benchNS is the containerd namespace of the direct methods.
type benchNS struct {
	name   string
	client *containerd.Client
	image  containerd.Image
}

func (n *benchNS) ctx(parent context.Context) context.Context {
	return namespaces.WithNamespace(parent, n.name)
}

// benchNamespace imports the image into a fresh containerd namespace,
// unpacked for overlayfs, and removes the namespace with everything in it
// when the benchmark ends.
func benchNamespace(b *testing.B, archive []byte) *benchNS {
	b.Helper()
	client, err := containerd.New(testcluster.ContainerdSocket)
	if err != nil {
		b.Fatal(err)
	}
	n := &benchNS{name: fmt.Sprintf("cc-bench-%d", time.Now().UnixNano()), client: client}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := benchPurge(n.ctx(ctx), n); err != nil {
			b.Errorf("clean up namespace %s: %v", n.name, err)
		}
		client.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	imgs, err := client.Import(n.ctx(ctx), bytes.NewReader(archive))
	if err != nil {
		b.Fatalf("import: %v", err)
	}
	var found *images.Image
	for i := range imgs {
		if imgs[i].Name == benchImage {
			found = &imgs[i]
		}
	}
	if found == nil {
		b.Fatalf("import gave %v, not %s", imgs, benchImage)
	}
	n.image = containerd.NewImage(client, *found)
	if err := n.image.Unpack(n.ctx(ctx), "overlayfs"); err != nil {
		b.Fatalf("unpack: %v", err)
	}
	return n
}

// benchPurge removes the namespace's containers, images (and so, through
// the garbage collector, content and snapshots), the namespace and the
// cgroups runc left for it.
func benchPurge(ctx context.Context, n *benchNS) error {
	var errs []error
	cs, err := n.client.Containers(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if t, err := c.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	imgs, err := n.client.ImageService().List(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := n.client.ImageService().Delete(ctx, img.Name, opts...); err != nil {
			errs = append(errs, err)
		}
	}
	// Snapshots no image references any more (the GC removes them; this
	// catches any it kept).
	sn := n.client.SnapshotService("overlayfs")
	for range 3 {
		var keys []string
		_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			keys = append(keys, info.Name)
			return nil
		})
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			_ = sn.Remove(ctx, k) // a parent fails until its child is gone
		}
	}
	if err := n.client.NamespaceService().Delete(ctx, n.name); err != nil {
		errs = append(errs, fmt.Errorf("delete namespace: %w", err))
	}
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		p := filepath.Join("/sys/fs/cgroup", c.Name(), n.name)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			err := os.Remove(p)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// benchClient runs one container with the containerd client and returns the
// time until its task is started and until it has exited. Deletion is not
// timed.
func benchClient(b *testing.B, n *benchNS, id string) (running, exited time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	ctx = n.ctx(ctx)
	start := time.Now()
	c, err := n.client.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id, n.image),
		containerd.WithNewSpec(oci.WithImageConfig(n.image), oci.WithProcessArgs(benchCmd...)),
	)
	if err != nil {
		b.Fatalf("client: new container: %v", err)
	}
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		b.Fatalf("client: new task: %v", err)
	}
	waitC, err := task.Wait(ctx)
	if err != nil {
		b.Fatalf("client: wait: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		b.Fatalf("client: start: %v", err)
	}
	running = time.Since(start)
	st := <-waitC
	exited = time.Since(start)
	if code, _, err := st.Result(); err != nil || code != 0 {
		b.Fatalf("client: exit %d, %v", code, err)
	}

	b.StopTimer()
	defer b.StartTimer()
	if _, err := task.Delete(ctx); err != nil {
		b.Fatalf("client: delete task: %v", err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		b.Fatalf("client: delete container: %v", err)
	}
	return running, exited
}

// benchCtr runs `ctr run --rm` and returns the time until ctr exits.
func benchCtr(b *testing.B, ns, id string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	args := append([]string{"-n", ns, "run", "--rm", benchImage, id}, benchCmd...)
	cmd := exec.CommandContext(ctx, "ctr", args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return d
}
