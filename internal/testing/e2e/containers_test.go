package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// busybox is a spec running the demo image with command.
func busybox(command ...string) *ccv1.ContainerSpec {
	return &ccv1.ContainerSpec{Image: demoImage, Command: command}
}

// create records a container (on node, when not empty).
func create(t *testing.T, cl *testcluster.Client, name, node string, spec *ccv1.ContainerSpec) *ccv1.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: name, Node: node, Spec: spec})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return r.Container
}

func remove(t *testing.T, cl *testcluster.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: id, Force: true}); err != nil {
		t.Fatalf("remove %s: %v", id, err)
	}
}

func get(t *testing.T, cl *testcluster.Client, id string) *ccv1.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return r.Container
}

// pollState polls a container until cond holds or timeout passes; it
// returns the last container seen.
func pollState(cl *testcluster.Client, id string, timeout time.Duration, cond func(*ccv1.Container) bool) (*ccv1.Container, bool) {
	var last *ccv1.Container
	ok := waitFor(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		if err != nil {
			return false
		}
		last = r.Container
		return cond(last)
	})
	return last, ok
}

func running(c *ccv1.Container) bool {
	return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
}

func failed(c *ccv1.Container) bool {
	return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED
}

// httpGet fetches url without keep-alives or proxies.
func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// TestContainers runs containers with various specs on one agent.
func TestContainers(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("node-c")
	loadDemoImage(t, cl)

	// The subtests share the agent and run in parallel.
	t.Run("group", func(t *testing.T) {
		t.Run("oom killed", func(t *testing.T) {
			t.Parallel()
			spec := busybox("/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
			spec.Resources = &ccv1.ContainerResources{MemoryBytes: 16 << 20}
			c := create(t, cl, "oom", "", spec)
			c = waitState(t, cl, c.Id, "exited", exited)
			if !c.Status.OomKilled {
				t.Errorf("oom_killed false; status %v", c.Status)
			}
			if c.Status.ExitCode == 0 {
				t.Errorf("an OOM-killed container exited 0")
			}
		})

		t.Run("read-only root", func(t *testing.T) {
			t.Parallel()
			ro := busybox("/bin/busybox", "touch", "/x")
			ro.ReadOnly = true
			roC := create(t, cl, "ro", "", ro)
			rwC := create(t, cl, "rw", "", busybox("/bin/busybox", "touch", "/x"))
			roC = waitState(t, cl, roC.Id, "exited", exited)
			rwC = waitState(t, cl, rwC.Id, "exited", exited)
			if roC.Status.ExitCode == 0 {
				t.Errorf("touch /x on a read-only root exited 0")
			}
			if got := logsOf(t, cl, roC.Id); !strings.Contains(got, "Read-only file system") {
				t.Errorf("read-only touch logs %q, want a read-only file system error", got)
			}
			if rwC.Status.ExitCode != 0 {
				t.Errorf("touch /x on a writable root exited %d; logs %q", rwC.Status.ExitCode, logsOf(t, cl, rwC.Id))
			}
		})

		t.Run("network none", func(t *testing.T) {
			t.Parallel()
			spec := busybox("/bin/busybox", "sh", "-c", "ip -o link; echo routes:; ip route")
			spec.Network = ccv1.NetworkMode_NETWORK_MODE_NONE
			c := create(t, cl, "nonet", "", spec)
			c = waitState(t, cl, c.Id, "exited", exited)
			out := logsOf(t, cl, c.Id)
			if c.Status.ExitCode != 0 {
				t.Fatalf("exit code %d; logs %q", c.Status.ExitCode, out)
			}
			links, routes, ok := strings.Cut(out, "routes:\n")
			if !ok {
				t.Fatalf("logs %q lack the marker", out)
			}
			var names []string
			for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
				// "1: lo: <LOOPBACK,UP,LOWER_UP> mtu ..."
				f := strings.Fields(line)
				if len(f) < 2 {
					t.Fatalf("unexpected ip -o link line %q", line)
				}
				names = append(names, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
			}
			if !slices.Equal(names, []string{"lo"}) {
				t.Errorf("links %v, want only lo; logs %q", names, out)
			}
			if strings.TrimSpace(routes) != "" {
				t.Errorf("routes %q, want none", routes)
			}
			if strings.Contains(out, "eth0") || strings.Contains(out, "default") {
				t.Errorf("logs mention eth0 or a default route: %q", out)
			}
		})

		t.Run("published port", func(t *testing.T) {
			t.Parallel()
			_, portStr, _ := net.SplitHostPort(freePorts(t, 1)[0])
			port, err := strconv.Atoi(portStr)
			if err != nil {
				t.Fatal(err)
			}
			spec := busybox("/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
			spec.Ports = []*ccv1.PortMapping{{HostPort: int32(port), ContainerPort: 8080}}
			c := create(t, cl, "web", "", spec)
			waitState(t, cl, c.Id, "running", running)
			url := fmt.Sprintf("http://127.0.0.1:%d/passwd", port)
			var code int
			var body string
			if !waitFor(60*time.Second, func() bool {
				code, body, err = httpGet(url)
				return err == nil && code == http.StatusOK
			}) {
				t.Fatalf("GET %s never answered 200: code %d, err %v", url, code, err)
			}
			if !strings.Contains(body, "root:") {
				t.Errorf("GET %s: body %q, want the image's /etc/passwd", url, body)
			}
			remove(t, cl, c.Id)
			if !waitFor(60*time.Second, func() bool {
				code, _, err = httpGet(url)
				return err != nil
			}) {
				t.Errorf("GET %s still answers (%d) after the container was removed", url, code)
			}
		})

		t.Run("stop and start", func(t *testing.T) {
			t.Parallel()
			c := create(t, cl, "sleeper", "", busybox("/bin/busybox", "sleep", "3600"))
			c = waitState(t, cl, c.Id, "running", running)
			gen, started := c.Generation, c.Status.StartedAt.AsTime()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cl.Containers.StopContainer(ctx, &ccv1.StopContainerRequest{Id: c.Id, Timeout: durationpb.New(time.Second)}); err != nil {
				t.Fatalf("stop: %v", err)
			}
			// Not fatal: go on to check that it starts again.
			if last, ok := pollState(cl, c.Id, 30*time.Second, exited); !ok {
				t.Errorf("a stopped container never reported EXITED; last: generation %d, desired %v, status %v", last.GetGeneration(), last.GetDesired(), last.GetStatus())
			}
			c = get(t, cl, c.Id)
			if c.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED {
				t.Errorf("desired %v after stop, want STOPPED", c.Desired)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cl.Containers.StartContainer(ctx, &ccv1.StartContainerRequest{Id: c.Id}); err != nil {
				t.Fatalf("start: %v", err)
			}
			c = waitState(t, cl, c.Id, "running again", func(c *ccv1.Container) bool { return running(c) && c.Generation > gen })
			if !c.Status.StartedAt.AsTime().After(started) {
				t.Errorf("started_at %v after start, not later than the first start %v", c.Status.StartedAt.AsTime(), started)
			}
			if c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING {
				t.Errorf("desired %v after start, want RUNNING", c.Desired)
			}
		})

		t.Run("restart on failure", func(t *testing.T) {
			t.Parallel()
			spec := busybox("/bin/busybox", "sh", "-c", "exit 1")
			spec.Restart = ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE
			c := create(t, cl, "flaky", "", spec)
			waitState(t, cl, c.Id, "restarted twice", func(c *ccv1.Container) bool { return c.GetStatus().GetRestartCount() >= 2 })
			remove(t, cl, c.Id)
		})

		t.Run("restart no", func(t *testing.T) {
			t.Parallel()
			spec := busybox("/bin/busybox", "sh", "-c", "exit 1")
			spec.Restart = ccv1.RestartPolicy_RESTART_POLICY_NO
			c := create(t, cl, "once", "", spec)
			c = waitState(t, cl, c.Id, "exited", exited)
			if c.Status.ExitCode != 1 {
				t.Errorf("exit code %d, want 1", c.Status.ExitCode)
			}
			started := c.Status.StartedAt.AsTime()
			// Past the first backoff (1s): it must never be started again.
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				c = get(t, cl, c.Id)
				if !exited(c) || c.Status.RestartCount != 0 || !c.Status.StartedAt.AsTime().Equal(started) {
					t.Fatalf("a restart-no container changed after exiting: %v", c.Status)
				}
			}
		})

		t.Run("image loaded under a new name", func(t *testing.T) {
			t.Parallel()
			const name = "docker.io/library/cc-e2e-fresh:v2"
			img := cl.LoadBusybox(t, "cc-e2e-fresh:v2")
			if !slices.Contains(img.Names, name) {
				t.Errorf("loaded image names %v, want %s", img.Names, name)
			}
			c := create(t, cl, "fresh", "", &ccv1.ContainerSpec{Image: "cc-e2e-fresh:v2", Command: []string{"/bin/busybox", "echo", "fresh"}})
			if c.ImageDigest != img.Digest {
				t.Errorf("container image digest %q, want the loaded %q", c.ImageDigest, img.Digest)
			}
			c = waitState(t, cl, c.Id, "exited", exited)
			if c.Status.ExitCode != 0 {
				t.Errorf("exit code %d, want 0", c.Status.ExitCode)
			}
			if got := logsOf(t, cl, c.Id); got != "fresh\n" {
				t.Errorf("logs %q, want %q", got, "fresh\n")
			}
		})

		t.Run("image neither loaded nor pullable", func(t *testing.T) {
			t.Parallel()
			const ref = "127.0.0.1:1/nope:latest"
			c := create(t, cl, "nope", "", &ccv1.ContainerSpec{Image: ref, Command: []string{"/bin/true"}})
			c = waitState(t, cl, c.Id, "failed", func(c *ccv1.Container) bool { return failed(c) || exited(c) || running(c) })
			if !failed(c) {
				t.Fatalf("state %v, want FAILED", c.Status.State)
			}
			if !strings.Contains(c.Status.Error, ref) {
				t.Errorf("error %q does not name the image %s", c.Status.Error, ref)
			}
		})
	})
}

// TestPlacementOnNamedNode places containers on a node by name and by id.
func TestPlacementOnNamedNode(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	a := srv.StartAgent("a")
	b := srv.StartAgent("b")
	loadDemoImage(t, cl)

	// Loopback only: the test is about placement, not the nodes' bridges.
	sleeper := func() *ccv1.ContainerSpec {
		s := busybox("/bin/busybox", "sleep", "3600")
		s.Network = ccv1.NetworkMode_NETWORK_MODE_NONE
		return s
	}
	onB := create(t, cl, "on-b", "b", sleeper())
	onA := create(t, cl, "on-a", a.ID.NodeID, sleeper())
	if onB.NodeId != b.ID.NodeID {
		t.Errorf("--node b placed on %s, want b (%s)", onB.NodeId, b.ID.NodeID)
	}
	if onA.NodeId != a.ID.NodeID {
		t.Errorf("--node <id of a> placed on %s, want a (%s)", onA.NodeId, a.ID.NodeID)
	}
	waitState(t, cl, onB.Id, "running", running)
	waitState(t, cl, onA.Id, "running", running)

	ids := func(node string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		r, err := cl.Containers.ListContainers(ctx, &ccv1.ListContainersRequest{Node: node})
		if err != nil {
			t.Fatalf("list --node %s: %v", node, err)
		}
		var out []string
		for _, c := range r.Containers {
			out = append(out, c.Id)
		}
		return out
	}
	for _, node := range []string{"b", b.ID.NodeID} {
		if got := ids(node); !slices.Equal(got, []string{onB.Id}) {
			t.Errorf("list --node %s: %v, want [%s]", node, got, onB.Id)
		}
	}
	if got := ids("a"); !slices.Equal(got, []string{onA.Id}) {
		t.Errorf("list --node a: %v, want [%s]", got, onA.Id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := cl.Containers.ListContainers(ctx, &ccv1.ListContainersRequest{Node: "nosuchnode"}); status.Code(err) != codes.NotFound {
		t.Errorf("list --node nosuchnode: %v, want NotFound", err)
	}

	// Each container runs in its own node's containerd namespace.
	for _, x := range []struct {
		agent *testcluster.Agent
		want  string
	}{{a, onA.Id}, {b, onB.Id}} {
		list, err := x.agent.Runtime.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range list {
			got = append(got, o.ID)
		}
		if !slices.Equal(got, []string{x.want}) {
			t.Errorf("agent %s runs %v, want [%s]", x.agent.Name, got, x.want)
		}
	}
}
