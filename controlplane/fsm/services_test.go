package fsm_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/logging"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// svcFixture is an FSM with one node "n1" and a service "web".
type svcFixture struct {
	t   *testing.T
	f   *fsm.FSM
	idx uint64
}

func newSvcFixture(t *testing.T) *svcFixture {
	x := &svcFixture{t: t, f: newFSM(t)}
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: tokenRec("join", ccv1.Role_ROLE_AGENT)})
	x.must(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join", SecretSha256: tokenRec("join", ccv1.Role_ROLE_AGENT).SecretSha256,
		Node: &ccv1.Node{Id: "n1", Name: "n1"}})
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: &ccv1.Service{Id: "s1", Name: "web", Spec: webSpec("img:1", 2)}})
	return x
}

func webSpec(image string, replicas uint64) *ccv1.ServiceSpec {
	return &ccv1.ServiceSpec{Replicas: replicas, Task: &ccv1.ContainerSpec{Image: image}}
}

func (x *svcFixture) apply(typ statev1.CommandType, msg proto.Message) error {
	x.t.Helper()
	x.idx++
	return apply(x.t, x.f, x.idx, encode(x.t, typ, msg, t0))
}

func (x *svcFixture) must(typ statev1.CommandType, msg proto.Message) {
	x.t.Helper()
	if err := x.apply(typ, msg); err != nil {
		x.t.Fatalf("%v: %v", typ, err)
	}
}

func (x *svcFixture) ops(ops ...*statev1.TaskOp) {
	x.t.Helper()
	x.must(statev1.CommandType_COMMAND_TYPE_TASK_OPS, &statev1.TaskOps{Ops: ops})
}

func createOp(id, node string, slot uint32) *statev1.TaskOp {
	return &statev1.TaskOp{Op: &statev1.TaskOp_Create{Create: &ccv1.Container{Id: id, Name: "web." + id, ServiceId: "s1", Slot: slot, NodeId: node, ServiceVersion: 1,
		Spec: &ccv1.ContainerSpec{Image: "img:1"}}}}
}

func (x *svcFixture) service() *ccv1.Service {
	x.t.Helper()
	s, err := x.f.Service("s1")
	if err != nil {
		x.t.Fatal(err)
	}
	return s
}

func TestServiceVersions(t *testing.T) {
	x := newSvcFixture(t)
	if s := x.service(); s.Version != 1 || s.PreviousSpec != nil {
		t.Fatalf("new service: version %d previous %v", s.Version, s.PreviousSpec)
	}
	// Scaling keeps the version: tasks are not replaced.
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:1", 5)})
	if s := x.service(); s.Version != 1 || s.Spec.Replicas != 5 || s.Update != nil {
		t.Fatalf("after scale: version %d replicas %d update %v", s.Version, s.Spec.Replicas, s.Update)
	}
	// A new image is a new version and starts an update.
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:2", 5)})
	s := x.service()
	if s.Version != 2 || s.Update.GetState() != ccv1.UpdateState_UPDATE_STATE_UPDATING || s.PreviousSpec.Task.Image != "img:1" {
		t.Fatalf("after update: version %d update %v previous %v", s.Version, s.Update, s.PreviousSpec)
	}
	// An update from a stale read is refused.
	err := x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:3", 5), ExpectedVersion: 1})
	if !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("stale update: %v, want a conflict", err)
	}
	// Rollback returns to img:1 as a new version.
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Rollback: true})
	s = x.service()
	if s.Version != 3 || s.Spec.Task.Image != "img:1" || s.Update.GetState() != ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK {
		t.Fatalf("after rollback: version %d image %s update %v", s.Version, s.Spec.Task.Image, s.Update)
	}
	// The orchestrator's progress applies to the current version only.
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Progress{Progress: &statev1.ServiceProgress{ServiceId: "s1", Version: 2,
		Status: &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_COMPLETED}}}})
	if s := x.service(); s.Update.GetState() != ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK {
		t.Fatalf("progress of an old version applied: %v", s.Update)
	}
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Progress{Progress: &statev1.ServiceProgress{ServiceId: "s1", Version: 3,
		Status: &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_ROLLED_BACK, Message: "done"}}}})
	if s := x.service(); s.Update.GetState() != ccv1.UpdateState_UPDATE_STATE_ROLLED_BACK || s.Update.CompletedAt == nil {
		t.Fatalf("progress: %v", s.Update)
	}
	// A second service may not take the name.
	err = x.apply(statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: &ccv1.Service{Id: "s2", Name: "web", Spec: webSpec("x", 1)}})
	if !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
}

