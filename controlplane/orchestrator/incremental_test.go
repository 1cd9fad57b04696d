package orchestrator

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// sim is a cluster state that the plans change as the state machine
// would, and that random events (a task starts, fails or exits, a node
// goes down, is drained or relabelled, a service is scaled, updated or
// removed) change as agents and users would. Every change replaces the
// record it changes, as the state machine's reads give fresh records.
type sim struct {
	rng      *rand.Rand
	now      time.Time
	services []*ccv1.Service
	nodes    []*ccv1.Node
	tasks    map[string]*ccv1.Container
	ids      int
	tr       *Tracker
}

func (s *sim) putTask(c *ccv1.Container) {
	s.tasks[c.Id] = c
	s.tr.PutTask(c)
}

func (s *sim) records() []*statev1.ContainerRecord {
	out := make([]*statev1.ContainerRecord, 0, len(s.tasks))
	for _, c := range s.tasks {
		out = append(out, &statev1.ContainerRecord{Container: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container.Id < out[j].Container.Id })
	return out
}

func (s *sim) newID() func() string {
	n := s.ids
	return func() string { n++; return fmt.Sprintf("t%05d", n) }
}

func (s *sim) serviceIndex(id string) int {
	return slices.IndexFunc(s.services, func(x *ccv1.Service) bool { return x.Id == id })
}

// apply applies a plan's ops as the state machine does (simplified).
func (s *sim) apply(ops []*statev1.TaskOp) {
	for _, op := range ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			c := proto.Clone(o.Create).(*ccv1.Container)
			c.Desired, c.Generation = ccv1.DesiredState_DESIRED_STATE_RUNNING, 1
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_PENDING}
			if c.NodeId != "" {
				c.Status.State = ccv1.ContainerState_CONTAINER_STATE_ASSIGNED
			}
			s.ids++
			s.putTask(c)
		case *statev1.TaskOp_Assign:
			c := proto.Clone(s.tasks[o.Assign.TaskId]).(*ccv1.Container)
			c.NodeId, c.PendingReason = o.Assign.NodeId, ""
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED}
			s.putTask(c)
		case *statev1.TaskOp_Pending:
			c := proto.Clone(s.tasks[o.Pending.TaskId]).(*ccv1.Container)
			c.PendingReason = o.Pending.Reason
			s.putTask(c)
		case *statev1.TaskOp_Stop:
			c := proto.Clone(s.tasks[o.Stop.TaskId]).(*ccv1.Container)
			c.Desired = ccv1.DesiredState_DESIRED_STATE_STOPPED
			if o.Stop.Failed {
				c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: o.Stop.Message}
			}
			s.putTask(c)
		case *statev1.TaskOp_Remove:
			delete(s.tasks, o.Remove)
			s.tr.DeleteTask(o.Remove)
		case *statev1.TaskOp_Progress:
			i := s.serviceIndex(o.Progress.ServiceId)
			svc := proto.Clone(s.services[i]).(*ccv1.Service)
			svc.Update = o.Progress.Status
			if o.Progress.Rollback {
				svc.Version++
				svc.Spec.Task.Image = "img:rolled-back"
			}
			s.services[i] = svc
		}
	}
}

func (s *sim) pick() *ccv1.Container {
	if len(s.tasks) == 0 {
		return nil
	}
	ids := make([]string, 0, len(s.tasks))
	for id := range s.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return proto.Clone(s.tasks[ids[s.rng.Intn(len(ids))]]).(*ccv1.Container)
}

