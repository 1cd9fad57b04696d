package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// An agent joined through one server keeps working when that server (the
// leader) goes away: it fails over to another server it learnt from its
// session, stays ready, and runs what is created through the survivors.
func TestAgentFailsOverToAnotherServer(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	first := c.Servers[0]
	agent := first.StartAgent("node-ha")
	first.Client().LoadBusybox(t, demoImage)

	// The agent learns the server list from its session.
	deadline := time.Now().Add(30 * time.Second)
	for len(agent.ID.ServerList()) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(agent.ID.ServerList()); n != 3 {
		t.Fatalf("the agent knows %d servers, want 3", n)
	}

	first.Stop()
	survivor := c.Leader()
	cl := survivor.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: "after-failover", Node: "node-ha", Spec: &ccv1.ContainerSpec{
		Image: demoImage, Command: []string{"/bin/busybox", "echo", "still here"}, Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
	}})
	if err != nil {
		t.Fatalf("create after failover: %v", err)
	}
	waitState(t, cl, r.Container.Id, "exited", exited)
	if got := logsOf(t, cl, r.Container.Id); got != "still here\n" {
		t.Errorf("logs %q", got)
	}
	nodes, err := cl.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].State != ccv1.NodeState_NODE_STATE_READY {
		t.Errorf("nodes after failover: %v", nodes.Nodes)
	}
}

// The leader marks a node down when no server has heard from it for a
// while, and ready again when its agent comes back; a node whose session is
// on a follower stays ready.
func TestNodeHealth(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	follower := c.Followers()[0]
	agent := follower.StartAgent("node-hb")
	cl := c.Leader().Client()
	state := func() ccv1.NodeState {
		// On a loaded machine leadership may move during the test: a read
		// refused for that is tried again (through the new leader).
		deadline := time.Now().Add(60 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := cl.Nodes.GetNode(ctx, &ccv1.GetNodeRequest{Id: "node-hb"})
			cancel()
			if err == nil {
				return r.Node.State
			}
			if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			cl = c.Leader().Client()
		}
	}
	waitNode := func(want ccv1.NodeState) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for state() != want {
			if time.Now().After(deadline) {
				t.Fatalf("node never became %v", want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Connected to a follower only: the leader must not mark it down.
	// Three times the down delay is plenty for a wrong verdict to show.
	time.Sleep(3 * testcluster.NodeDownAfter)
	if s := state(); s != ccv1.NodeState_NODE_STATE_READY {
		t.Fatalf("a node with a live session on a follower is %v", s)
	}
	agent.Stop()
	waitNode(ccv1.NodeState_NODE_STATE_DOWN)
	agent.Restart()
	waitNode(ccv1.NodeState_NODE_STATE_READY)
}
