package ctl

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The fake's service watch: two services, SYNCED, web scaled up, api
// removed, then the server goes away.
func (f *fakeAPI) WatchServices(_ *ccv1.WatchServicesRequest, s grpc.ServerStreamingServer[ccv1.WatchServicesResponse]) error {
	svc := func(id, name string, running uint64) *ccv1.Service {
		return &ccv1.Service{Id: id, Name: name, Spec: &ccv1.ServiceSpec{Replicas: 2, Task: &ccv1.ContainerSpec{Image: "nginx"}},
			Counts: &ccv1.ServiceCounts{Running: running, Desired: 2}}
	}
	put := func(v *ccv1.Service) *ccv1.WatchServicesResponse {
		return &ccv1.WatchServicesResponse{Event: ccv1.WatchEvent_WATCH_EVENT_PUT, Id: v.Id, Service: v}
	}
	for _, m := range []*ccv1.WatchServicesResponse{
		put(svc("bbbbbbbbbbbbbbbb", "web", 1)),
		put(svc("aaaaaaaaaaaaaaaa", "api-with-a-long-name", 2)),
		{Event: ccv1.WatchEvent_WATCH_EVENT_SYNCED},
		put(svc("bbbbbbbbbbbbbbbb", "web", 2)),
		{Event: ccv1.WatchEvent_WATCH_EVENT_REMOVED, Id: "aaaaaaaaaaaaaaaa"},
	} {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "the server is shutting down: watch again")
}

// TestServiceLsWatch: service ls -w prints the table sorted by name, then
// a row per change in the table's columns, a removed service as removed,
// and ends with the server's error; -o json prints the events as lines.
func TestServiceLsWatch(t *testing.T) {
	conn := startFake(t, &fakeAPI{})
	r := runCtl(conn, "service", "ls", "-w")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code == 0 || !strings.Contains(r.stderr, "shutting down: watch again") || len(lines) != 5 {
		t.Fatalf("service ls -w: %+v", r)
	}
	for i, want := range [][]string{
		{"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "UPDATE"},
		{"aaaaaaaaaaaa", "api-with-a-long-name", "replicated", "2/2", "nginx", "-", "-"},
		{"bbbbbbbbbbbb", "web", "replicated", "1/2", "nginx", "-", "-"},
		{"bbbbbbbbbbbb", "web", "replicated", "2/2", "nginx", "-", "-"},
		{"aaaaaaaaaaaa", "api-with-a-long-name", "replicated", "2/2", "nginx", "-", "removed"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want the fields %q", i, lines[i], want)
		}
	}
	// A row printed after the table keeps its columns.
	if col := strings.Index(lines[0], "MODE"); strings.Index(lines[3], "replicated") != col {
		t.Errorf("a later row's MODE at %d, the header's at %d:\n%s", strings.Index(lines[3], "replicated"), col, r.stdout)
	}

	r = runCtl(conn, "service", "ls", "-w", "-o", "json")
	lines = strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 5 || !strings.Contains(lines[2], `"WATCH_EVENT_SYNCED"`) || !strings.Contains(lines[4], `"WATCH_EVENT_REMOVED"`) {
		t.Fatalf("service ls -w -o json: %+v", r)
	}

	if r := runCtl(conn, "service", "ls", "-w", "-q"); r.code == 0 || !strings.Contains(r.stderr, "--quiet and --watch") {
		t.Fatalf("service ls -w -q: %+v", r)
	}
}