// event makes one random change.
func (s *sim) event() {
	r := s.rng
	switch k := r.Intn(12); {
	case k < 5: // an agent reports on a task
		c := s.pick()
		if c == nil || c.NodeId == "" {
			return
		}
		switch {
		case c.Desired == ccv1.DesiredState_DESIRED_STATE_STOPPED:
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED}
		case r.Intn(6) == 0:
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: "boom"}
		case r.Intn(6) == 0:
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(s.now),
				Health: ccv1.HealthState_HEALTH_STATE_UNHEALTHY}
		default:
			c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(s.now)}
		}
		s.putTask(c)
	case k < 7: // a node changes
		i := r.Intn(len(s.nodes))
		n := proto.Clone(s.nodes[i]).(*ccv1.Node)
		switch r.Intn(5) {
		case 0:
			n.State = ccv1.NodeState_NODE_STATE_DOWN
		case 1:
			n.State = ccv1.NodeState_NODE_STATE_READY
		case 2:
			n.Availability = ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
		case 3:
			n.Availability = ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
		case 4:
			n.UserLabels = map[string]string{"role": []string{"db", "web"}[r.Intn(2)]}
		}
		s.nodes[i] = n
	case k < 9: // a service is scaled or updated
		i := r.Intn(len(s.services))
		svc := proto.Clone(s.services[i]).(*ccv1.Service)
		if r.Intn(2) == 0 {
			svc.Spec.Replicas = uint64(r.Intn(5))
		} else {
			svc.Version++
			svc.Spec.Task.Image = fmt.Sprintf("img:%d", svc.Version)
			svc.Update = &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_UPDATING}
		}
		s.services[i] = svc
	case k == 9: // a service goes; its tasks may stay behind a while
		if len(s.services) > 2 {
			i := r.Intn(len(s.services))
			s.services = slices.Delete(s.services, i, i+1)
		}
	case k == 10: // a node joins or leaves
		if r.Intn(2) == 0 && len(s.nodes) > 2 {
			i := r.Intn(len(s.nodes))
			s.nodes = slices.Delete(s.nodes, i, i+1)
		} else {
			s.nodes = append(s.nodes, node(fmt.Sprintf("n%03d", r.Intn(1000))))
			sort.Slice(s.nodes, func(i, j int) bool { return s.nodes[i].Id < s.nodes[j].Id })
			s.nodes = slices.CompactFunc(s.nodes, func(a, b *ccv1.Node) bool { return a.Id == b.Id })
		}
	default: // a task record is removed by someone else
		if c := s.pick(); c != nil && r.Intn(3) == 0 {
			delete(s.tasks, c.Id)
			s.tr.DeleteTask(c.Id)
		}
	}
}

func newSim(seed int64) *sim {
	s := &sim{rng: rand.New(rand.NewSource(seed)), now: t0, tasks: map[string]*ccv1.Container{}, tr: NewTracker()}
	for i := range 6 {
		s.nodes = append(s.nodes, node(fmt.Sprintf("n%03d", i), func(n *ccv1.Node) {
			n.Resources = &ccv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30}
		}))
	}
	s.services = []*ccv1.Service{
		service("web", 4, 1, func(sv *ccv1.Service) {
			sv.Spec.Update.Parallelism = 2
			sv.Spec.Update.Delay = durationpb.New(3 * time.Second)
		}),
		service("db", 2, 1, func(sv *ccv1.Service) {
			sv.Spec.Task.Resources = &ccv1.ContainerResources{MemoryReservationBytes: 700 << 20}
			sv.Spec.Update.FailureAction = ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
		}),
		service("edge", 3, 1, func(sv *ccv1.Service) {
			sv.Spec.Task.Ports = []*ccv1.PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}
			sv.Spec.Placement = &ccv1.Placement{Constraints: []string{"node.labels.role!=db"}}
		}),
		service("agent", 0, 1, func(sv *ccv1.Service) {
			sv.Spec.Mode = ccv1.ServiceMode_SERVICE_MODE_GLOBAL
			sv.Spec.Placement = &ccv1.Placement{Constraints: []string{"node.labels.role!=db"}}
		}),
	}
	return s
}

