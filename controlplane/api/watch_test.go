package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// recvUntil reads a watch stream until ok says the message is the one
// waited for, and fails the test when the stream ends first.
func recvUntil[M any](t *testing.T, what string, recv func() (M, error), ok func(M) bool) M {
	t.Helper()
	for {
		m, err := recv()
		if err != nil {
			t.Fatalf("%s: the stream ended: %v", what, err)
		}
		if ok(m) {
			return m
		}
	}
}

// TestWatchStreams: the node, container and service watches send what
// matches, then SYNCED, then a PUT per change and a REMOVED for what is
// gone or stops matching; viewers may watch and jobs tokens may not; the
// status counts jobs by state and sums the edge traffic the nodes report
// in their heartbeats, which the node's record shows too.
func TestWatchStreams(t *testing.T) {
	h := newJobHarness(t)
	_, viewer := h.token(ccv1.Role_ROLE_VIEWER)
	_, jobsToken := h.token(ccv1.Role_ROLE_JOBS)
	admin := h.srv.Client()
	nodeID, _, fake := h.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := h.srv.Conn(viewer)
	nodesC, ctrsC, svcsC := ccv1.NewNodeServiceClient(conn), ccv1.NewContainerServiceClient(conn), ccv1.NewServiceServiceClient(conn)

	// Jobs tokens may not watch the cluster.
	if st, err := ccv1.NewNodeServiceClient(h.srv.Conn(jobsToken)).WatchNodes(ctx, &ccv1.WatchNodesRequest{}); err == nil {
		if _, err = st.Recv(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a jobs token watching nodes: %v, want PermissionDenied", err)
		}
	}
	// A filter that names nothing is refused with what to do.
	if st, err := nodesC.WatchNodes(ctx, &ccv1.WatchNodesRequest{Id: "nope"}); err == nil {
		if _, err = st.Recv(); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ccctl node ls") {
			t.Fatalf("watching a node that does not exist: %v", err)
		}
	}

	nodes, err := nodesC.WatchNodes(ctx, &ccv1.WatchNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := nodes.Recv()
	if err != nil || first.Event != ccv1.WatchEvent_WATCH_EVENT_PUT || first.Id != nodeID || first.Node.GetAvailability() != ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE {
		t.Fatalf("first node event: %v, %v", first, err)
	}
	if m, err := nodes.Recv(); err != nil || m.Event != ccv1.WatchEvent_WATCH_EVENT_SYNCED {
		t.Fatalf("after the nodes: %v, %v; want SYNCED", m, err)
	}
	ctrs, err := ctrsC.WatchContainers(ctx, &ccv1.WatchContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ctrs.Recv(); err != nil || m.Event != ccv1.WatchEvent_WATCH_EVENT_SYNCED {
		t.Fatalf("containers of an empty cluster: %v, %v; want SYNCED at once", m, err)
	}
	svcs, err := svcsC.WatchServices(ctx, &ccv1.WatchServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := svcs.Recv(); err != nil || m.Event != ccv1.WatchEvent_WATCH_EVENT_SYNCED {
		t.Fatalf("services of an empty cluster: %v, %v; want SYNCED at once", m, err)
	}

	// The node becomes active: its watch says so.
	if _, err := admin.Nodes.UpdateNode(ctx, &ccv1.UpdateNodeRequest{Id: nodeID, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE}); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, "node activated", nodes.Recv, func(m *ccv1.WatchNodesResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_PUT && m.Node.GetAvailability() == ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	})

	// A service of one replica: the service, then its task on n1.
	svc, err := admin.Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{Replicas: 1, Task: &ccv1.ContainerSpec{Image: "busybox"}}})
	if err != nil {
		t.Fatal(err)
	}
	svcID := svc.Service.Id
	recvUntil(t, "service created", svcs.Recv, func(m *ccv1.WatchServicesResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_PUT && m.Id == svcID && m.Service.GetName() == "web"
	})
	task := recvUntil(t, "task placed", ctrs.Recv, func(m *ccv1.WatchContainersResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_PUT && m.Container.GetServiceId() == svcID && m.Container.GetNodeId() == nodeID
	}).Container
	recvUntil(t, "allocation on the node", nodes.Recv, func(m *ccv1.WatchNodesResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_PUT && m.Node.GetTasks() == 1
	})
	// A watch of the service's tasks, opened now, starts with that task.
	tasks, err := ctrsC.WatchContainers(ctx, &ccv1.WatchContainersRequest{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := tasks.Recv(); err != nil || m.Id != task.Id {
		t.Fatalf("the service's tasks: %v, %v", m, err)
	}
	if m, err := tasks.Recv(); err != nil || m.Event != ccv1.WatchEvent_WATCH_EVENT_SYNCED {
		t.Fatalf("after the service's task: %v, %v; want SYNCED", m, err)
	}

	// Its node reports it running: the task and the service's count move.
	h.report(nodeID, task.Id, &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, StartedAt: timestamppb.Now()})
	recvUntil(t, "task running", tasks.Recv, func(m *ccv1.WatchContainersResponse) bool {
		return m.Id == task.Id && m.Container.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
	})
	recvUntil(t, "service counts one running", svcs.Recv, func(m *ccv1.WatchServicesResponse) bool {
		return m.Id == svcID && m.Service.GetCounts().GetRunning() == 1
	})

	// Scaled to 0, the task stops: without all, it is REMOVED.
	if _, err := admin.Services.ScaleService(ctx, &ccv1.ScaleServiceRequest{Id: svcID, Replicas: 0}); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, "task removed from the list", ctrs.Recv, func(m *ccv1.WatchContainersResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_REMOVED && m.Id == task.Id
	})
	// Removed, the service goes too.
	if _, err := admin.Services.RemoveService(ctx, &ccv1.RemoveServiceRequest{Id: svcID}); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, "service removed", svcs.Recv, func(m *ccv1.WatchServicesResponse) bool {
		return m.Event == ccv1.WatchEvent_WATCH_EVENT_REMOVED && m.Id == svcID
	})

	// Jobs by state, and the edge traffic of the heartbeats.
	submit(t, h.admin, &ccv1.JobSpec{Image: "busybox"})
	submit(t, h.admin, &ccv1.JobSpec{Image: "busybox"})
	fake.edge.Store(&ccv1.EdgeTraffic{Requests: 42, Errors: 3})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := ccv1.NewClusterServiceClient(conn).GetStatus(ctx, &ccv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.JobsByState["JOB_STATE_QUEUED"] == 2 && st.Edge.GetRequests() == 42 && st.Edge.GetErrors() == 3 && st.EdgeNodes == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: jobs %v, edge %v on %d nodes; want 2 queued and 42 requests, 3 errors on 1 node", st.JobsByState, st.Edge, st.EdgeNodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, err := admin.Nodes.GetNode(ctx, &ccv1.GetNodeRequest{Id: nodeID}); err != nil || n.Node.GetEdge().GetRequests() != 42 {
		t.Fatalf("the node's edge traffic: %v, %v", n.GetNode().GetEdge(), err)
	}
}

