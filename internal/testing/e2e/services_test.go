package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func createService(t *testing.T, cl *testcluster.Client, name string, spec *ccv1.ServiceSpec) *ccv1.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: name, Spec: spec})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	return r.Service
}

func serviceTasks(t *testing.T, cl *testcluster.Client, name string, all bool) []*ccv1.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cl.Services.ListServiceTasks(ctx, &ccv1.ListServiceTasksRequest{Id: name, All: all})
	if err != nil {
		t.Fatalf("service ps %s: %v", name, err)
	}
	return r.Tasks
}

func getService(t *testing.T, cl *testcluster.Client, name string) *ccv1.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := cl.Services.GetService(ctx, &ccv1.GetServiceRequest{Id: name})
	if err != nil {
		t.Fatalf("service inspect %s: %v", name, err)
	}
	return r.Service
}

// waitTasks polls a service's current tasks until cond holds.
func waitTasks(t *testing.T, cl *testcluster.Client, name, what string, cond func([]*ccv1.Container) bool) []*ccv1.Container {
	t.Helper()
	var last []*ccv1.Container
	if !waitFor(60*time.Second, func() bool {
		last = serviceTasks(t, cl, name, false)
		return cond(last)
	}) {
		t.Fatalf("service %s: %s did not happen; tasks now:\n%s", name, what, describeTasks(last))
	}
	return last
}

func describeTasks(ts []*ccv1.Container) string {
	var b strings.Builder
	for _, c := range ts {
		fmt.Fprintf(&b, "  %s node=%s v%d desired=%v state=%v restarts=%d health=%v pending=%q msg=%q err=%q\n", c.Name, c.NodeId, c.ServiceVersion, c.Desired,
			c.GetStatus().GetState(), c.GetStatus().GetRestartCount(), c.GetStatus().GetHealth(), c.PendingReason, c.Message, c.GetStatus().GetError())
	}
	return b.String()
}

// runningOn counts running tasks per node id; ok is false when a task is
// not running.
func runningOn(ts []*ccv1.Container) (map[string]int, bool) {
	per := map[string]int{}
	for _, c := range ts {
		if !running(c) {
			return per, false
		}
		per[c.NodeId]++
	}
	return per, true
}