func TestTaskOps(t *testing.T) {
	x := newSvcFixture(t)
	feed := x.f.SubscribeNode("n1")
	defer feed.Close()
	x.ops(createOp("t1", "n1", 1), createOp("t2", "", 2))
	select {
	case <-feed.C():
	default:
		t.Fatal("creating a task on n1 did not wake n1's feed")
	}
	if ch := feed.Take(); ch.Rescan || len(ch.Containers) != 1 || ch.Containers["t1"] != struct{}{} {
		t.Fatalf("n1's feed after creating t1: %+v", ch)
	}
	recs, err := x.f.NodeContainers("n1")
	if err != nil || len(recs) != 1 || recs[0].Container.Id != "t1" {
		t.Fatalf("node n1 containers: %v %v", recs, err)
	}
	t1 := recs[0].Container
	if t1.Status.State != ccv1.ContainerState_CONTAINER_STATE_ASSIGNED || t1.AssignedAt == nil || t1.Generation != 1 {
		t.Fatalf("t1: %v", t1)
	}
	if byID, err := x.f.NodeContainersByID("n1", []string{"t1", "t2", "nope"}); err != nil || len(byID) != 1 || byID["t1"] == nil {
		t.Fatalf("NodeContainersByID: %v %v", byID, err)
	}
	// A status report does not wake the node's session.
	x.must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n1", Statuses: []*ccv1.TaskStatus{{ContainerId: "t1", Generation: 1,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}})
	select {
	case <-feed.C():
		t.Fatalf("a status report woke the node's feed: %+v", feed.Take())
	default:
	}
	// Pending reason, then assignment.
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Pending{Pending: &statev1.PendingReason{TaskId: "t2", Reason: "no room"}}})
	rec, _ := x.f.Container("t2")
	if rec.Container.PendingReason != "no room" {
		t.Fatalf("pending reason %q", rec.Container.PendingReason)
	}
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Assign{Assign: &statev1.AssignTask{TaskId: "t2", NodeId: "n1"}}},
		// A second assignment of a placed task is skipped.
		&statev1.TaskOp{Op: &statev1.TaskOp_Assign{Assign: &statev1.AssignTask{TaskId: "t2", NodeId: "elsewhere"}}},
		// Ops on tasks that are gone are skipped.
		&statev1.TaskOp{Op: &statev1.TaskOp_Remove{Remove: "nope"}})
	rec, _ = x.f.Container("t2")
	if rec.Container.NodeId != "n1" || rec.Container.PendingReason != "" {
		t.Fatalf("t2 after assign: node %q reason %q", rec.Container.NodeId, rec.Container.PendingReason)
	}
	// Stop as failed: desired stopped, a new generation, the message.
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Stop{Stop: &statev1.StopTask{TaskId: "t1", Message: "its node n1 is down", Failed: true}}})
	rec, _ = x.f.Container("t1")
	if c := rec.Container; c.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED || c.Generation != 2 || c.Status.State != ccv1.ContainerState_CONTAINER_STATE_FAILED || c.Message == "" {
		t.Fatalf("t1 after stop: %v", c)
	}
	// The feed names the tasks assigned and stopped, not the one whose
	// pending reason changed before.
	if ch := feed.Take(); ch.Rescan || len(ch.Containers) != 2 || ch.Volumes || ch.Node || ch.Servers {
		t.Fatalf("n1's feed after assign and stop: %+v", ch)
	}
	tasks, _ := x.f.ServiceTasks("s1")
	if len(tasks) != 2 {
		t.Fatalf("service tasks: %d", len(tasks))
	}
	// Removing the service takes its tasks, names and indexes with it.
	x.must(statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE, &statev1.RemoveService{Id: "s1"})
	if tasks, _ := x.f.ServiceTasks("s1"); len(tasks) != 0 {
		t.Fatalf("tasks left: %d", len(tasks))
	}
	if recs, _ := x.f.NodeContainers("n1"); len(recs) != 0 {
		t.Fatalf("node index left: %d", len(recs))
	}
	if ch := feed.Take(); len(ch.Containers) != 2 {
		t.Fatalf("n1's feed after removing the service: %+v", ch)
	}
	if _, err := x.f.ContainerIDByName("web.t1"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("task name left: %v", err)
	}
	// A task for a removed service is not created.
	x.ops(createOp("t3", "n1", 1))
	if _, err := x.f.Container("t3"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("task of a removed service: %v", err)
	}
}

