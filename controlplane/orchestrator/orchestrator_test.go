package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func node(id string, opts ...func(*ccv1.Node)) *ccv1.Node {
	n := &ccv1.Node{Id: id, Name: id, State: ccv1.NodeState_NODE_STATE_READY, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Resources: &ccv1.Resources{CpuMillis: 4000, MemoryBytes: 8 << 30}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func down(n *ccv1.Node)    { n.State = ccv1.NodeState_NODE_STATE_DOWN }
func drained(n *ccv1.Node) { n.Availability = ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN }

func service(name string, replicas uint64, version uint64, opts ...func(*ccv1.Service)) *ccv1.Service {
	s := &ccv1.Service{Id: "svc-" + name, Name: name, Version: version, Spec: &ccv1.ServiceSpec{
		Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: replicas,
		Task:   &ccv1.ContainerSpec{Image: "cc-demo:latest", Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS},
		Update: &ccv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(5 * time.Second), FailureAction: ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK},
	}}
	for _, o := range opts {
		o(s)
	}
	return s
}

func updating(s *ccv1.Service) {
	s.Update = &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_UPDATING}
}

// task is a running task of s in slot on node, at version, started a
// minute before t0.
func task(s *ccv1.Service, id string, slot uint32, nodeID string, version uint64, opts ...func(*ccv1.Container)) *statev1.ContainerRecord {
	c := &ccv1.Container{Id: id, Name: fmt.Sprintf("%s.%d.%s", s.Name, slot, id), ServiceId: s.Id, Slot: slot, NodeId: nodeID,
		ServiceVersion: version, Spec: s.Spec.Task, Desired: ccv1.DesiredState_DESIRED_STATE_RUNNING, Generation: 1,
		CreatedAt: timestamppb.New(t0.Add(-time.Hour)),
		Status:    &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(t0.Add(-time.Minute))}}
	for _, o := range opts {
		o(c)
	}
	return &statev1.ContainerRecord{Container: c}
}

func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("new%02d", n) }
}

// summary renders ops as short lines, sorted, for comparison.
func summary(ops []*statev1.TaskOp) []string {
	var out []string
	for _, op := range ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			c := o.Create
			where := c.NodeId
			if where == "" {
				where = "pending: " + c.PendingReason
			}
			out = append(out, fmt.Sprintf("create %s slot %d v%d on %s", c.Id, c.Slot, c.ServiceVersion, where))
		case *statev1.TaskOp_Assign:
			out = append(out, fmt.Sprintf("assign %s to %s", o.Assign.TaskId, o.Assign.NodeId))
		case *statev1.TaskOp_Stop:
			out = append(out, fmt.Sprintf("stop %s failed=%v: %s", o.Stop.TaskId, o.Stop.Failed, o.Stop.Message))
		case *statev1.TaskOp_Remove:
			out = append(out, "remove "+o.Remove)
		case *statev1.TaskOp_Pending:
			out = append(out, fmt.Sprintf("pending %s: %s", o.Pending.TaskId, o.Pending.Reason))
		case *statev1.TaskOp_Progress:
			out = append(out, fmt.Sprintf("progress %s %v rollback=%v: %s", o.Progress.ServiceId, o.Progress.Status.GetState(), o.Progress.Rollback, o.Progress.Status.GetMessage()))
		}
	}
	sort.Strings(out)
	return out
}

