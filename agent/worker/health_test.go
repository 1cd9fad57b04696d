package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const testImage = "docker.io/library/cc-worker-test:latest"

// poll gets container id until cond holds, and fails the test after a
// deadline, showing the last status seen.
func poll(t *testing.T, cl *testcluster.Client, id, what string, cond func(*ccv1.Container) bool) *ccv1.Container {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last *ccv1.Container
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		cancel()
		if err == nil {
			last = r.Container
			if cond(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: never %s; last status %v (err %v)", id, what, last.GetStatus(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func create(t *testing.T, cl *testcluster.Client, name string, spec *ccv1.ContainerSpec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: name, Spec: spec})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return r.Container.Id
}

func running(c *ccv1.Container) bool {
	return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
}

// TestHealthChecks runs containers with and without health checks on one
// agent and watches what the control plane sees.
func TestHealthChecks(t *testing.T) {
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("node-health")
	cl.LoadBusybox(t, testImage)

	spec := func(hc *ccv1.HealthCheck) *ccv1.ContainerSpec {
		return &ccv1.ContainerSpec{
			Image:   testImage,
			Command: []string{"/bin/busybox", "sleep", "300"},
			Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
			Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS,
			Health:  hc,
		}
	}
	check := func(argv ...string) *ccv1.HealthCheck {
		return &ccv1.HealthCheck{Exec: argv, Interval: durationpb.New(200 * time.Millisecond), Timeout: durationpb.New(5 * time.Second), Retries: 2}
	}
	healthy := create(t, cl, "healthy", spec(check("/bin/busybox", "true")))
	sick := create(t, cl, "sick", spec(check("/bin/sh", "-c", "echo sick; exit 1")))
	plain := create(t, cl, "plain", spec(nil))

	poll(t, cl, healthy, "running and healthy", func(c *ccv1.Container) bool {
		return running(c) && c.Status.Health == ccv1.HealthState_HEALTH_STATE_HEALTHY
	})

	// The sick one is reported unhealthy, with the check's output, then
	// stopped and restarted by its policy, its health starting over.
	var sawUnhealthy bool
	c := poll(t, cl, sick, "unhealthy, then restarted", func(c *ccv1.Container) bool {
		st := c.GetStatus()
		if st.GetHealth() == ccv1.HealthState_HEALTH_STATE_UNHEALTHY {
			if !strings.Contains(st.HealthOutput, "exit code 1: sick") {
				t.Errorf("health output %q", st.HealthOutput)
			}
			sawUnhealthy = true
		}
		return sawUnhealthy && st.GetRestartCount() >= 1
	})
	t.Logf("after the restart: %v", c.Status)

	c = poll(t, cl, plain, "running", running)
	if c.Status.Health != ccv1.HealthState_HEALTH_STATE_UNSPECIFIED || c.Status.HealthOutput != "" {
		t.Errorf("a container without a health check: %v", c.Status)
	}
	if c = poll(t, cl, healthy, "running", running); c.Status.RestartCount != 0 {
		t.Errorf("the healthy container was restarted: %v", c.Status)
	}
}