// TestServices drives a replicated service on two real agents through
// placement, a killed container, drain, scale, a lost node and a failed
// update that rolls back by itself.
func TestServices(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	a := srv.StartAgent("svc-a")
	b := srv.StartAgent("svc-b")
	loadDemoImage(t, cl)
	nodeA, nodeB := a.ID.NodeID, b.ID.NodeID

	createService(t, cl, "web", &ccv1.ServiceSpec{
		Replicas: 4,
		Task: &ccv1.ContainerSpec{Image: demoImage, Command: []string{"/bin/busybox", "sleep", "3600"},
			StopGracePeriod: durationpb.New(time.Second)},
		Update: &ccv1.UpdateConfig{Monitor: durationpb.New(500 * time.Millisecond), FailureAction: ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK},
	})
	tasks := waitTasks(t, cl, "web", "4 running tasks, 2 per node", func(ts []*ccv1.Container) bool {
		per, ok := runningOn(ts)
		return ok && len(ts) == 4 && per[nodeA] == 2 && per[nodeB] == 2
	})

	t.Run("a killed container is restarted", func(t *testing.T) {
		victim := tasks[0]
		agent := a
		if victim.NodeId == nodeB {
			agent = b
		}
		ctx := namespaces.WithNamespace(context.Background(), agent.Runtime.Namespace())
		ctr, err := agent.Runtime.Client().LoadContainer(ctx, victim.Id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitTasks(t, cl, "web", "the killed task running again", func(ts []*ccv1.Container) bool {
			for _, c := range ts {
				if c.Id == victim.Id {
					return running(c) && c.Status.RestartCount >= 1
				}
			}
			return false
		})
	})

	t.Run("drain moves the tasks, activate and scale", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cl.Nodes.UpdateNode(ctx, &ccv1.UpdateNodeRequest{Id: "svc-a", Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN}); err != nil {
			t.Fatal(err)
		}
		waitTasks(t, cl, "web", "all 4 tasks on svc-b", func(ts []*ccv1.Container) bool {
			per, ok := runningOn(ts)
			return ok && len(ts) == 4 && per[nodeB] == 4
		})
		// Nothing of the service keeps running on the drained node.
		if !waitFor(30*time.Second, func() bool { return runningContainers(t, a) == 0 }) {
			t.Errorf("svc-a still runs %d containers after the drain", runningContainers(t, a))
		}
		if _, err := cl.Nodes.UpdateNode(ctx, &ccv1.UpdateNodeRequest{Id: "svc-a", Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Services.ScaleService(ctx, &ccv1.ScaleServiceRequest{Id: "web", Replicas: 1}); err != nil {
			t.Fatal(err)
		}
		waitTasks(t, cl, "web", "one task left", func(ts []*ccv1.Container) bool {
			_, ok := runningOn(ts)
			return ok && len(ts) == 1
		})
		if !waitFor(30*time.Second, func() bool { return runningContainers(t, a)+runningContainers(t, b) == 1 }) {
			t.Errorf("after scaling to 1 the nodes run %d + %d containers", runningContainers(t, a), runningContainers(t, b))
		}
	})

	t.Run("a lost node's task moves, and is not duplicated when it returns", func(t *testing.T) {
		ts := serviceTasks(t, cl, "web", false)
		lost, keep := b, a
		if ts[0].NodeId == nodeA {
			lost, keep = a, b
		}
		old := ts[0]
		lost.Stop()
		moved := waitTasks(t, cl, "web", "the task running on the other node", func(ts []*ccv1.Container) bool {
			return len(ts) == 1 && running(ts[0]) && ts[0].NodeId == keep.ID.NodeID
		})
		if moved[0].Id == old.Id {
			t.Fatal("the task kept its id on another node")
		}
		hist := serviceTasks(t, cl, "web", true)
		for _, c := range hist {
			if c.Id == old.Id && (c.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED || !strings.Contains(c.Message, "down")) {
				t.Errorf("the lost task is %v with message %q, want stopped because its node is down", c.Desired, c.Message)
			}
		}
		lost.Restart()
		// The returning agent stops the superseded task: one container runs
		// in the whole cluster.
		if !waitFor(30*time.Second, func() bool { return runningContainers(t, lost) == 0 }) {
			t.Errorf("the returned node still runs %d containers", runningContainers(t, lost))
		}
		if n := runningContainers(t, keep); n != 1 {
			t.Errorf("the other node runs %d containers, want 1", n)
		}
	})

	t.Run("an update with a failing health check rolls back by itself", func(t *testing.T) {
		before := getService(t, cl, "web")
		spec := before.Spec
		spec.Replicas = 2
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cl.Services.ScaleService(ctx, &ccv1.ScaleServiceRequest{Id: "web", Replicas: 2}); err != nil {
			t.Fatal(err)
		}
		waitTasks(t, cl, "web", "2 running tasks", func(ts []*ccv1.Container) bool {
			_, ok := runningOn(ts)
			return ok && len(ts) == 2
		})
		good := getService(t, cl, "web")
		bad := good.Spec
		bad.Task.Health = &ccv1.HealthCheck{Exec: []string{"/bin/busybox", "false"}, Interval: durationpb.New(200 * time.Millisecond), Retries: 2}
		if _, err := cl.Services.UpdateService(ctx, &ccv1.UpdateServiceRequest{Id: "web", Spec: bad, Version: good.Version}); err != nil {
			t.Fatal(err)
		}
		var svc *ccv1.Service
		if !waitFor(90*time.Second, func() bool {
			svc = getService(t, cl, "web")
			return svc.GetUpdate().GetState() == ccv1.UpdateState_UPDATE_STATE_ROLLED_BACK
		}) {
			t.Fatalf("no rollback: update %v; tasks:\n%s", svc.GetUpdate(), describeTasks(serviceTasks(t, cl, "web", true)))
		}
		if svc.Spec.Task.Health != nil {
			t.Errorf("after the rollback the spec still has the bad health check")
		}
		if !strings.Contains(svc.Update.Message, "unhealthy") && !strings.Contains(svc.Update.Message, "restarted") {
			t.Errorf("rollback message %q does not say why", svc.Update.Message)
		}
		waitTasks(t, cl, "web", "2 running tasks of the restored spec", func(ts []*ccv1.Container) bool {
			_, ok := runningOn(ts)
			if !ok || len(ts) != 2 {
				return false
			}
			for _, c := range ts {
				if c.ServiceVersion != svc.Version || c.Spec.Health != nil {
					return false
				}
			}
			return true
		})
	})
}

// TestServicePendingUntilCapacity: a service larger than every node waits
// with the reason, and runs as soon as a node that fits joins.
func TestServicePendingUntilCapacity(t *testing.T) {
	skipShort(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("small")
	loadDemoImage(t, cl)
	createService(t, cl, "big", &ccv1.ServiceSpec{
		Replicas: 1,
		Task: &ccv1.ContainerSpec{Image: demoImage, Command: []string{"/bin/sh", "-c", "echo ready; exec /bin/busybox sleep 3600"},
			Resources: &ccv1.ContainerResources{MemoryBytes: 6 << 30, MemoryReservationBytes: 6 << 30}},
	})
	ts := waitTasks(t, cl, "big", "a pending reason", func(ts []*ccv1.Container) bool {
		return len(ts) == 1 && ts[0].NodeId == "" && ts[0].PendingReason != ""
	})
	if r := ts[0].PendingReason; !strings.Contains(r, "memory") || !strings.Contains(r, "6.0 GiB") {
		t.Errorf("pending reason %q does not name memory and the need", r)
	}
	large := srv.StartAgent("large", testcluster.WithResources(4000, 16<<30))
	ts = waitTasks(t, cl, "big", "the task running on the large node", func(ts []*ccv1.Container) bool {
		return len(ts) == 1 && running(ts[0]) && ts[0].NodeId == large.ID.NodeID
	})

	// service logs: each chunk names its task.
	var got string
	if !waitFor(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		st, err := cl.Services.ServiceLogs(ctx, &ccv1.ServiceLogsRequest{Id: "big"})
		if err != nil {
			return false
		}
		got = ""
		for {
			m, err := st.Recv()
			if err != nil {
				break
			}
			got += m.Task + "|" + string(m.Data)
		}
		return strings.Contains(got, ts[0].Name+"|ready")
	}) {
		t.Errorf("service logs %q, want %q", got, ts[0].Name+"|ready")
	}
}

// runningContainers counts the running containers an agent's runtime sees.
func runningContainers(t *testing.T, a *testcluster.Agent) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	list, err := a.Runtime.List(ctx)
	if err != nil {
		t.Fatalf("list containers of %s: %v", a.Name, err)
	}
	n := 0
	for _, o := range list {
		if o.State == ccv1.ContainerState_CONTAINER_STATE_RUNNING {
			n++
		}
	}
	return n
}