// TestIndexesSurviveRestore: a snapshot restored elsewhere serves the same
// per-node and per-service reads.
func TestIndexesSurviveRestore(t *testing.T) {
	x := newSvcFixture(t)
	x.ops(createOp("t1", "n1", 1), createOp("t2", "n1", 2))
	snap := takeSnapshot(t, x.f)
	g := newFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	recs, err := g.NodeContainers("n1")
	if err != nil || len(recs) != 2 {
		t.Fatalf("restored node index: %d %v", len(recs), err)
	}
	tasks, err := g.ServiceTasks("s1")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("restored service index: %d %v", len(tasks), err)
	}
}

// TestIndexesRebuiltForOldDatabases: a state database written before the
// index buckets existed gets them on open.
func TestIndexesRebuiltForOldDatabases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := fsm.Open(path, logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	x := &svcFixture{t: t, f: f}
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: tokenRec("join", ccv1.Role_ROLE_AGENT)})
	x.must(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join", SecretSha256: tokenRec("join", ccv1.Role_ROLE_AGENT).SecretSha256,
		Node: &ccv1.Node{Id: "n1", Name: "n1"}})
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_CONTAINER, &statev1.CreateContainer{Container: &ccv1.Container{Id: "c1", Name: "c1", NodeId: "n1", Spec: &ccv1.ContainerSpec{Image: "img"}}})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("node_tasks")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Delete([]byte("index_version"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	g := openAt(t, path)
	recs, err := g.NodeContainers("n1")
	if err != nil || len(recs) != 1 {
		t.Fatalf("after reopen: %d containers on n1, %v", len(recs), err)
	}
}

// TestNodeNamesStayUnique: a second node may not take a name in use; the
// name is free again once its node is removed.
func TestNodeNamesStayUnique(t *testing.T) {
	x := newSvcFixture(t) // node n1 named "n1"
	join := func(id, name string) error {
		return x.apply(statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: "join",
			SecretSha256: tokenRec("join", ccv1.Role_ROLE_AGENT).SecretSha256, Node: &ccv1.Node{Id: id, Name: name}})
	}
	if err := join("n2", "n1"); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("join with a taken name: %v", err)
	}
	x.must(statev1.CommandType_COMMAND_TYPE_REMOVE_NODE, &statev1.RemoveNode{Id: "n1"})
	if err := join("n2", "n1"); err != nil {
		t.Fatalf("join with the name of a removed node: %v", err)
	}
}

