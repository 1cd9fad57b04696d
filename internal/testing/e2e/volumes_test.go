package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func volumeMount(name, target string) *ccv1.Mount {
	return &ccv1.Mount{Type: "volume", Source: name, Target: target}
}

// withMounts is a busybox spec with mounts and no network (the tests are
// about files).
func withMounts(mounts []*ccv1.Mount, command ...string) *ccv1.ContainerSpec {
	s := busybox(command...)
	s.Network = ccv1.NetworkMode_NETWORK_MODE_NONE
	s.Mounts = mounts
	return s
}

// runToEnd runs a container to its exit and returns it and its logs.
func runToEnd(t *testing.T, cl *testcluster.Client, name string, spec *ccv1.ContainerSpec) (*ccv1.Container, string) {
	t.Helper()
	c := create(t, cl, name, "", spec)
	c = waitState(t, cl, c.Id, "exited", exited)
	return c, logsOf(t, cl, c.Id)
}

func createVolume(t *testing.T, cl *testcluster.Client, name, node string, size int64) *ccv1.Volume {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Volumes.CreateVolume(ctx, &ccv1.CreateVolumeRequest{Name: name, Node: node, SizeBytes: size})
	if err != nil {
		t.Fatalf("create volume %s: %v", name, err)
	}
	return r.Volume
}

