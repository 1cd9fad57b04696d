package fsm_test

import (
	"bytes"
	"io"
	"sort"
	"testing"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func ids(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func sameIDs(got map[string]struct{}, want ...string) bool {
	g := ids(got)
	if len(g) != len(want) {
		return false
	}
	sort.Strings(want)
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

// TestChangeFeed: the API's feed names the nodes, containers and services
// each batch changed: a task's create names the task, its service and its
// node; a status report the task and its service but not the node (what
// is allocated there did not change); a service update the service; a
// node update the node; a removal what it removed; and a restore asks
// for everything. C is ready after each change and Take empties it.
func TestChangeFeed(t *testing.T) {
	x := newSvcFixture(t)
	feed := x.f.SubscribeChanges()
	defer feed.Close()
	take := func() fsm.Changes {
		t.Helper()
		select {
		case <-feed.C():
		default:
			t.Fatal("the feed's channel is not ready after a change")
		}
		return feed.Take()
	}

	x.ops(createOp("t1", "n1", 1), createOp("t2", "", 2))
	ch := take()
	if ch.All || !sameIDs(ch.Containers, "t1", "t2") || !sameIDs(ch.Services, "s1") || !sameIDs(ch.Nodes, "n1") {
		t.Fatalf("after creating t1 on n1 and t2 pending: %+v", ch)
	}
	if ch := feed.Take(); !ch.Empty() {
		t.Fatalf("a second Take without changes: %+v", ch)
	}

	x.must(statev1.CommandType_COMMAND_TYPE_REPORT_STATUS, &statev1.ReportStatus{NodeId: "n1", Statuses: []*ccv1.TaskStatus{{ContainerId: "t1", Generation: 1,
		Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING}}}})
	ch = take()
	if !sameIDs(ch.Containers, "t1") || !sameIDs(ch.Services, "s1") || len(ch.Nodes) != 0 {
		t.Fatalf("after a status report: %+v", ch)
	}

	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:1", 3)})
	ch = take()
	if !sameIDs(ch.Services, "s1") || len(ch.Containers) != 0 || len(ch.Nodes) != 0 {
		t.Fatalf("after a service update: %+v", ch)
	}

	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: "n1", Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN})
	ch = take()
	if !sameIDs(ch.Nodes, "n1") || len(ch.Containers) != 0 {
		t.Fatalf("after a node update: %+v", ch)
	}

	// Changes pile up between two Takes.
	x.ops(&statev1.TaskOp{Op: &statev1.TaskOp_Remove{Remove: "t1"}})
	x.must(statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE, &statev1.RemoveService{Id: "s1"})
	ch = take()
	if !sameIDs(ch.Containers, "t1", "t2") || !sameIDs(ch.Services, "s1") || !sameIDs(ch.Nodes, "n1") {
		t.Fatalf("after removing t1, then the service (and t2): %+v", ch)
	}

	// A refused command leaves the feed alone.
	if err := x.apply(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:1", 1)}); err == nil {
		t.Fatal("updating a removed service was accepted")
	}
	if ch := feed.Take(); !ch.Empty() {
		t.Fatalf("after a refused command: %+v", ch)
	}

	snap := takeSnapshot(t, x.f)
	if err := x.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if ch := take(); !ch.All {
		t.Fatalf("after a restore: %+v", ch)
	}

	// A closed feed hears nothing more.
	feed.Close()
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: &ccv1.Service{Id: "s2", Name: "api", Spec: webSpec("img:2", 1)}})
	if ch := feed.Take(); !ch.Empty() {
		t.Fatalf("a closed feed got %+v", ch)
	}
}
