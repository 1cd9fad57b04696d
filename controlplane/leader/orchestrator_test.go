package leader

import (
	"crypto/sha256"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/orchestrator"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// stateMachine opens an empty state machine for the test, and a func
// that applies one command to it, failing the test when it is refused.
func stateMachine(t *testing.T) (*fsm.FSM, func(statev1.CommandType, proto.Message)) {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var idx uint64
	return f, func(typ statev1.CommandType, msg proto.Message) {
		t.Helper()
		data, err := fsm.Encode(typ, msg, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if r := f.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}).(fsm.Result); r.Err != nil {
			t.Fatalf("%v: %v", typ, r.Err)
		}
	}
}

// TestTaskCache: the orchestrator's copy of the container records, kept
// from the feed, is what a full read of the state gives after every
// change: tasks created, placed, reported on, stopped, removed, and a
// service removed with its tasks.
func TestTaskCache(t *testing.T) {
	f, must := stateMachine(t)
	sum := sha256.Sum256([]byte("secret"))
	must(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: &statev1.TokenRecord{Id: "join", Role: int32(ccv1.Role_ROLE_AGENT), SecretSha256: sum[:]}})
	must(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join", SecretSha256: sum[:], Node: &ccv1.Node{Id: "n1", Name: "n1"}})
	for _, id := range []string{"s1", "s2"} {
		must(statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: &ccv1.Service{Id: id, Name: "web-" + id,
			Spec: &ccv1.ServiceSpec{Replicas: 2, Task: &ccv1.ContainerSpec{Image: "img:1"}}}})
	}
	create := func(id, service, node string) *statev1.TaskOp {
		return &statev1.TaskOp{Op: &statev1.TaskOp_Create{Create: &ccv1.Container{Id: id, Name: service + "." + id, ServiceId: service, Slot: 1, NodeId: node,
			ServiceVersion: 1, Spec: &ccv1.ContainerSpec{Image: "img:1"}}}}
	}
	feed := f.SubscribeContainers()
	defer feed.Close()
	cache := &taskCache{feed: feed}
	check := func(step string) {
		t.Helper()
		got, err := cache.read(f)
		if err != nil {
			t.Fatal(err)
		}
		tasks := cache.containers()
		want, err := f.ReadState()
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != len(want.Tasks) {
			t.Fatalf("%s: %d tasks in the copy, %d in the state", step, len(tasks), len(want.Tasks))
		}
		for i := range want.Tasks {
			if w := want.Tasks[i].GetContainer(); !proto.Equal(tasks[i], w) {
				t.Fatalf("%s: task %d is\n%v\nin the copy, and\n%v\nin the state", step, i, tasks[i], w)
			}
		}
		if len(got.Services) != len(want.Services) || len(got.Nodes) != len(want.Nodes) {
			t.Fatalf("%s: services %d/%d, nodes %d/%d", step, len(got.Services), len(want.Services), len(got.Nodes), len(want.Nodes))
		}
		for i := range want.Nodes {
			if !proto.Equal(got.Nodes[i], want.Nodes[i]) {
				t.Fatalf("%s: node %d is\n%v\nin the copy, and\n%v\nin the state", step, i, got.Nodes[i], want.Nodes[i])
			}
		}
	}
	check("empty")
	must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: []*statev1.TaskOp{create("a", "s1", "n1"), create("b", "s1", ""), create("c", "s2", "n1")}})
	check("created")
	must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: []*statev1.TaskOp{
		{Op: &statev1.TaskOp_Assign{Assign: &statev1.AssignTask{TaskId: "b", NodeId: "n1"}}},
	}})
	must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n1", Statuses: []*ccv1.TaskStatus{{ContainerId: "a", Generation: 1,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}})
	check("placed and running")
	must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: []*statev1.TaskOp{
		{Op: &statev1.TaskOp_Stop{Stop: &statev1.StopTask{TaskId: "a", Message: "scaled down"}}},
		{Op: &statev1.TaskOp_Remove{Remove: "b"}},
	}})
	check("stopped and removed")
	must(statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE, &statev1.RemoveService{Id: "s2"})
	check("service removed")
	// Nodes join, change and go.
	must(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: &statev1.TokenRecord{Id: "join2", Role: int32(ccv1.Role_ROLE_AGENT), SecretSha256: sum[:]}})
	must(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join2", SecretSha256: sum[:], Node: &ccv1.Node{Id: "n0", Name: "n0"}})
	check("node joined")
	must(statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: "n0", State: ccv1.NodeState_NODE_STATE_DOWN})
	check("node down")
	must(statev1.CommandType_COMMAND_TYPE_REMOVE_NODE, &statev1.RemoveNode{Id: "n0"})
	check("node removed")
	// The tasks of one service version share one spec in the copy.
	must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: []*statev1.TaskOp{create("d", "s1", "n1"), create("e", "s1", "n1")}})
	check("more created")
	if _, err := cache.read(f); err != nil {
		t.Fatal(err)
	}
	var specs []*ccv1.ContainerSpec
	for _, c := range cache.containers() {
		if id := c.GetId(); id == "d" || id == "e" {
			specs = append(specs, c.GetSpec())
		}
	}
	if len(specs) != 2 || specs[0] != specs[1] {
		t.Fatalf("the tasks of one service version do not share their spec: %v", specs)
	}
}