// TestVolumes: a volume's data is written by one container and read by
// the next, kept across an agent restart and a service task's replacement;
// its size is enforced (ENOSPC); removal is refused while it is mounted,
// and its data goes from the node once it is removed. Bind mounts need an
// admin token and a path under the agent's --bind-mount-allow; tmpfs
// mounts have their size.
func TestVolumes(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	allowed := t.TempDir()
	agent := srv.StartAgent("node-v", testcluster.WithBindMountAllow(allowed))
	loadDemoImage(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	vol := createVolume(t, cl, "data", "", 16<<20)
	if vol.NodeId != agent.ID.NodeID || vol.SizeBytes != 16<<20 {
		t.Fatalf("volume %v: want it on the only node, 16 MiB", vol)
	}
	data := []*ccv1.Mount{volumeMount("data", "/data")}

	w, out := runToEnd(t, cl, "writer", withMounts(data, "/bin/busybox", "sh", "-c", "echo x > /data/f"))
	if w.Status.ExitCode != 0 {
		t.Fatalf("writer exited %d: %q", w.Status.ExitCode, out)
	}
	r, out := runToEnd(t, cl, "reader", withMounts(data, "/bin/busybox", "cat", "/data/f"))
	if r.Status.ExitCode != 0 || out != "x\n" {
		t.Errorf("reader exited %d with %q, want x", r.Status.ExitCode, out)
	}

	t.Run("REST", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/v1/volumes/data", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		resp, err := srv.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"size_bytes":"16777216"`) {
			t.Errorf("GET /v1/volumes/data: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("size enforced", func(t *testing.T) {
		c, out := runToEnd(t, cl, "filler", withMounts(data, "/bin/busybox", "dd", "if=/dev/zero", "of=/data/big", "bs=1M", "count=32"))
		if c.Status.ExitCode == 0 || !strings.Contains(out, "No space left on device") {
			t.Errorf("writing 32 MiB to a 16 MiB volume exited %d with %q, want ENOSPC", c.Status.ExitCode, out)
		}
		c, out = runToEnd(t, cl, "cleaner", withMounts(data, "/bin/busybox", "rm", "/data/big"))
		if c.Status.ExitCode != 0 {
			t.Errorf("rm /data/big: %q", out)
		}
	})

	t.Run("read-only mount", func(t *testing.T) {
		ro := []*ccv1.Mount{{Type: "volume", Source: "data", Target: "/data", ReadOnly: true}}
		c, out := runToEnd(t, cl, "ro-writer", withMounts(ro, "/bin/busybox", "touch", "/data/g"))
		if c.Status.ExitCode == 0 || !strings.Contains(out, "Read-only file system") {
			t.Errorf("touch on a read-only volume exited %d with %q", c.Status.ExitCode, out)
		}
	})

	t.Run("agent restart", func(t *testing.T) {
		// As after a reboot: the volume is not mounted when the agent
		// starts; the next container mounts it again.
		agent.Stop()
		if out, err := exec.Command("umount", filepath.Join(agent.StateDir(), "volumes", "data", "data")).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v: %s", err, out)
		}
		agent.Restart()
		c, out := runToEnd(t, cl, "after-restart", withMounts(data, "/bin/busybox", "cat", "/data/f"))
		if c.Status.ExitCode != 0 || out != "x\n" {
			t.Errorf("after an agent restart: exited %d with %q, want x", c.Status.ExitCode, out)
		}
	})

	t.Run("task replacement", func(t *testing.T) {
		spec := &ccv1.ServiceSpec{Replicas: 1, Task: withMounts(data, "/bin/busybox", "sh", "-c", "cat /data/f; echo $GEN >> /data/f; exec sleep 3600")}
		spec.Task.Env = []string{"GEN=one"}
		svc, err := cl.Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: "volsvc", Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		taskLogs := func(want string) {
			t.Helper()
			var got string
			if !waitFor(90*time.Second, func() bool {
				tasks, err := cl.Services.ListServiceTasks(ctx, &ccv1.ListServiceTasksRequest{Id: svc.Service.Id})
				if err != nil {
					return false
				}
				for _, task := range tasks.Tasks {
					if task.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING && running(task) {
						got, _ = tryLogs(cl, task.Id)
						return got == want
					}
				}
				return false
			}) {
				t.Fatalf("task logs %q, want %q", got, want)
			}
		}
		taskLogs("x\n")
		spec.Task.Env = []string{"GEN=two"}
		if _, err := cl.Services.UpdateService(ctx, &ccv1.UpdateServiceRequest{Id: svc.Service.Id, Spec: spec}); err != nil {
			t.Fatal(err)
		}
		taskLogs("x\none\n")

		_, err = cl.Volumes.RemoveVolume(ctx, &ccv1.RemoveVolumeRequest{Name: "data"})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "service volsvc") || !strings.Contains(err.Error(), "container writer") {
			t.Errorf("remove a volume in use: %v, want refused naming its users", err)
		}
		v, err := cl.Volumes.GetVolume(ctx, &ccv1.GetVolumeRequest{Name: "data"})
		if err != nil || !slices.Contains(v.Volume.UsedBy, "service volsvc") {
			t.Errorf("get volume: %v %v", v, err)
		}
		if _, err := cl.Services.RemoveService(ctx, &ccv1.RemoveServiceRequest{Id: svc.Service.Id}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bind and tmpfs", func(t *testing.T) {
		viewer, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "viewer"})
		if err != nil {
			t.Fatal(err)
		}
		vc := ccv1.NewContainerServiceClient(srv.Conn(viewer.Secret))
		bind := []*ccv1.Mount{{Type: "bind", Source: allowed, Target: "/host"}}
		_, err = vc.CreateContainer(ctx, &ccv1.CreateContainerRequest{Spec: withMounts(bind, "/bin/busybox", "true")})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("a bind mount from a viewer token: %v, want PermissionDenied", err)
		}
		if vs, err := ccv1.NewVolumeServiceClient(srv.Conn(viewer.Secret)).ListVolumes(ctx, &ccv1.ListVolumesRequest{}); err != nil || len(vs.Volumes) != 1 {
			t.Errorf("a viewer lists volumes: %v %v", vs, err)
		}

		c, out := runToEnd(t, cl, "binder", withMounts(bind, "/bin/busybox", "sh", "-c", "echo hi > /host/f"))
		if got, err := os.ReadFile(filepath.Join(allowed, "f")); c.Status.ExitCode != 0 || err != nil || string(got) != "hi\n" {
			t.Errorf("bind mount under the allowed prefix: exited %d (%q), host file %q %v", c.Status.ExitCode, out, got, err)
		}

		outside := []*ccv1.Mount{{Type: "bind", Source: t.TempDir(), Target: "/host"}}
		o := create(t, cl, "outsider", "", withMounts(outside, "/bin/busybox", "true"))
		o = waitState(t, cl, o.Id, "failed", failed)
		if !strings.Contains(o.Status.Error, "--bind-mount-allow") {
			t.Errorf("bind mount outside the allowed prefixes: error %q, want it to name --bind-mount-allow", o.Status.Error)
		}

		tmp := []*ccv1.Mount{{Type: "tmpfs", Target: "/scratch", TmpfsSizeBytes: 1 << 20}}
		c, out = runToEnd(t, cl, "tmpfs", withMounts(tmp, "/bin/busybox", "dd", "if=/dev/zero", "of=/scratch/big", "bs=1M", "count=2"))
		if c.Status.ExitCode == 0 || !strings.Contains(out, "No space left on device") {
			t.Errorf("2 MiB into a 1 MiB tmpfs exited %d with %q", c.Status.ExitCode, out)
		}
		_, err = cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Spec: withMounts([]*ccv1.Mount{{Type: "tmpfs", Target: "/s"}}, "true")})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "tmpfs-size") {
			t.Errorf("tmpfs without a size: %v", err)
		}
		_, err = cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Spec: withMounts([]*ccv1.Mount{volumeMount("nope", "/n")}, "true")})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("a volume that does not exist: %v", err)
		}
	})

	// Removed: every container, then the volume; its data leaves the node.
	list, err := cl.Containers.ListContainers(ctx, &ccv1.ListContainersRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Containers {
		remove(t, cl, c.Id)
	}
	if !waitFor(60*time.Second, func() bool {
		_, err := cl.Volumes.RemoveVolume(ctx, &ccv1.RemoveVolumeRequest{Name: "data"})
		return err == nil
	}) {
		t.Fatal("the volume could not be removed once unused")
	}
	dir := filepath.Join(agent.StateDir(), "volumes", "data")
	if !waitFor(60*time.Second, func() bool {
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	}) {
		t.Errorf("the node still keeps %s after the volume was removed", dir)
	}
}