// TestWatchREST: a watch over REST is newline-delimited JSON with the
// events by name, and its headers come before the first change.
func TestWatchREST(t *testing.T) {
	h := newJobHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL()+"/v1/services:watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.srv.Token)
	resp, err := h.srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/services:watch: %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the stream ended: %v", lines.Err())
		}
		var m struct {
			Result map[string]any `json:"result"`
			Error  any            `json:"error"`
		}
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil || m.Error != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return m.Result
	}
	if m := next(); m["event"] != "WATCH_EVENT_SYNCED" {
		t.Fatalf("first line %v, want SYNCED", m)
	}
	if _, err := h.srv.Client().Services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{Replicas: 1, Task: &ccv1.ContainerSpec{Image: "busybox"}}}); err != nil {
		t.Fatal(err)
	}
	m := next()
	svc, _ := m["service"].(map[string]any)
	if m["event"] != "WATCH_EVENT_PUT" || svc["name"] != "web" || svc["counts"] == nil {
		t.Fatalf("after creating a service: %v", m)
	}
}

// TestWatchQueues: a jobs token may follow the queues: the list, then the
// list again when a job is queued or a queue's limits change, and nothing
// when neither changed.
func TestWatchQueues(t *testing.T) {
	h := newJobHarness(t)
	_, jobsToken := h.token(ccv1.Role_ROLE_JOBS)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := h.jobsAs(jobsToken).WatchQueues(ctx, &ccv1.WatchQueuesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	find := func(m *ccv1.WatchQueuesResponse, name string) *ccv1.Queue {
		for _, q := range m.GetQueues() {
			if q.Name == name {
				return q
			}
		}
		return nil
	}
	first, err := st.Recv()
	if err != nil || find(first, "default") == nil || find(first, "default").Queued != 0 {
		t.Fatalf("first list: %v, %v", first, err)
	}
	submit(t, h.jobsAs(jobsToken), &ccv1.JobSpec{Image: "busybox"})
	if m, err := st.Recv(); err != nil || find(m, "default").GetQueued() != 1 {
		t.Fatalf("after a job was queued: %v, %v", m, err)
	}
	if _, err := h.admin.SetQueue(ctx, &ccv1.SetQueueRequest{Name: "batch", MaxRunning: 2}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil || find(m, "batch").GetMaxRunning() != 2 || find(m, "default").GetQueued() != 1 {
		t.Fatalf("after setting batch's limit: %v, %v", m, err)
	}
}

// TestWatchStatus: the status, then the status again after a write moved
// the raft indexes; a jobs token may follow it too.
func TestWatchStatus(t *testing.T) {
	h := newJobHarness(t)
	_, jobsToken := h.token(ccv1.Role_ROLE_JOBS)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := ccv1.NewClusterServiceClient(h.srv.Conn(jobsToken)).WatchStatus(ctx, &ccv1.WatchStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil || first.Status.GetLeaderId() == "" || first.Status.GetAppliedIndex() == 0 {
		t.Fatalf("first status: %v, %v", first, err)
	}
	submit(t, h.admin, &ccv1.JobSpec{Image: "busybox"})
	next := recvUntil(t, "a status after the write", st.Recv, func(m *ccv1.WatchStatusResponse) bool {
		return m.Status.GetJobsByState()["JOB_STATE_QUEUED"] == 1
	})
	if next.Status.GetAppliedIndex() <= first.Status.GetAppliedIndex() {
		t.Fatalf("applied index %d after a write, %d before", next.Status.GetAppliedIndex(), first.Status.GetAppliedIndex())
	}
}