// TestTaskCacheDirty: after a pass has planned everything, the services
// the next pass plans are those the state machine's changes touched: the
// service of a task an agent reported on, the services with tasks on a
// node that went down, a service whose record changed.
func TestTaskCacheDirty(t *testing.T) {
	f, must := stateMachine(t)
	sum := sha256.Sum256([]byte("secret"))
	must(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: &statev1.TokenRecord{Id: "join", Role: int32(ccv1.Role_ROLE_AGENT), SecretSha256: sum[:]}})
	for _, n := range []string{"n1", "n2"} {
		must(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join", SecretSha256: sum[:], Node: &ccv1.Node{Id: n, Name: n}})
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		must(statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: &ccv1.Service{Id: id, Name: "web-" + id,
			Spec: &ccv1.ServiceSpec{Replicas: 1, Task: &ccv1.ContainerSpec{Image: "img:1"}}}})
	}
	create := func(id, service, node string) *statev1.TaskOp {
		return &statev1.TaskOp{Op: &statev1.TaskOp_Create{Create: &ccv1.Container{Id: id, Name: service + "." + id, ServiceId: service, Slot: 1, NodeId: node,
			ServiceVersion: 1, Spec: &ccv1.ContainerSpec{Image: "img:1"}}}}
	}
	must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: []*statev1.TaskOp{create("a", "s1", "n1"), create("b", "s2", "n2"), create("c", "s3", "n1")}})
	feed := f.SubscribeContainers()
	defer feed.Close()
	cache := &taskCache{feed: feed}
	now := time.Unix(1700000000, 0)
	dirty := func() []string {
		t.Helper()
		st, err := cache.read(f)
		if err != nil {
			t.Fatal(err)
		}
		d := cache.track.Dirty(st.Services, st.Nodes, now)
		cache.track.Planned(d, st.Services, st.Nodes, orchestrator.Plan{})
		if d == nil {
			return nil
		}
		out := slices.Sorted(maps.Keys(d))
		if out == nil {
			out = []string{}
		}
		return out
	}
	if d := dirty(); d != nil {
		t.Fatalf("first pass plans %v, want every service (nil)", d)
	}
	if d := dirty(); len(d) != 0 {
		t.Fatalf("nothing changed, yet the pass plans %v", d)
	}
	must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n2", Statuses: []*ccv1.TaskStatus{{ContainerId: "b", Generation: 1,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}})
	if d := dirty(); !slices.Equal(d, []string{"s2"}) {
		t.Fatalf("after a report on a task of s2 the pass plans %v", d)
	}
	must(statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: "n1", State: ccv1.NodeState_NODE_STATE_DOWN})
	if d := dirty(); !slices.Equal(d, []string{"s1", "s3"}) {
		t.Fatalf("after n1 went down the pass plans %v, want the services with tasks on it", d)
	}
	must(statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE, &statev1.RemoveService{Id: "s2"})
	if d := dirty(); !slices.Equal(d, []string{"s2"}) {
		t.Fatalf("after s2 was removed the pass plans %v", d)
	}
}