// TestVolumePinsTasks: a task that mounts a volume runs on the volume's
// node; while that node is down, a replacement stays pending and says why.
func TestVolumePinsTasks(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("pin-a")
	b := srv.StartAgent("pin-b")
	loadDemoImage(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	createVolume(t, cl, "pinned", "pin-b", 8<<20)
	data := []*ccv1.Mount{volumeMount("pinned", "/data")}
	svc, err := cl.Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: "pinsvc",
		Spec: &ccv1.ServiceSpec{Replicas: 2, Task: withMounts(data, "/bin/busybox", "sleep", "3600")}})
	if err != nil {
		t.Fatal(err)
	}
	tasks := func() []*ccv1.Container {
		r, err := cl.Services.ListServiceTasks(ctx, &ccv1.ListServiceTasksRequest{Id: svc.Service.Id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Tasks
	}
	if !waitFor(90*time.Second, func() bool {
		n := 0
		for _, task := range tasks() {
			if running(task) && task.NodeId == b.ID.NodeID {
				n++
			}
		}
		return n == 2
	}) {
		t.Fatalf("tasks %v: want both on pin-b (spread would put one on pin-a)", tasks())
	}

	b.Stop()
	var reason string
	if !waitFor(90*time.Second, func() bool {
		for _, task := range tasks() {
			if task.PendingReason != "" {
				reason = task.PendingReason
			}
		}
		return strings.Contains(reason, "which is down")
	}) {
		t.Fatalf("pending reason %q, want one saying the volume's node is down", reason)
	}
	if !strings.Contains(reason, `volume data of "pinned" lives on node pin-b`) {
		t.Errorf("pending reason %q, want it to name the volume and its node", reason)
	}
	_, err = cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Spec: withMounts(data, "/bin/busybox", "true")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "which is down") {
		t.Errorf("run with a volume on a down node: %v", err)
	}
	if _, err := cl.Services.RemoveService(ctx, &ccv1.RemoveServiceRequest{Id: svc.Service.Id}); err != nil {
		t.Fatal(err)
	}
	b.Restart()
}