func TestPlan(t *testing.T) {
	web := service("web", 3, 1)
	web4 := service("web", 4, 1)
	web1 := service("web", 1, 1)
	secure := service("secure", 1, 1, func(s *ccv1.Service) {
		s.Spec.Placement = &ccv1.Placement{Constraints: []string{"node.labels.zone==secure"}}
	})
	reportsSecure := func(n *ccv1.Node) { n.Labels = map[string]string{"zone": "secure"} }
	big := service("big", 1, 1, func(s *ccv1.Service) { s.Spec.Task.Resources = &ccv1.ContainerResources{MemoryBytes: 64 << 30} })
	webV2 := service("web", 2, 2, updating)
	webV2Par2 := service("web", 3, 2, updating, func(s *ccv1.Service) { s.Spec.Update.Parallelism = 2 })
	webV2Pause := service("web", 2, 2, updating, func(s *ccv1.Service) {
		s.Spec.Update.FailureAction = ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	})
	webV2Delay := service("web", 2, 2, updating, func(s *ccv1.Service) { s.Spec.Update.Delay = durationpb.New(time.Hour) })
	rollingBack := service("web", 1, 3, func(s *ccv1.Service) {
		s.Update = &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK, Message: "update failed, rolling back: task web.1.x is unhealthy"}
	})
	global := service("agent", 0, 1, func(s *ccv1.Service) {
		s.Spec.Mode = ccv1.ServiceMode_SERVICE_MODE_GLOBAL
		s.Spec.Placement = &ccv1.Placement{Constraints: []string{"node.labels.role!=db"}}
	})
	stopped := func(c *ccv1.Container) { c.Desired = ccv1.DesiredState_DESIRED_STATE_STOPPED }
	pending := func(reason string) func(*ccv1.Container) {
		return func(c *ccv1.Container) {
			c.NodeId, c.PendingReason = "", reason
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_PENDING}
		}
	}
	assigned := func(c *ccv1.Container) {
		c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED}
	}
	justStarted := func(c *ccv1.Container) { c.Status.StartedAt = timestamppb.New(t0.Add(-time.Second)) }
	unhealthy := func(c *ccv1.Container) {
		c.Status.Health, c.Status.HealthOutput = ccv1.HealthState_HEALTH_STATE_UNHEALTHY, "connection refused"
	}
	created := func(d time.Duration) func(*ccv1.Container) {
		return func(c *ccv1.Container) { c.CreatedAt = timestamppb.New(t0.Add(d)) }
	}
	tests := []struct {
		name     string
		services []*ccv1.Service
		tasks    []*statev1.ContainerRecord
		nodes    []*ccv1.Node
		want     []string
		wakeIn   time.Duration
	}{
		{
			name:     "a new service's replicas spread over the nodes",
			services: []*ccv1.Service{web},
			nodes:    []*ccv1.Node{node("a"), node("b"), node("c")},
			want:     []string{"create new01 slot 1 v1 on a", "create new02 slot 2 v1 on b", "create new03 slot 3 v1 on c"},
		},
		{
			name:     "four replicas on two nodes: two each",
			services: []*ccv1.Service{web4},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			want:     []string{"create new01 slot 1 v1 on a", "create new02 slot 2 v1 on b", "create new03 slot 3 v1 on a", "create new04 slot 4 v1 on b"},
		},
		{
			name:     "converged: nothing to do",
			services: []*ccv1.Service{web},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(web, "t1", 1, "a", 1), task(web, "t2", 2, "b", 1), task(web, "t3", 3, "a", 1)},
		},
		{
			name:     "a down node's task is stopped as failed and replaced on another node",
			services: []*ccv1.Service{web},
			nodes:    []*ccv1.Node{node("a"), node("b", down)},
			tasks:    []*statev1.ContainerRecord{task(web, "t1", 1, "a", 1), task(web, "t2", 2, "b", 1), task(web, "t3", 3, "a", 1)},
			want:     []string{"create new01 slot 2 v1 on a", "stop t2 failed=true: its node b is down"},
		},
		{
			name:     "a removed node's task is replaced",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "gone", 1)},
			want:     []string{"create new01 slot 1 v1 on a", "stop t1 failed=true: its node gone was removed from the cluster"},
		},
		{
			name:     "drain: the replacement starts first, the drained task keeps running",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a", drained), node("b")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1)},
			want:     []string{"create new01 slot 1 v1 on b"},
		},
		{
			name:     "drain: the replacement is not running yet, so the old task stays",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a", drained), node("b")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1), task(web1, "t2", 1, "b", 1, assigned)},
		},
		{
			name:     "drain: once the replacement runs, the drained task stops",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a", drained), node("b")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1), task(web1, "t2", 1, "b", 1)},
			want:     []string{"stop t1 failed=false: its node was drained; moved to another node"},
		},
		{
			name:     "drain with no room elsewhere: the task is stopped anyway",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a", drained)},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1), task(web1, "t2", 1, "", 1, pending("no node fits"))},
			want:     []string{"pending t2: no node is ready and active (1 paused or drained)", "stop t1 failed=false: its node was drained; moved to another node"},
		},
		{
			name:     "scale down removes the highest slots",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1), task(web1, "t2", 2, "b", 1), task(web1, "t3", 3, "a", 1)},
			want:     []string{"remove t2", "remove t3"},
		},
		{
			// Finding 12 of issue 14: a join-token holder could attract
			// workloads by reporting the label a constraint asks for.
			name:     "constraints: a label the node reports does not satisfy node.labels",
			services: []*ccv1.Service{secure},
			nodes:    []*ccv1.Node{node("a", reportsSecure)},
			want:     []string{"create new01 slot 1 v1 on pending: no node fits: 1 does not match node.labels.zone==secure"},
		},
		{
			name:     "constraints: an operator's label satisfies node.labels",
			services: []*ccv1.Service{secure},
			nodes:    []*ccv1.Node{node("a", reportsSecure), node("b", func(n *ccv1.Node) { n.UserLabels = map[string]string{"zone": "secure"} })},
			want:     []string{"create new01 slot 1 v1 on b"},
		},
		{
			name: "constraints: node.reported sees what the node reports",
			services: []*ccv1.Service{service("rep", 1, 1, func(s *ccv1.Service) {
				s.Spec.Placement = &ccv1.Placement{Constraints: []string{"node.reported.zone==secure"}}
			})},
			nodes: []*ccv1.Node{node("a"), node("b", reportsSecure)},
			want:  []string{"create new01 slot 1 v1 on b"},
		},
		{
			name:     "too big for any node: pending with the reason",
			services: []*ccv1.Service{big},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			want:     []string{"create new01 slot 1 v1 on pending: no node fits: 2 have too little free memory (needs 64.0 GiB; the most free is 8.0 GiB on a)"},
		},
		{
			name:     "a pending task is placed when a node that fits appears",
			services: []*ccv1.Service{big},
			nodes:    []*ccv1.Node{node("a"), node("huge", func(n *ccv1.Node) { n.Resources.MemoryBytes = 128 << 30 })},
			tasks:    []*statev1.ContainerRecord{task(big, "t1", 1, "", 1, pending("no node fits"))},
			want:     []string{"assign t1 to huge"},
		},
		{
			name:     "rolling update: one task at a time, stop first",
			services: []*ccv1.Service{webV2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2, "t1", 1, "a", 1), task(webV2, "t2", 2, "b", 1)},
			want:     []string{"create new01 slot 1 v2 on a", "stop t1 failed=false: replaced by the update to version 2"},
		},
		{
			name:     "rolling update: parallelism 2",
			services: []*ccv1.Service{webV2Par2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2Par2, "t1", 1, "a", 1), task(webV2Par2, "t2", 2, "b", 1), task(webV2Par2, "t3", 3, "a", 1)},
			want: []string{"create new01 slot 1 v2 on b", "create new02 slot 2 v2 on a",
				"stop t1 failed=false: replaced by the update to version 2", "stop t2 failed=false: replaced by the update to version 2"},
		},
		{
			name:     "rolling update: waits while the new task is within its monitor period",
			services: []*ccv1.Service{webV2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2, "n1", 1, "a", 2, justStarted), task(webV2, "t2", 2, "b", 1)},
			wakeIn:   4 * time.Second,
		},
		{
			name:     "rolling update: next task once the first is up",
			services: []*ccv1.Service{webV2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2, "n1", 1, "a", 2), task(webV2, "t2", 2, "b", 1)},
			want:     []string{"create new01 slot 2 v2 on b", "stop t2 failed=false: replaced by the update to version 2"},
		},
		{
			name:     "rolling update: the delay holds the next batch",
			services: []*ccv1.Service{webV2Delay},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2Delay, "n1", 1, "a", 2), task(webV2Delay, "t2", 2, "b", 1)},
			wakeIn:   time.Hour - time.Minute + 5*time.Second,
		},
		{
			name:     "rolling update: done",
			services: []*ccv1.Service{webV2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2, "n1", 1, "a", 2), task(webV2, "n2", 2, "b", 2)},
			want:     []string{"progress svc-web UPDATE_STATE_COMPLETED rollback=false: update completed"},
		},
		{
			name:     "rolling update: an unhealthy new task rolls the service back",
			services: []*ccv1.Service{webV2},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks:    []*statev1.ContainerRecord{task(webV2, "n1", 1, "a", 2, unhealthy), task(webV2, "t2", 2, "b", 1)},
			want:     []string{"progress svc-web UPDATE_STATE_ROLLING_BACK rollback=true: update failed, rolling back: task web.1.n1 is unhealthy: connection refused"},
		},
		{
			name:     "rolling update: a restarting new task pauses when asked to",
			services: []*ccv1.Service{webV2Pause},
			nodes:    []*ccv1.Node{node("a"), node("b")},
			tasks: []*statev1.ContainerRecord{task(webV2Pause, "n1", 1, "a", 2, func(c *ccv1.Container) {
				c.Status.RestartCount = 2
				c.Status.State = ccv1.ContainerState_CONTAINER_STATE_EXITED
				c.Status.ExitCode = 3
			}), task(webV2Pause, "t2", 2, "b", 1)},
			want: []string{"progress svc-web UPDATE_STATE_PAUSED rollback=false: update paused: task web.1.n1 restarted 2 times: exit code 3"},
		},
		{
			name:     "rollback: done when the tasks run the restored spec",
			services: []*ccv1.Service{rollingBack},
			nodes:    []*ccv1.Node{node("a")},
			tasks:    []*statev1.ContainerRecord{task(rollingBack, "r1", 1, "a", 3)},
			want:     []string{"progress svc-web UPDATE_STATE_ROLLED_BACK rollback=false: rollback completed (update failed, rolling back: task web.1.x is unhealthy)"},
		},
		{
			name:     "global: one task per matching node",
			services: []*ccv1.Service{global},
			nodes: []*ccv1.Node{node("a"), node("b", func(n *ccv1.Node) { n.UserLabels = map[string]string{"role": "db"} }),
				node("c", down), node("d")},
			tasks: []*statev1.ContainerRecord{task(global, "g1", 0, "a", 1)},
			want:  []string{"create new01 slot 0 v1 on d"},
		},
		{
			name:     "history: two stopped tasks per slot are kept",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a")},
			tasks: []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1),
				task(web1, "h1", 1, "a", 1, stopped, created(-3*time.Hour)),
				task(web1, "h2", 1, "a", 1, stopped, created(-2*time.Hour)),
				task(web1, "h3", 1, "a", 1, stopped, created(-4*time.Hour))},
			want: []string{"remove h3"},
		},
		{
			name:     "history: stopped tasks of slots scaled away are removed",
			services: []*ccv1.Service{web1},
			nodes:    []*ccv1.Node{node("a")},
			tasks:    []*statev1.ContainerRecord{task(web1, "t1", 1, "a", 1), task(web1, "h4", 4, "a", 1, stopped)},
			want:     []string{"remove h4"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Make(Input{Services: tc.services, Tasks: tc.tasks, Nodes: tc.nodes, Now: t0, NewID: counter()})
			got := summary(p.Ops)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("ops:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			var wake time.Duration
			if !p.WakeAt.IsZero() {
				wake = p.WakeAt.Sub(t0)
			}
			if wake != tc.wakeIn {
				t.Errorf("wake in %v, want %v", wake, tc.wakeIn)
			}
		})
	}
}

// TestPlanIsStable: applying a plan's creates and planning again asks for
// nothing more.
func TestPlanConverges(t *testing.T) {
	web := service("web", 5, 1)
	nodes := []*ccv1.Node{node("a"), node("b")}
	p := Make(Input{Services: []*ccv1.Service{web}, Nodes: nodes, Now: t0, NewID: counter()})
	var tasks []*statev1.ContainerRecord
	for _, op := range p.Ops {
		c := op.GetCreate()
		if c == nil {
			t.Fatalf("unexpected op %v", op)
		}
		c.Desired = ccv1.DesiredState_DESIRED_STATE_RUNNING
		c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED}
		tasks = append(tasks, &statev1.ContainerRecord{Container: c})
	}
	if len(tasks) != 5 {
		t.Fatalf("%d creates, want 5", len(tasks))
	}
	again := Make(Input{Services: []*ccv1.Service{web}, Tasks: tasks, Nodes: nodes, Now: t0, NewID: counter()})
	if len(again.Ops) != 0 {
		t.Fatalf("second plan not empty: %v", summary(again.Ops))
	}
}
