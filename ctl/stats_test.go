package ctl

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func (f *fakeAPI) ContainerStats(r *ccv1.ContainerStatsRequest, s grpc.ServerStreamingServer[ccv1.ContainerStatsResponse]) error {
	f.mu.Lock()
	f.statsReq = r
	rows := f.stats
	f.mu.Unlock()
	return s.Send(&ccv1.ContainerStatsResponse{Stats: rows})
}

func TestStatsNoStream(t *testing.T) {
	f := &fakeAPI{stats: []*ccv1.ContainerStats{
		{Id: "0123456789abcdef", Name: "box", CpuPercent: 12.5, MemoryUsageBytes: 3 << 20, MemoryLimitBytes: 64 << 20,
			Pids: 2, NetRxBytes: 2048, NetTxBytes: 512, BlockReadBytes: 4096, ReadAt: timestamppb.Now()},
		{Id: "fedcba9876543210", Name: "gone", Error: "not running"},
	}}
	conn := startFake(t, f)
	r := runCtl(conn, "stats", "--no-stream", "box", "gone")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	if got := f.statsReq; !got.GetNoStream() || strings.Join(got.GetContainers(), ",") != "box,gone" {
		t.Errorf("request = %v", got)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "CONTAINER ID") {
		t.Fatalf("want a header and two rows:\n%s", r.stdout)
	}
	for _, want := range []string{"0123456789ab", "box", "12.50%", "3.0 MiB / 64.0 MiB", "4.69%", "2.0 KiB / 512 B", "4.0 KiB / 0 B"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "gone") || !strings.Contains(lines[2], "--") {
		t.Errorf("a container with no figures shows them as --: %q", lines[2])
	}
	if !strings.Contains(r.stderr, "gone: not running") {
		t.Errorf("stderr does not say why gone has no figures: %q", r.stderr)
	}

	r = runCtl(conn, "stats", "--no-stream", "-o", "json")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	var out struct {
		Stats []struct {
			Name             string `json:"name"`
			CPUPercent       float64
			MemoryUsageBytes string `json:"memory_usage_bytes"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("-o json does not parse: %v\n%s", err, r.stdout)
	}
	if len(out.Stats) != 2 || out.Stats[0].Name != "box" || out.Stats[0].MemoryUsageBytes != "3145728" {
		t.Errorf("json = %+v", out)
	}
	if len(f.statsReq.GetContainers()) != 0 {
		t.Errorf("no names asked for %v", f.statsReq.GetContainers())
	}
}

// TestCombinedShortFlags runs `ps -aq` as docker users type it.
func TestCombinedShortFlags(t *testing.T) {
	f := &fakeAPI{containers: []*ccv1.Container{{Id: "0123456789abcdef", Name: "a"}, {Id: "fedcba9876543210", Name: "b"}}}
	conn := startFake(t, f)
	r := runCtl(conn, "ps", "-aq")
	if r.code != 0 {
		t.Fatalf("ps -aq: code %d: %s", r.code, r.stderr)
	}
	if r.stdout != "0123456789ab\nfedcba987654\n" {
		t.Errorf("ps -aq printed %q, want the short ids", r.stdout)
	}
	if !f.listReq.GetAll() {
		t.Error("ps -aq did not ask for all containers")
	}
	// The order does not matter.
	r = runCtl(conn, "ps", "-qa")
	if r.code != 0 || r.stdout != "0123456789ab\nfedcba987654\n" {
		t.Errorf("ps -qa: code %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	// An unknown letter is refused, naming the group.
	r = runCtl(conn, "ps", "-az")
	if r.code == 0 || !strings.Contains(r.stderr, "-az") {
		t.Errorf("ps -az: code %d, stderr %q", r.code, r.stderr)
	}
}