// TestIncrementalPlan: over random runs of plans and events, the plan of
// only the services the Tracker marks dirty, read from its Index, has the
// same ops and the same wake time as the plan of every service read from
// the full list of tasks, after every single change.
func TestIncrementalPlan(t *testing.T) {
	for seed := int64(1); seed <= 40; seed++ {
		s := newSim(seed)
		for step := range 150 {
			full := Make(Input{Services: s.services, Tasks: s.records(), Nodes: s.nodes, Now: s.now, NewID: s.newID()})
			dirty := s.tr.Dirty(s.services, s.nodes, s.now)
			inc := Make(Input{Services: s.services, Nodes: s.nodes, Now: s.now, NewID: s.newID(), Index: s.tr.Index, Dirty: dirty})
			if got, want := summary(inc.Ops), summary(full.Ops); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: dirty %v\nincremental plan:\n%v\nfull plan:\n%v", seed, step, dirty, got, want)
			}
			s.tr.Planned(dirty, s.services, s.nodes, inc)
			if got := s.tr.WakeAt(); !got.Equal(full.WakeAt) {
				t.Fatalf("seed %d step %d: wake at %v incrementally, %v in full", seed, step, got, full.WakeAt)
			}
			s.apply(full.Ops)
			if len(full.Ops) == 0 || s.rng.Intn(3) == 0 {
				for range 1 + s.rng.Intn(2) {
					s.event()
				}
			}
			s.now = s.now.Add(time.Duration(s.rng.Intn(4)) * time.Second)
		}
		checkIndex(t, s.tr.Index, s.tasks)
	}
}

// checkIndex: the index kept by changes is the index built afresh.
func checkIndex(t *testing.T, x *Index, tasks map[string]*ccv1.Container) {
	t.Helper()
	y := NewIndex()
	for _, c := range tasks {
		y.Put(c)
	}
	if x.Len() != y.Len() || !slices.Equal(x.Services(), y.Services()) || !slices.Equal(x.Unplaced(), y.Unplaced()) {
		t.Fatalf("index: %d tasks, services %v, unplaced %d; afresh: %d, %v, %d", x.Len(), x.Services(), len(x.Unplaced()), y.Len(), y.Services(), len(y.Unplaced()))
	}
	for _, id := range y.Services() {
		if !slices.Equal(x.ServiceTasks(id), y.ServiceTasks(id)) {
			t.Fatalf("index: the tasks of %s differ from the index built afresh", id)
		}
	}
	for n := range y.byNode {
		if !slices.Equal(x.NodeServices(n), y.NodeServices(n)) {
			t.Fatalf("index: the services on %s are %v, afresh %v", n, x.NodeServices(n), y.NodeServices(n))
		}
	}
	placed := func(x *Index) []string {
		var ids []string
		for i, p := range x.placed {
			if x.byID[p.ID].at != i || !reflect.DeepEqual(p, schedTask(x.byID[p.ID].c, nil)) {
				t.Fatalf("index: placed task %d (%s) is not its entry's", i, p.ID)
			}
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		return ids
	}
	if !slices.Equal(placed(x), placed(y)) {
		t.Fatalf("index: the placed tasks differ from the index built afresh")
	}
}

// TestIncrementalPlanSkipsClean: once a plan is written, a change to one
// task plans only that task's service.
func TestIncrementalPlanSkipsClean(t *testing.T) {
	s := newSim(1)
	for range 10 {
		dirty := s.tr.Dirty(s.services, s.nodes, s.now)
		p := Make(Input{Services: s.services, Nodes: s.nodes, Now: s.now, NewID: s.newID(), Index: s.tr.Index, Dirty: dirty})
		s.tr.Planned(dirty, s.services, s.nodes, p)
		s.apply(p.Ops)
	}
	if d := s.tr.Dirty(s.services, s.nodes, s.now); len(d) != 0 {
		t.Fatalf("converged, yet services %v are dirty", d)
	}
	c := proto.Clone(s.tr.Index.ServiceTasks("svc-web")[0]).(*ccv1.Container)
	c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.New(s.now)}
	s.putTask(c)
	if d := s.tr.Dirty(s.services, s.nodes, s.now); len(d) != 1 || !d["svc-web"] {
		t.Fatalf("after one task of web changed, dirty services are %v, want only svc-web", d)
	}
}