func TestLimitSettingsMerge(t *testing.T) {
	x := &svcFixture{t: t, f: newFSM(t)}
	up := func(l *ccv1.LimitSettings) error {
		return x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{Limits: l}})
	}
	limits := func() *ccv1.LimitSettings {
		st, err := x.f.Settings()
		if err != nil {
			t.Fatal(err)
		}
		return st.GetLimits()
	}
	if err := up(&ccv1.LimitSettings{MaxMemoryBytes: proto.Int64(64 << 30), MaxPids: proto.Int64(1000)}); err != nil {
		t.Fatal(err)
	}
	// An unset cap keeps the stored one; another message of the settings
	// keeps them all.
	if err := up(&ccv1.LimitSettings{MaxCpuMillis: proto.Int64(16000)}); err != nil {
		t.Fatal(err)
	}
	if err := x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: &ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}}); err != nil {
		t.Fatal(err)
	}
	if l := limits(); l.GetMaxMemoryBytes() != 64<<30 || l.GetMaxCpuMillis() != 16000 || l.GetMaxPids() != 1000 {
		t.Fatalf("merged: %v", l)
	}
	// 0 puts a default back.
	if err := up(&ccv1.LimitSettings{MaxMemoryBytes: proto.Int64(0)}); err != nil {
		t.Fatal(err)
	}
	if l := limits(); l.MaxMemoryBytes != nil || l.GetMaxCpuMillis() != 16000 || l.GetMaxPids() != 1000 {
		t.Fatalf("after clearing memory: %v", l)
	}
	for _, bad := range []*ccv1.LimitSettings{
		{MaxMemoryBytes: proto.Int64(-1)},
		{MaxMemoryBytes: proto.Int64(1 << 20)},
		{MaxCpuMillis: proto.Int64(-5)},
		{MaxCpuMillis: proto.Int64(2_000_000)},
		{MaxPids: proto.Int64(32769)},
		{MaxPids: proto.Int64(-1)},
	} {
		if err := up(bad); !errors.Is(err, fsm.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", bad, err)
		}
	}
	if l := limits(); l.GetMaxCpuMillis() != 16000 || l.GetMaxPids() != 1000 {
		t.Fatalf("a refused update changed the caps: %v", l)
	}
}

// TestContainerFeed: the orchestrator's feed names every container record
// a batch changed, status reports included, and ReadChanged reads just
// those (nil for one removed); a restore asks for everything.
func TestContainerFeed(t *testing.T) {
	x := newSvcFixture(t)
	feed := x.f.SubscribeContainers()
	defer feed.Close()
	x.ops(createOp("t1", "n1", 1), createOp("t2", "", 2))
	x.must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n1", Statuses: []*ccv1.TaskStatus{{ContainerId: "t1", Generation: 1,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}})
	ch := feed.Take()
	if ch.All || len(ch.IDs) != 2 {
		t.Fatalf("changes after create and status: %+v", ch)
	}
	got := map[string]*statev1.ContainerRecord{}
	nodes := map[string]*ccv1.Node{}
	st, err := x.f.ReadChanged(ch, func(id string, rec *statev1.ContainerRecord) { got[id] = rec }, func(id string, n *ccv1.Node) { nodes[id] = n })
	if err != nil || len(st.Services) != 1 || len(st.Nodes) != 0 || len(st.Tasks) != 0 || len(nodes) != 0 {
		t.Fatalf("ReadChanged: %v %+v", err, st)
	}
	if got["t1"].GetContainer().GetStatus().GetState() != ccv1.ContainerState_CONTAINER_STATE_RUNNING || got["t2"] == nil {
		t.Fatalf("records read: %v", got)
	}
	if ch := feed.Take(); len(ch.IDs) != 0 || ch.All {
		t.Fatalf("a second Take without changes: %+v", ch)
	}
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Remove{Remove: "t2"}})
	ch = feed.Take()
	got = map[string]*statev1.ContainerRecord{}
	if _, err := x.f.ReadChanged(ch, func(id string, rec *statev1.ContainerRecord) { got[id] = rec }, func(string, *ccv1.Node) {}); err != nil {
		t.Fatal(err)
	}
	if rec, ok := got["t2"]; len(got) != 1 || !ok || rec != nil {
		t.Fatalf("after removing t2: %v", got)
	}
	// A node's record changing is named too.
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: "n1", State: ccv1.NodeState_NODE_STATE_DOWN})
	ch = feed.Take()
	if _, ok := ch.NodeRecords["n1"]; !ok || len(ch.IDs) != 0 {
		t.Fatalf("after a node update: %+v", ch)
	}
	if _, err := x.f.ReadChanged(ch, func(string, *statev1.ContainerRecord) {}, func(id string, n *ccv1.Node) { nodes[id] = n }); err != nil {
		t.Fatal(err)
	}
	if nodes["n1"].GetState() != ccv1.NodeState_NODE_STATE_DOWN {
		t.Fatalf("nodes read: %v", nodes)
	}
	snap := takeSnapshot(t, x.f)
	if err := x.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if ch := feed.Take(); !ch.All {
		t.Fatalf("after a restore: %+v", ch)
	}
}
