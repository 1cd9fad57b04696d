package e2e

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const demoImage = "docker.io/library/cc-e2e:latest"

// loadDemoImage builds the busybox test image and loads it into the cluster.
func loadDemoImage(t *testing.T, cl *testcluster.Client) { cl.LoadBusybox(t, demoImage) }

// waitState polls a container until cond holds.
func waitState(t *testing.T, cl *testcluster.Client, id string, what string, cond func(*ccv1.Container) bool) *ccv1.Container {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last *ccv1.Container
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		cancel()
		if err == nil {
			last = r.Container
			if cond(last) {
				return last
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("container %s never became %s; last: %v", id, what, last)
	return nil
}

func exited(c *ccv1.Container) bool {
	return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_EXITED
}

func logsOf(t *testing.T, cl *testcluster.Client, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := cl.Containers.ContainerLogs(ctx, &ccv1.ContainerLogsRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return buf.String()
		}
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		buf.Write(m.Data)
	}
}

func TestRunLogsExitCode(t *testing.T) {
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("node-a")
	loadDemoImage(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: "hello", Spec: &ccv1.ContainerSpec{
		Image: demoImage, Command: []string{"/bin/busybox", "sh", "-c", "echo hello; exit 3"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := waitState(t, cl, r.Container.Id, "exited", exited)
	if c.Status.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", c.Status.ExitCode)
	}
	if got := logsOf(t, cl, "hello"); got != "hello\n" {
		t.Errorf("logs = %q, want %q", got, "hello\n")
	}
}
