package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestStatsMove runs a container that fills 24 MiB of /dev/shm and then
// spins, on a real agent and containerd: its stats show that memory, CPU
// above zero and a CPU counter that grows from frame to frame; ccctl
// prints a row and -o json parses.
func TestStatsMove(t *testing.T) {
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("node-stats")
	loadDemoImage(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := cl.Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: "box", Spec: &ccv1.ContainerSpec{
		Image:     demoImage,
		Command:   []string{"/bin/busybox", "sh", "-c", "/bin/busybox head -c 25165824 /dev/zero > /dev/shm/fill && while :; do :; done"},
		Resources: &ccv1.ContainerResources{MemoryBytes: 128 << 20},
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, cl, r.Container.Id, "running", func(c *ccv1.Container) bool {
		return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
	})
	stats := ccv1.NewStatsServiceClient(srv.Conn(""))
	once := func() *ccv1.ContainerStats {
		t.Helper()
		st, err := stats.ContainerStats(ctx, &ccv1.ContainerStatsRequest{Containers: []string{"box"}, NoStream: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Stats) != 1 {
			t.Fatalf("frame %v", f)
		}
		return f.Stats[0]
	}
	var row *ccv1.ContainerStats
	for row = once(); row.MemoryUsageBytes < 24<<20; row = once() {
		if ctx.Err() != nil {
			t.Fatalf("memory never reached 24 MiB: %v", row)
		}
	}
	if row.Error != "" || row.Id != r.Container.Id || row.Name != "box" || row.NodeId == "" {
		t.Errorf("row %v", row)
	}
	if row.CpuPercent <= 0 || row.MemoryLimitBytes != 128<<20 || row.Pids < 1 {
		t.Errorf("a spinning container: cpu %v%%, limit %d, pids %d", row.CpuPercent, row.MemoryLimitBytes, row.Pids)
	}

	// Streamed, with no name: the frames keep coming and the CPU counter
	// grows.
	st, err := stats.ContainerStats(ctx, &ccv1.ContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var cpu []int64
	for len(cpu) < 2 {
		f, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Stats) != 1 || f.Stats[0].Name != "box" {
			t.Fatalf("frame %v", f)
		}
		cpu = append(cpu, f.Stats[0].CpuNanos)
	}
	if cpu[1] <= cpu[0] {
		t.Errorf("CPU time did not grow: %v", cpu)
	}

	// ccctl.
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(ctlEnv(t), "CC_ADDR="+srv.Addr(), "CC_TOKEN="+srv.Token, "CC_CACERT="+caFile)
	out := ccctl(t, env, "stats", "--no-stream", "box")
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.Contains(lines[1], "box") || !strings.Contains(lines[1], "/ 128.0 MiB") {
		t.Errorf("ccctl stats --no-stream box:\n%s", out)
	}
	out = ccctl(t, env, "stats", "--no-stream", "-o", "json")
	var frame struct {
		Stats []struct {
			Name       string  `json:"name"`
			CPUPercent float64 `json:"cpu_percent"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &frame); err != nil || len(frame.Stats) != 1 || frame.Stats[0].Name != "box" {
		t.Errorf("-o json: %v\n%s", err, out)
	}
	// Short flags combine.
	out = ccctl(t, env, "ps", "-aq")
	if strings.TrimSpace(out.stdout) != r.Container.Id[:12] {
		t.Errorf("ps -aq:\n%s", out)
	}
	if _, err := cl.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: "box", Force: true}); err != nil {
		t.Fatal(err)
	}
}

// Stats of a container whose node holds its session with another server
// are relayed by that server, as logs are.
func TestStatsThroughAnotherServer(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	first := c.Servers[0]
	first.StartAgent("node-relay")
	first.Client().LoadBusybox(t, demoImage)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := first.Client().Containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: "far", Spec: &ccv1.ContainerSpec{
		Image: demoImage, Command: []string{"/bin/busybox", "sleep", "300"}, Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range c.Servers[1:] {
		cl := other.Client()
		waitState(t, cl, r.Container.Id, "running", func(c *ccv1.Container) bool {
			return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
		})
		st, err := ccv1.NewStatsServiceClient(other.Conn("")).ContainerStats(ctx, &ccv1.ContainerStatsRequest{Containers: []string{"far"}, NoStream: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Stats) != 1 || f.Stats[0].Error != "" || f.Stats[0].Pids < 1 || f.Stats[0].MemoryUsageBytes == 0 {
			t.Errorf("through %s: %v", other.ID(), f.Stats)
		}
	}
	if _, err := first.Client().Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: "far", Force: true}); err != nil {
		t.Fatal(err)
	}
}
