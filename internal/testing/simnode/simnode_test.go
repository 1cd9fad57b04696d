package simnode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/testing/simnode"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last error: %v)", what, timeout, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A fleet of simulated nodes joins a real control plane over mutual TLS,
// is ready, runs the containers placed on it, reports them running and
// exited, forgets removed ones, and a stopped node goes down.
func TestFleet(t *testing.T) {
	const count = 50
	srv := testcluster.Start(t)
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := c.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: count})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := simnode.Start(ctx, simnode.Config{
		Servers: []string{srv.Addr()}, Token: tok.Secret, Count: count, NamePrefix: "sim",
		Labels:    func(i int) map[string]string { return map[string]string{"rack": fmt.Sprint(i % 4)} },
		Heartbeat: 300 * time.Millisecond, // well within testcluster.NodeDownAfter
		Logger:    logging.Test(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	if fleet.Len() != count {
		t.Fatalf("fleet has %d nodes, want %d", fleet.Len(), count)
	}

	waitFor(t, 30*time.Second, "every node connected", func() (bool, error) { return fleet.Connected() == count, nil })
	nodeState := func(id string) (ccv1.NodeState, error) {
		r, err := c.Nodes.GetNode(ctx, &ccv1.GetNodeRequest{Id: id})
		if err != nil {
			return 0, err
		}
		return r.Node.State, nil
	}
	waitFor(t, 30*time.Second, "every node ready in ListNodes", func() (bool, error) {
		r, err := c.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range r.Nodes {
			if n.State == ccv1.NodeState_NODE_STATE_READY {
				ready++
			}
		}
		return len(r.Nodes) == count && ready == count, fmt.Errorf("%d nodes, %d ready", len(r.Nodes), ready)
	})
	r, err := c.Nodes.GetNode(ctx, &ccv1.GetNodeRequest{Id: fleet.NodeID(7)})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Node; n.Name != fleet.Name(7) || n.Labels["rack"] != "3" || n.Resources.GetCpuMillis() != 8000 || n.Version != "simnode" {
		t.Errorf("node 7 as the cluster sees it: %v", n)
	}

	// Containers placed on simulated nodes run at once.
	var ids []string
	for i := 0; i < 4; i++ {
		resp, err := c.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{
			Name: fmt.Sprintf("c%d", i), Node: fleet.NodeID(i * 10),
			Spec: &ccv1.ContainerSpec{Image: "example.com/sim:1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, resp.Container.Id)
	}
	containerState := func(id string) (ccv1.ContainerState, error) {
		r, err := c.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: id})
		if err != nil {
			return 0, err
		}
		return r.Container.GetStatus().GetState(), nil
	}
	for _, id := range ids {
		waitFor(t, 20*time.Second, "container "+id+" running", func() (bool, error) {
			st, err := containerState(id)
			return st == ccv1.ContainerState_CONTAINER_STATE_RUNNING, fmt.Errorf("state %v (%v)", st, err)
		})
	}
	if got := fleet.Tasks(); got != len(ids) {
		t.Errorf("fleet runs %d tasks, want %d", got, len(ids))
	}
	received := fleet.Received()
	for _, id := range ids {
		if _, ok := received[simnode.TaskKey{ID: id, Generation: 1}]; !ok {
			t.Errorf("no receive time for container %s generation 1 (have %v)", id, received)
		}
	}

	// Stopped: exited; removed: forgotten.
	if _, err := c.Containers.StopContainer(ctx, &ccv1.StopContainerRequest{Id: ids[0]}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "stopped container exited", func() (bool, error) {
		st, err := containerState(ids[0])
		return st == ccv1.ContainerState_CONTAINER_STATE_EXITED, fmt.Errorf("state %v (%v)", st, err)
	})
	if _, err := c.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: ids[1], Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the fleet runs 2 tasks", func() (bool, error) { return fleet.Tasks() == 2, nil })

	// A stopped node goes down; the others stay ready.
	fleet.Stop(0)
	waitFor(t, 20*time.Second, "stopped node down", func() (bool, error) {
		st, err := nodeState(fleet.NodeID(0))
		return st == ccv1.NodeState_NODE_STATE_DOWN, fmt.Errorf("state %v (%v)", st, err)
	})
	if st, err := nodeState(fleet.NodeID(1)); err != nil || st != ccv1.NodeState_NODE_STATE_READY {
		t.Errorf("node 1 is %v (%v), want ready", st, err)
	}
	if got := fleet.Connected(); got != count-1 {
		t.Errorf("%d nodes connected after stopping one, want %d", got, count-1)
	}
}

// A server restart ends every session; the nodes reconnect and get their
// full set again.
func TestReconnect(t *testing.T) {
	const count = 5
	srv := testcluster.Start(t)
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := c.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: count})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := simnode.Start(ctx, simnode.Config{
		Servers: []string{srv.Addr()}, Token: tok.Secret, Count: count,
		Heartbeat: 300 * time.Millisecond, ReportDelay: -1, Logger: logging.Test(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	waitFor(t, 30*time.Second, "every node connected", func() (bool, error) { return fleet.Connected() == count, nil })
	if _, err := c.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Node: fleet.NodeID(2), Spec: &ccv1.ContainerSpec{Image: "example.com/sim:1"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "one task running", func() (bool, error) { return fleet.Tasks() == 1, nil })

	before := fleet.Sessions()
	srv.Restart()
	waitFor(t, 30*time.Second, "every node reconnected", func() (bool, error) {
		return fleet.Sessions() >= before+count && fleet.Connected() == count, nil
	})
	if got := fleet.Tasks(); got != 1 {
		t.Errorf("after the reconnect the fleet runs %d tasks, want 1", got)
	}
	ends := 0
	for _, n := range fleet.SessionEnds() {
		ends += n
	}
	if ends < count {
		t.Errorf("%d session ends counted, want at least %d: %v", ends, count, fleet.SessionEnds())
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simnode.Config
	}{
		{"no servers", simnode.Config{Token: "CCTKN-1-x-y", Count: 1}},
		{"bad address", simnode.Config{Servers: []string{"nohost"}, Count: 1}},
		{"bad token", simnode.Config{Servers: []string{"127.0.0.1:1"}, Token: "nope", Count: 1}},
		{"no nodes", simnode.Config{Servers: []string{"127.0.0.1:1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}
