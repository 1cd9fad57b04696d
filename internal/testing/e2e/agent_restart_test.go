package e2e

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// tryLogs fetches a container's logs; it fails while the node is not
// connected.
func tryLogs(cl *testcluster.Client, id string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cl.Containers.ContainerLogs(ctx, &ccv1.ContainerLogsRequest{Id: id})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		m, err := st.Recv()
		if err != nil {
			if err == io.EOF {
				return b.String(), nil
			}
			return b.String(), err
		}
		b.Write(m.Data)
	}
}

// ticksAbove counts the "tick" lines in a container's logs, polling until they
// can be read and there are more than after.
func ticksAbove(t *testing.T, cl *testcluster.Client, id string, after int) int {
	t.Helper()
	var n int
	var err error
	if !waitFor(60*time.Second, func() bool {
		var out string
		out, err = tryLogs(cl, id)
		n = strings.Count(out, "tick\n")
		return err == nil && n > after
	}) {
		t.Fatalf("logs of %s never grew past %d tick lines (last %d, err %v)", id, after, n, err)
	}
	return n
}

// taskStatus reads a container's task status straight from containerd.
func taskStatus(t *testing.T, client *containerd.Client, id string) containerd.ProcessStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("containerd: load %s: %v", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("containerd: task of %s: %v", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		t.Fatalf("containerd: status of %s: %v", id, err)
	}
	return st.Status
}

// TestAgentDowntime: containers keep running while their agent is down and
// are adopted, not restarted, when it comes back; a container removed
// meanwhile is removed then.
func TestAgentDowntime(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	agent := srv.StartAgent("node-r")
	loadDemoImage(t, cl)

	ticker := create(t, cl, "ticker", "", busybox("/bin/busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done"))
	doomed := create(t, cl, "doomed", "", busybox("/bin/busybox", "sleep", "3600"))
	ticker = waitState(t, cl, ticker.Id, "running", running)
	waitState(t, cl, doomed.Id, "running", running)
	started := ticker.Status.StartedAt.AsTime()
	n0 := ticksAbove(t, cl, ticker.Id, 0)

	ns := agent.Runtime.Namespace()
	agent.Stop()

	client, err := containerd.New(testcluster.ContainerdSocket, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, id := range []string{ticker.Id, doomed.Id} {
		if st := taskStatus(t, client, id); st != containerd.Running {
			t.Errorf("with the agent down, container %s is %s, want running", id, st)
		}
	}

	// The record goes at once, even with its agent down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: doomed.Id, Force: true}); err != nil {
		t.Fatalf("remove while the agent is down: %v", err)
	}
	if _, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: doomed.Id}); status.Code(err) != codes.NotFound {
		t.Errorf("get a removed container: %v, want NotFound", err)
	}

	agent.Restart()

	t.Run("removed container is removed", func(t *testing.T) {
		var ids []string
		if !waitFor(60*time.Second, func() bool {
			list, err := agent.Runtime.List(ctx)
			if err != nil {
				return false
			}
			ids = ids[:0]
			gone := true
			for _, o := range list {
				ids = append(ids, o.ID)
				if o.ID == doomed.Id {
					gone = false
				}
			}
			return gone
		}) {
			t.Errorf("the restarted agent still runs the removed container; it lists %v", ids)
		}
	})

	t.Run("running container is adopted", func(t *testing.T) {
		// The logger kept writing while the agent was down; the
		// restarted agent serves logs that keep growing.
		n1 := ticksAbove(t, cl, ticker.Id, n0)
		ticksAbove(t, cl, ticker.Id, n1)
		// The restarted agent reported at connect (logs flow over the
		// same session); the status must say: same process, never
		// restarted, for a while.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			c := get(t, cl, ticker.Id)
			if !running(c) || !c.Status.StartedAt.AsTime().Equal(started) || c.Status.RestartCount != 0 {
				t.Fatalf("after the agent restart: state %v, started_at %v (was %v), restart_count %d; want the same running process",
					c.Status.State, c.Status.StartedAt.AsTime(), started, c.Status.RestartCount)
			}
		}
		list, err := agent.Runtime.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list {
			if o.ID == ticker.Id && (!o.StartedAt.Equal(started) || o.State != ccv1.ContainerState_CONTAINER_STATE_RUNNING) {
				t.Errorf("containerd: ticker %v started at %v, want running since %v", o.State, o.StartedAt, started)
			}
		}
	})
}
