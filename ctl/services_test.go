package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The fake's service, node-update and settings handlers (fakeAPI is in
// fake_test.go).

func (f *fakeAPI) CreateService(_ context.Context, r *ccv1.CreateServiceRequest) (*ccv1.CreateServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.createSvc = r
	return &ccv1.CreateServiceResponse{Service: &ccv1.Service{Id: "5e41ce0123456789", Name: r.Name, Spec: r.Spec, Version: 1}}, nil
}

func (f *fakeAPI) GetService(_ context.Context, r *ccv1.GetServiceRequest) (*ccv1.GetServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.svc == nil || (r.Id != f.svc.Name && !strings.HasPrefix(f.svc.Id, r.Id)) {
		return nil, status.Errorf(codes.NotFound, "no service %s", r.Id)
	}
	return &ccv1.GetServiceResponse{Service: f.svc}, nil
}

func (f *fakeAPI) UpdateService(_ context.Context, r *ccv1.UpdateServiceRequest) (*ccv1.UpdateServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateSvc = r
	revision := f.svc.Revision
	if f.raced {
		revision++
	}
	if r.Revision != 0 && r.Revision != revision {
		return nil, status.Errorf(codes.Aborted, "service %s is at revision %d, not %d", f.svc.Name, revision, r.Revision)
	}
	return &ccv1.UpdateServiceResponse{Service: &ccv1.Service{Id: r.Id, Name: f.svc.Name, Spec: r.Spec, Version: f.svc.Version + 1}}, nil
}

func (f *fakeAPI) ScaleService(_ context.Context, r *ccv1.ScaleServiceRequest) (*ccv1.ScaleServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales = append(f.scales, r)
	if r.Id == "nope" {
		return nil, status.Error(codes.NotFound, "no service nope")
	}
	return &ccv1.ScaleServiceResponse{Service: &ccv1.Service{Name: r.Id, Spec: &ccv1.ServiceSpec{Replicas: r.Replicas}}}, nil
}

func (f *fakeAPI) RollbackService(_ context.Context, r *ccv1.RollbackServiceRequest) (*ccv1.RollbackServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbacks = append(f.rollbacks, r.Id)
	return &ccv1.RollbackServiceResponse{Service: &ccv1.Service{Name: r.Id}}, nil
}

func (f *fakeAPI) RemoveService(_ context.Context, r *ccv1.RemoveServiceRequest) (*ccv1.RemoveServiceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removes = append(f.removes, r.Id)
	return &ccv1.RemoveServiceResponse{}, nil
}

func (f *fakeAPI) ListServices(context.Context, *ccv1.ListServicesRequest) (*ccv1.ListServicesResponse, error) {
	return &ccv1.ListServicesResponse{Services: f.services}, nil
}

func (f *fakeAPI) ListServiceTasks(_ context.Context, r *ccv1.ListServiceTasksRequest) (*ccv1.ListServiceTasksResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasksReq = r
	return &ccv1.ListServiceTasksResponse{Tasks: f.tasks}, nil
}

func (f *fakeAPI) ServiceLogs(r *ccv1.ServiceLogsRequest, s grpc.ServerStreamingServer[ccv1.ServiceLogsResponse]) error {
	f.mu.Lock()
	f.svcLogsReq = r
	f.mu.Unlock()
	for _, m := range f.logs {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeAPI) UpdateNode(_ context.Context, r *ccv1.UpdateNodeRequest) (*ccv1.UpdateNodeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodeUpdates = append(f.nodeUpdates, r)
	return &ccv1.UpdateNodeResponse{Node: &ccv1.Node{Id: "n1", Name: r.Id, Availability: r.Availability, UserLabels: r.AddLabels}}, nil
}

// UpdateSettings merges as the server does: an unspecified strategy and a
// missing edge keep the current ones, an empty HMAC key the stored one
// when the key id stays.
func (f *fakeAPI) UpdateSettings(_ context.Context, r *ccv1.UpdateSettingsRequest) (*ccv1.UpdateSettingsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settingsReqs = append(f.settingsReqs, r)
	cur := &ccv1.Settings{}
	if f.settings != nil {
		cur = proto.Clone(f.settings).(*ccv1.Settings)
	}
	if s := r.GetSettings().GetSchedulingStrategy(); s != ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		cur.SchedulingStrategy = s
	}
	if e := r.GetSettings().GetEdge(); e != nil {
		old := cur.GetEdge()
		cur.Edge = proto.Clone(e).(*ccv1.EdgeSettings)
		cur.Edge.AcmeEabHmacKeySet = false
		if cur.Edge.AcmeEabHmacKey == "" && cur.Edge.AcmeEabKeyId != "" && cur.Edge.AcmeEabKeyId == old.GetAcmeEabKeyId() {
			cur.Edge.AcmeEabHmacKey = old.GetAcmeEabHmacKey()
		}
		if (cur.Edge.AcmeEabKeyId == "") != (cur.Edge.AcmeEabHmacKey == "") {
			return nil, status.Error(codes.InvalidArgument, "invalid argument: ACME external account binding: give both the key id and the HMAC key")
		}
	}
	if l := r.GetSettings().GetLimits(); l != nil {
		if cur.Limits == nil {
			cur.Limits = &ccv1.LimitSettings{}
		}
		for _, f := range []struct{ to, from **int64 }{{&cur.Limits.MaxMemoryBytes, &l.MaxMemoryBytes}, {&cur.Limits.MaxCpuMillis, &l.MaxCpuMillis}, {&cur.Limits.MaxPids, &l.MaxPids}} {
			if *f.from != nil {
				*f.to = *f.from
			}
		}
	}
	if q := r.GetSettings().GetQuotas(); q != nil {
		if cur.Quotas == nil {
			cur.Quotas = &ccv1.QuotaSettings{}
		}
		for _, f := range []struct{ to, from **int64 }{{&cur.Quotas.JobsPerToken, &q.JobsPerToken}, {&cur.Quotas.OutputBytesPerToken, &q.OutputBytesPerToken}} {
			if *f.from != nil {
				*f.to = *f.from
			}
		}
	}
	f.settings = cur
	return &ccv1.UpdateSettingsResponse{Settings: shownSettings(cur)}, nil
}

// shownSettings are settings as the API returns them: the HMAC key as
// acme_eab_hmac_key_set only.
func shownSettings(s *ccv1.Settings) *ccv1.Settings {
	if s.GetEdge() == nil {
		return s
	}
	out := proto.Clone(s).(*ccv1.Settings)
	out.Edge.AcmeEabHmacKeySet = out.Edge.AcmeEabHmacKey != ""
	out.Edge.AcmeEabHmacKey = ""
	return out
}

func (f *fakeAPI) GetStatus(context.Context, *ccv1.GetStatusRequest) (*ccv1.GetStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &ccv1.GetStatusResponse{ClusterId: "cl1", Settings: shownSettings(f.settings)}, nil
}

func TestServiceCreateSendsTheSpec(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	t.Setenv("FROM_HERE", "here")
	r := runCtl(conn, "service", "create", "web", "--image", "nginx:1.27", "--replicas", "3",
		"-e", "A=1,2", "--env", "FROM_HERE", "--memory", "256m", "--cpus", "0.5", "--reserve-memory", "128m", "--reserve-cpus", "0.25",
		"-p", "8080:80", "-p", "5353:53/udp", "--constraint", "node.labels.zone==a", "--constraint", "node.name!=db1",
		"--spread", "node.labels.rack", "--health-http", "/healthz", "--health-port", "80", "--health-interval", "2s",
		"--health-timeout", "1s", "--health-retries", "5", "--health-start-period", "30s", "--restart-policy", "on-failure",
		"--update-parallelism", "2", "--update-delay", "10s", "--update-failure-action", "rollback", "--update-monitor", "20s",
		"--network", "none", "-u", "1000", "-w", "/app", "--read-only",
		"nginx", "-g", "daemon off;", "-e", "B=2")
	if r.code != 0 || r.stdout != "5e41ce0123456789\n" || r.stderr != "" {
		t.Fatalf("service create: %+v; want the id only", r)
	}
	want := &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{
		Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 3,
		Task: &ccv1.ContainerSpec{
			Image:   "nginx:1.27",
			Command: []string{"nginx", "-g", "daemon off;", "-e", "B=2"},
			Env:     []string{"A=1,2", "FROM_HERE=here"},
			Resources: &ccv1.ContainerResources{MemoryBytes: 256 << 20, CpuMillis: 500,
				MemoryReservationBytes: 128 << 20, CpuReservationMillis: 250},
			ReadOnly: true, User: "1000", Workdir: "/app",
			Restart: ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE,
			Ports: []*ccv1.PortMapping{
				{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
				{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
			},
			Network: ccv1.NetworkMode_NETWORK_MODE_NONE,
			Health: &ccv1.HealthCheck{HttpPath: "/healthz", HttpPort: 80, Interval: durationpb.New(2 * time.Second),
				Timeout: durationpb.New(time.Second), Retries: 5, StartPeriod: durationpb.New(30 * time.Second)},
		},
		Placement: &ccv1.Placement{Constraints: []string{"node.labels.zone==a", "node.name!=db1"}, Spread: []string{"node.labels.rack"}},
		Update: &ccv1.UpdateConfig{Parallelism: 2, Delay: durationpb.New(10 * time.Second),
			FailureAction: ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, Monitor: durationpb.New(20 * time.Second)},
	}}
	f.locked(func() {
		if !proto.Equal(f.createSvc, want) {
			t.Errorf("CreateService got\n%v\nwant\n%v", f.createSvc, want)
		}
	})

	// The least: one replica, restarted always; flags after NAME are still
	// flags, -- starts the command; --health-cmd runs in a shell.
	cases := []struct {
		args []string
		want *ccv1.ServiceSpec
	}{
		{[]string{"service", "create", "api", "--image", "app:1", "--health-cmd", "wget -q -O- localhost/", "--", "app", "--port", "80"},
			&ccv1.ServiceSpec{Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 1, Task: &ccv1.ContainerSpec{
				Image: "app:1", Command: []string{"app", "--port", "80"}, Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS,
				Health: &ccv1.HealthCheck{Exec: []string{"/bin/sh", "-c", "wget -q -O- localhost/"}}}}},
		{[]string{"svc", "create", "--mode", "global", "agent", "--image", "busybox", "--restart", "none"},
			&ccv1.ServiceSpec{Mode: ccv1.ServiceMode_SERVICE_MODE_GLOBAL, Task: &ccv1.ContainerSpec{
				Image: "busybox", Restart: ccv1.RestartPolicy_RESTART_POLICY_NO}}},
		{[]string{"service", "create", "zero", "--image", "busybox", "--replicas", "0", "--restart-policy", "any"},
			&ccv1.ServiceSpec{Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Task: &ccv1.ContainerSpec{
				Image: "busybox", Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS}}},
	}
	for _, c := range cases {
		r := runCtl(conn, c.args...)
		f.locked(func() {
			if r.code != 0 || !proto.Equal(f.createSvc.GetSpec(), c.want) {
				t.Errorf("%q: %+v\nsent %v\nwant %v", c.args, r, f.createSvc.GetSpec(), c.want)
			}
		})
	}

	// -o json prints the service.
	r = runCtl(conn, "service", "create", "web", "--image", "nginx", "-o", "json")
	var got struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.ID != "5e41ce0123456789" || got.Name != "web" {
		t.Errorf("service create -o json: %+v (%v)", r, err)
	}
}

func TestServiceCreateRejectsBadInput(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	create := func(args ...string) []string {
		return append([]string{"service", "create", "web", "--image", "nginx"}, args...)
	}
	cases := map[string][]string{
		"ccctl: service create needs --image IMAGE (e.g. ccctl service create web --image nginx:1.27)":                            {"service", "create", "web"},
		"ccctl: service create needs a NAME (e.g. ccctl service create web --image nginx:1.27)":                                   {"service", "create", "--image", "nginx"},
		`ccctl: --replicas "-1": must be a whole number ≥ 0 (e.g. 3)`:                                                             create("--replicas", "-1"),
		`ccctl: --replicas "three": must be a whole number ≥ 0 (e.g. 3)`:                                                          create("--replicas", "three"),
		"ccctl: --replicas: a global service runs one task on every node that matches; drop --replicas, or use --mode replicated": create("--mode", "global", "--replicas", "2"),
		`ccctl: --mode "daemon": use replicated (--replicas tasks) or global (one task on every node)`:                            create("--mode", "daemon"),
		`ccctl: --memory "lots": use a size like 64m or 1g`:                                                                       create("--memory", "lots"),
		`ccctl: --reserve-cpus "x": use a number of cores like 0.5 or 2`:                                                          create("--reserve-cpus", "x"),
		"ccctl: --reserve-memory 512.0 MiB is more than the memory limit 256.0 MiB: a task cannot reserve more than it may use":   create("--memory", "256m", "--reserve-memory", "512m"),
		`ccctl: --publish "80": give the host port too, as HOSTPORT:PORT (e.g. 8080:80)`:                                          create("-p", "80"),
		`ccctl: --constraint "zone=a": use ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE (e.g. node.labels.zone==a, node.name!=db1)`:       create("--constraint", "zone=a"),
		`ccctl: --spread "zone": use a node attribute like node.labels.zone`:                                                      create("--spread", "zone"),
		"ccctl: --health-cmd and --health-http: a service has one health check; give one of them":                                 create("--health-cmd", "true", "--health-http", "/"),
		"ccctl: --health-interval tunes a health check: add --health-cmd CMD or --health-http PATH":                               create("--health-interval", "5s"),
		"ccctl: --health-port is the port of --health-http: add --health-http PATH, or drop --health-port":                        create("--health-cmd", "true", "--health-port", "80"),
		`ccctl: --health-http "healthz": give a path like /healthz`:                                                               create("--health-http", "healthz"),
		`ccctl: --health-interval "5": use a duration more than 0 like 10s, 500ms or 1m30s`:                                       create("--health-cmd", "true", "--health-interval", "5"),
		`ccctl: --health-retries "0": use 1 or more failures in a row`:                                                            create("--health-cmd", "true", "--health-retries", "0"),
		`ccctl: --restart-policy "unless-stopped": use any (or always), on-failure, or none (or no)`:                              create("--restart-policy", "unless-stopped"),
		`ccctl: --update-failure-action "ignore": use rollback, pause or continue`:                                                create("--update-failure-action", "ignore"),
		`ccctl: --update-parallelism "0": use 1 or more tasks at a time`:                                                          create("--update-parallelism", "0"),
		`ccctl: --update-delay "-1s": use a duration like 10s, 500ms or 1m30s`:                                                    create("--update-delay", "-1s"),
		`ccctl: --network "host": use bridge or none`:                                                                             create("--network", "host"),
	}
	for want, args := range cases {
		r := runCtl(conn, args...)
		if r.code != 1 || r.stderr != want+"\n" || r.stdout != "" {
			t.Errorf("%q: %+v\nwant exit 1 and %q", args, r, want)
		}
	}
	f.locked(func() {
		if f.createSvc != nil {
			t.Errorf("CreateService was called: %v", f.createSvc)
		}
	})
}

// current is the service that update tests start from.
func current() *ccv1.Service {
	return &ccv1.Service{Id: "5e41ce0123456789", Name: "web", Version: 7, Revision: 7, Spec: &ccv1.ServiceSpec{
		Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 2,
		Task: &ccv1.ContainerSpec{
			Image: "nginx:1.27", Command: []string{"nginx"}, Env: []string{"A=1", "OLD=x", "B=2"},
			Resources: &ccv1.ContainerResources{MemoryBytes: 256 << 20, Pids: 50},
			Restart:   ccv1.RestartPolicy_RESTART_POLICY_ALWAYS, User: "1000",
			Ports:  []*ccv1.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp"}},
			Health: &ccv1.HealthCheck{HttpPath: "/healthz", Retries: 3},
		},
		Placement: &ccv1.Placement{Constraints: []string{"node.labels.zone==a"}, Spread: []string{"node.labels.rack"}},
		Update:    &ccv1.UpdateConfig{Parallelism: 1, FailureAction: ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE},
	}}
}

func TestServiceUpdateChangesOnlyGivenFlags(t *testing.T) {
	f := &fakeAPI{svc: current()}
	conn := startFake(t, f)
	change := func(fn func(s *ccv1.ServiceSpec)) *ccv1.ServiceSpec {
		s := proto.Clone(current().Spec).(*ccv1.ServiceSpec)
		fn(s)
		return s
	}
	cases := []struct {
		args []string
		want *ccv1.ServiceSpec
	}{
		{[]string{"--image", "nginx:1.28"}, change(func(s *ccv1.ServiceSpec) { s.Task.Image = "nginx:1.28" })},
		{[]string{"--replicas", "5", "--env-add", "A=9", "-e", "C=3", "--env-rm", "OLD"}, change(func(s *ccv1.ServiceSpec) {
			s.Replicas = 5
			s.Task.Env = []string{"B=2", "A=9", "C=3"}
		})},
		{[]string{"--constraint-rm", "node.labels.zone==a", "--constraint-add", "node.labels.zone==b", "--spread-rm", "node.labels.rack"},
			change(func(s *ccv1.ServiceSpec) { s.Placement = &ccv1.Placement{Constraints: []string{"node.labels.zone==b"}} })},
		{[]string{"--publish-rm", "5353/udp", "-p", "8080:8080"}, change(func(s *ccv1.ServiceSpec) {
			s.Task.Ports = []*ccv1.PortMapping{{HostPort: 8080, ContainerPort: 8080, Protocol: "tcp"}}
		})},
		{[]string{"--health-interval", "10s", "--cpus", "1", "--memory", "0", "--read-only"}, change(func(s *ccv1.ServiceSpec) {
			s.Task.Health.Interval = durationpb.New(10 * time.Second)
			s.Task.Resources = &ccv1.ContainerResources{CpuMillis: 1000, Pids: 50}
			s.Task.ReadOnly = true
		})},
		{[]string{"--health-cmd", "true"}, change(func(s *ccv1.ServiceSpec) {
			s.Task.Health = &ccv1.HealthCheck{Exec: []string{"/bin/sh", "-c", "true"}, Retries: 3}
		})},
		{[]string{"--no-healthcheck", "--update-failure-action", "rollback", "--restart-policy", "on-failure"}, change(func(s *ccv1.ServiceSpec) {
			s.Task.Health = nil
			s.Update.FailureAction = ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
			s.Task.Restart = ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE
		})},
		{[]string{"--", "nginx", "-g", "daemon off;"}, change(func(s *ccv1.ServiceSpec) { s.Task.Command = []string{"nginx", "-g", "daemon off;"} })},
		{[]string{"--"}, change(func(s *ccv1.ServiceSpec) { s.Task.Command = nil })},
		// No flags: the same spec, which starts a paused update again.
		{nil, current().Spec},
	}
	for _, c := range cases {
		f.locked(func() { f.updateSvc = nil })
		args := append([]string{"service", "update", "web"}, c.args...)
		r := runCtl(conn, args...)
		if r.code != 0 || r.stdout != "web\n" || r.stderr != "" {
			t.Errorf("%q: %+v; want the name", args, r)
		}
		want := &ccv1.UpdateServiceRequest{Id: "5e41ce0123456789", Revision: 7, Spec: c.want}
		f.locked(func() {
			if !proto.Equal(f.updateSvc, want) {
				t.Errorf("%q: UpdateService got\n%v\nwant\n%v", args, f.updateSvc, want)
			}
		})
	}
}

func TestServiceUpdateRefusals(t *testing.T) {
	f := &fakeAPI{svc: current()}
	conn := startFake(t, f)
	cases := map[string][]string{
		"ccctl: --env-rm NOPE: the service sets no NOPE":                                                                            {"--env-rm", "NOPE"},
		`ccctl: --constraint-rm "node.labels.zone==b": the service has no such constraint (it has ["node.labels.zone==a"])`:         {"--constraint-rm", "node.labels.zone==b"},
		"ccctl: --publish-rm 9090: the service publishes no port 9090/tcp":                                                          {"--publish-rm", "9090"},
		"ccctl: --no-healthcheck removes the health check: drop the other --health flags":                                           {"--no-healthcheck", "--health-retries", "2"},
		`ccctl: service update: unexpected "nginx:1.28"; a new command goes after --: ccctl service update web -- COMMAND [ARG...]`: {"nginx:1.28"},
	}
	for want, flags := range cases {
		args := append([]string{"service", "update", "web"}, flags...)
		r := runCtl(conn, args...)
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("%q: %+v\nwant exit 1 and %q", args, r, want)
		}
	}
	f.locked(func() {
		if f.updateSvc != nil {
			t.Errorf("UpdateService was called: %v", f.updateSvc)
		}
	})
	if r := runCtl(conn, "service", "update", "nope", "--replicas", "1"); r.code != 1 || r.stderr != "ccctl: not found: no service nope\n" {
		t.Errorf("update of a missing service: %+v", r)
	}

	// Someone else updated the service between ccctl's read and its write:
	// refused, and said so.
	f.locked(func() { f.raced = true })
	r := runCtl(conn, "service", "update", "web", "--replicas", "3")
	want := "ccctl: service update web: someone changed the service since ccctl read it; run the command again (service web is at revision 8, not 7)\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("update from a stale read: %+v\nwant %q", r, want)
	}
	f.locked(func() {
		if f.updateSvc.GetRevision() != 7 {
			t.Errorf("UpdateService got revision %d; want the revision read, 7", f.updateSvc.GetRevision())
		}
	})
}

func TestServiceScale(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "service", "scale", "web=3", "api=0")
	if r.code != 0 || r.stdout != "web scaled to 3\napi scaled to 0\n" || r.stderr != "" {
		t.Errorf("service scale: %+v", r)
	}
	f.locked(func() {
		want := []*ccv1.ScaleServiceRequest{{Id: "web", Replicas: 3}, {Id: "api", Replicas: 0}}
		if len(f.scales) != 2 || !proto.Equal(f.scales[0], want[0]) || !proto.Equal(f.scales[1], want[1]) {
			t.Errorf("ScaleService got %v; want %v", f.scales, want)
		}
		f.scales = nil
	})

	// One that fails does not stop the others.
	r = runCtl(conn, "service", "scale", "nope=1", "web=2")
	if r.code != 1 || r.stdout != "web scaled to 2\n" || r.stderr != "ccctl: service scale nope=1: not found: no service nope\n" {
		t.Errorf("service scale nope=1 web=2: %+v", r)
	}

	// Bad forms: nothing is scaled.
	f.locked(func() { f.scales = nil })
	bad := map[string][]string{
		`ccctl: service scale: "web" is not NAME=REPLICAS (e.g. web=3)`:                    {"web=2", "web"},
		`ccctl: service scale: "=3" is not NAME=REPLICAS (e.g. web=3)`:                     {"=3"},
		`ccctl: service scale: "web=x": REPLICAS must be a whole number ≥ 0 (e.g. web=3)`:  {"web=x"},
		`ccctl: service scale: "web=-1": REPLICAS must be a whole number ≥ 0 (e.g. web=3)`: {"web=-1"},
		"ccctl: service scale needs NAME=REPLICAS (e.g. ccctl service scale web=3)":        nil,
	}
	for want, args := range bad {
		r := runCtl(conn, append([]string{"service", "scale"}, args...)...)
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("service scale %q: %+v\nwant %q", args, r, want)
		}
	}
	f.locked(func() {
		if len(f.scales) != 0 {
			t.Errorf("ScaleService was called: %v", f.scales)
		}
	})
}

func TestServiceLsTable(t *testing.T) {
	f := &fakeAPI{services: []*ccv1.Service{
		{Id: "5e41ce0123456789", Name: "web", Spec: &ccv1.ServiceSpec{Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 4,
			Task: &ccv1.ContainerSpec{Image: "nginx:1.27", Ports: []*ccv1.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}},
			Counts: &ccv1.ServiceCounts{Desired: 4, Running: 2}, Update: &ccv1.UpdateStatus{State: ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK}},
		{Id: "a9e47", Name: "agent", Spec: &ccv1.ServiceSpec{Mode: ccv1.ServiceMode_SERVICE_MODE_GLOBAL, Task: &ccv1.ContainerSpec{Image: "busybox"}},
			Counts: &ccv1.ServiceCounts{Desired: 3, Running: 3}},
	}}
	conn := startFake(t, f)
	r := runCtl(conn, "service", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("service ls: %+v", r)
	}
	rows := [][]string{
		{"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "UPDATE"},
		{"5e41ce012345", "web", "replicated", "2/4", "nginx:1.27", "8080->80/tcp", "rolling-back"},
		{"a9e47", "agent", "global", "3/3", "busybox", "-", "-"},
	}
	for i, want := range rows {
		if got := strings.Fields(lines[i]); !equalStrings(got, want) {
			t.Errorf("line %d: %q; want %q", i, got, want)
		}
	}
	if r := runCtl(conn, "service", "ls", "-q"); r.stdout != "5e41ce012345\na9e47\n" {
		t.Errorf("service ls -q: %+v", r)
	}
	r = runCtl(conn, "service", "ls", "-o", "json")
	var got struct {
		Services []struct {
			Counts struct {
				Running string `json:"running"`
			} `json:"counts"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Services) != 2 || got.Services[0].Counts.Running != "2" {
		t.Errorf("service ls -o json: %v\n%s", err, r.stdout)
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestServicePsTable(t *testing.T) {
	now := time.Now()
	before := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	running := ccv1.DesiredState_DESIRED_STATE_RUNNING
	f := &fakeAPI{
		nodes: []*ccv1.Node{{Id: "n1", Name: "node-1"}},
		tasks: []*ccv1.Container{ // as the server orders them: by slot, current first
			{Id: "7a5c0123456789ab", Name: "web.1.7a5c0123", Slot: 1, NodeId: "n1", Desired: running, Spec: &ccv1.ContainerSpec{Image: "nginx"},
				Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_RUNNING, Health: ccv1.HealthState_HEALTH_STATE_HEALTHY, StartedAt: before(2 * time.Minute)}},
			{Id: "7a5c3333", Name: "web.1.7a5c3333", Slot: 1, NodeId: "n1", Desired: ccv1.DesiredState_DESIRED_STATE_STOPPED, Spec: &ccv1.ContainerSpec{Image: "nginx:old"},
				Message: "replaced by an update",
				Status:  &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_EXITED, ExitCode: 0, FinishedAt: before(10 * time.Minute)}},
			{Id: "7a5c1111", Name: "web.2.7a5c1111", Slot: 2, Desired: running, Spec: &ccv1.ContainerSpec{Image: "nginx"}, CreatedAt: before(5 * time.Second),
				PendingReason: "no node has 2.0 GiB of memory free (node-1 has 512.0 MiB)",
				Status:        &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_PENDING}},
			{Id: "7a5c2222", Name: "web.3.7a5c2222", Slot: 3, NodeId: "n9", Desired: ccv1.DesiredState_DESIRED_STATE_STOPPED, Spec: &ccv1.ContainerSpec{Image: "nginx"},
				AssignedAt: before(4 * time.Hour),
				Status:     &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_FAILED, Error: "image not found: nginx", FinishedAt: before(3 * time.Hour)}},
			{Id: "7a5c4444", Name: "web.4.7a5c4444", Slot: 4, NodeId: "n1", Desired: running, Spec: &ccv1.ContainerSpec{Image: "nginx"},
				AssignedAt: before(time.Second), UpdatedAt: before(time.Hour),
				Status: &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED}},
		},
	}
	conn := startFake(t, f)
	r := runCtl(conn, "service", "ps", "web", "-a")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 6 {
		t.Fatalf("service ps: %+v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR" {
		t.Errorf("header %q", lines[0])
	}
	rows := []string{
		"7a5c01234567 web.1 nginx node-1 running running (healthy) 2 minutes ago -",
		"7a5c3333 \\_ web.1 nginx:old node-1 stopped exited (0) 10 minutes ago replaced by an update",
		"7a5c1111 web.2 nginx - running pending 5 seconds ago no node has 2.0 GiB of memory free (node-1 has 512.0 MiB)",
		"7a5c2222 web.3 nginx n9 stopped failed 3 hours ago image not found: nginx",
		"7a5c4444 web.4 nginx node-1 running assigned 1 second ago -",
	}
	for i, want := range rows {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("row %d:\n got %q\nwant %q", i+1, got, want)
		}
	}
	f.locked(func() {
		if want := (&ccv1.ListServiceTasksRequest{Id: "web", All: true}); !proto.Equal(f.tasksReq, want) {
			t.Errorf("ListServiceTasks got %v; want %v", f.tasksReq, want)
		}
	})
	if r := runCtl(conn, "service", "ps"); r.code != 1 || !strings.Contains(r.stderr, "service ps needs exactly one service ID or NAME") {
		t.Errorf("service ps with no name: %+v", r)
	}
}

func TestServiceLogsPrefixesLines(t *testing.T) {
	f := &fakeAPI{logs: []*ccv1.ServiceLogsResponse{
		{Task: "web.1", Stream: "stdout", Data: []byte("a\nb")},
		{Task: "web.2", Stream: "stderr", Data: []byte("e1\n")},
		{Task: "web.2", Stream: "stdout", Data: []byte("x\ny\n")},
		{Task: "web.1", Stream: "stdout", Data: []byte("c\n")},
		{Task: "web.2", Stream: "stdout", Data: []byte("no newline")},
	}}
	conn := startFake(t, f)
	r := runCtl(conn, "service", "logs", "web", "-f", "--tail", "5")
	wantOut := "web.1 | a\nweb.2 | x\nweb.2 | y\nweb.1 | bc\nweb.2 | no newline\n"
	if r.code != 0 || r.stdout != wantOut || r.stderr != "web.2 | e1\n" {
		t.Errorf("service logs: %+v\nwant stdout %q and stderr %q", r, wantOut, "web.2 | e1\n")
	}
	f.locked(func() {
		if want := (&ccv1.ServiceLogsRequest{Id: "web", Follow: true, Tail: 5}); !proto.Equal(f.svcLogsReq, want) {
			t.Errorf("ServiceLogs got %v; want %v", f.svcLogsReq, want)
		}
	})
	r = runCtl(conn, "service", "logs", "--raw", "web")
	if r.code != 0 || r.stdout != "a\nx\ny\nbc\nno newline\n" || r.stderr != "e1\n" {
		t.Errorf("service logs --raw: %+v", r)
	}
	if r := runCtl(conn, "service", "logs", "web", "--tail", "x"); r.code != 1 || r.stderr != "ccctl: --tail \"x\": use a number of lines or all\n" {
		t.Errorf("service logs --tail x: %+v", r)
	}
}

func TestServiceRmRollbackInspect(t *testing.T) {
	f := &fakeAPI{svc: current()}
	conn := startFake(t, f)
	if r := runCtl(conn, "service", "rm", "web", "api"); r.code != 0 || r.stdout != "web\napi\n" {
		t.Errorf("service rm: %+v", r)
	}
	if r := runCtl(conn, "service", "rollback", "web"); r.code != 0 || r.stdout != "web\n" {
		t.Errorf("service rollback: %+v", r)
	}
	f.locked(func() {
		if !equalStrings(f.removes, []string{"web", "api"}) || !equalStrings(f.rollbacks, []string{"web"}) {
			t.Errorf("removed %q, rolled back %q", f.removes, f.rollbacks)
		}
	})
	r := runCtl(conn, "service", "inspect", "web")
	var got struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Spec    struct {
			Task struct {
				Health struct {
					HTTPPath string `json:"http_path"`
				} `json:"health"`
			} `json:"task"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.ID != "5e41ce0123456789" || got.Version != "7" || got.Spec.Task.Health.HTTPPath != "/healthz" {
		t.Errorf("service inspect: %+v (%v)", r, err)
	}
	if r := runCtl(conn, "service", "rm"); r.code != 1 || !strings.Contains(r.stderr, "service rm needs at least one argument") {
		t.Errorf("service rm with no name: %+v", r)
	}
}

func TestNodeAvailabilityAndLabels(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	active, pause, drain := ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, ccv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	cases := []struct {
		args []string
		want *ccv1.UpdateNodeRequest
	}{
		{[]string{"node", "drain", "node-2"}, &ccv1.UpdateNodeRequest{Id: "node-2", Availability: drain}},
		{[]string{"node", "pause", "node-2"}, &ccv1.UpdateNodeRequest{Id: "node-2", Availability: pause}},
		{[]string{"node", "cordon", "node-2"}, &ccv1.UpdateNodeRequest{Id: "node-2", Availability: pause}},
		{[]string{"node", "activate", "node-2"}, &ccv1.UpdateNodeRequest{Id: "node-2", Availability: active}},
		{[]string{"node", "uncordon", "node-2"}, &ccv1.UpdateNodeRequest{Id: "node-2", Availability: active}},
		{[]string{"node", "label", "node-2", "zone=a", "disk=ssd", "--rm", "old", "gpu-", "empty="},
			&ccv1.UpdateNodeRequest{Id: "node-2", AddLabels: map[string]string{"zone": "a", "disk": "ssd", "empty": ""}, RemoveLabels: []string{"old", "gpu"}}},
		{[]string{"node", "update", "node-2", "--availability", "drain", "--label-add", "zone=b", "--label-rm", "disk"},
			&ccv1.UpdateNodeRequest{Id: "node-2", Availability: drain, AddLabels: map[string]string{"zone": "b"}, RemoveLabels: []string{"disk"}}},
	}
	for _, c := range cases {
		f.locked(func() { f.nodeUpdates = nil })
		r := runCtl(conn, c.args...)
		if r.code != 0 || r.stdout != "node-2\n" {
			t.Errorf("%q: %+v", c.args, r)
		}
		f.locked(func() {
			if len(f.nodeUpdates) != 1 || !proto.Equal(f.nodeUpdates[0], c.want) {
				t.Errorf("%q: UpdateNode got %v; want %v", c.args, f.nodeUpdates, c.want)
			}
		})
	}

	f.locked(func() { f.nodeUpdates = nil })
	bad := map[string][]string{
		`ccctl: node label: "zone" is not KEY=VALUE (to remove the label: --rm zone, or zone-)`:                       {"node", "label", "node-2", "zone"},
		`ccctl: node label: label "=a": the key must be a word without spaces (e.g. zone=a)`:                          {"node", "label", "node-2", "=a"},
		`ccctl: node label: label "zone" is both set and removed; give it once`:                                       {"node", "label", "node-2", "zone=a", "zone-"},
		"ccctl: node label needs labels to set (KEY=VALUE) or remove (--rm KEY), e.g. ccctl node label node-2 zone=a": {"node", "label", "node-2"},
		`ccctl: --availability "off": use active, pause or drain`:                                                     {"node", "update", "node-2", "--availability", "off"},
		"ccctl: node update changes nothing: give --availability, --label-add or --label-rm":                          {"node", "update", "node-2"},
	}
	for want, args := range bad {
		r := runCtl(conn, args...)
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("%q: %+v\nwant %q", args, r, want)
		}
	}
	f.locked(func() {
		if len(f.nodeUpdates) != 0 {
			t.Errorf("UpdateNode was called: %v", f.nodeUpdates)
		}
	})
	if r := runCtl(conn, "node", "drain"); r.code != 1 || !strings.Contains(r.stderr, "node drain needs at least one argument") {
		t.Errorf("node drain with no node: %+v", r)
	}
}

func TestNodeLsTable(t *testing.T) {
	f := &fakeAPI{nodes: []*ccv1.Node{{Id: "n1", Name: "node-1", State: ccv1.NodeState_NODE_STATE_READY,
		Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, Address: "10.0.0.1", Version: "dev", Tasks: 3,
		Resources: &ccv1.Resources{CpuMillis: 4000, MemoryBytes: 8 << 30}, UserLabels: map[string]string{"zone": "a"},
		Allocated: &ccv1.Resources{CpuMillis: 1500}}}}
	conn := startFake(t, f)
	r := runCtl(conn, "node", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("node ls: %+v", r)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "ID NAME STATE AVAILABILITY ADDRESS CPU MEMORY TASKS VERSION" {
		t.Errorf("header %q", lines[0])
	}
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "n1 node-1 ready drain 10.0.0.1 4 8.0 GiB 3 dev" {
		t.Errorf("row %q", lines[1])
	}
}

func TestClusterSettings(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	firstLine := func(s string) string { l, _, _ := strings.Cut(s, "\n"); return strings.Join(strings.Fields(l), " ") }
	if r := runCtl(conn, "cluster", "settings"); r.code != 0 || firstLine(r.stdout) != "Scheduling strategy: spread" {
		t.Errorf("cluster settings with none set: %+v", r)
	}
	r := runCtl(conn, "cluster", "settings", "--scheduling-strategy", "binpack")
	if r.code != 0 || firstLine(r.stdout) != "Scheduling strategy: binpack" {
		t.Errorf("cluster settings --scheduling-strategy binpack: %+v", r)
	}
	f.locked(func() {
		if want := (&ccv1.Settings{SchedulingStrategy: ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}); !proto.Equal(f.settings, want) {
			t.Errorf("UpdateSettings got %v; want %v", f.settings, want)
		}
	})
	r = runCtl(conn, "cluster", "settings", "-o", "json")
	var settings struct {
		Strategy string `json:"scheduling_strategy"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &settings); r.code != 0 || err != nil || settings.Strategy != "SCHEDULING_STRATEGY_BINPACK" {
		t.Errorf("cluster settings -o json: %+v (%v)", r, err)
	}
	if r := runCtl(conn, "status"); r.code != 0 || !strings.Contains(r.stdout, "Scheduling:") || !strings.Contains(r.stdout, "binpack") {
		t.Errorf("status does not show the strategy: %+v", r)
	}
	want := "ccctl: --scheduling-strategy \"random\": use spread (fewest tasks first) or binpack (fullest node that fits first)\n"
	if r := runCtl(conn, "cluster", "settings", "--scheduling-strategy", "random"); r.code != 1 || r.stderr != want {
		t.Errorf("bad strategy: %+v", r)
	}
}

func TestClusterSettingsLimits(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "cluster", "settings")
	for _, want := range []string{"Max memory:           largest node's (default)\n", "Max CPUs:             largest node's (default)\n", "Max pids:             32768 (default)\n"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%+v", want, r)
		}
	}
	r = runCtl(conn, "cluster", "settings", "--max-memory", "64g", "--max-cpus", "16", "--max-pids", "4096")
	if r.code != 0 {
		t.Fatalf("cluster settings --max-*: %+v", r)
	}
	want := &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{
		MaxMemoryBytes: proto.Int64(64 << 30), MaxCpuMillis: proto.Int64(16000), MaxPids: proto.Int64(4096)}}}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1]; !proto.Equal(got, want) {
			t.Errorf("UpdateSettings got\n%v\nwant\n%v", got, want)
		}
	})
	for _, want := range []string{"Max memory:           64.0 GiB\n", "Max CPUs:             16\n", "Max pids:             4096\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%s", want, r.stdout)
		}
	}
	// One flag sends one cap; 0 is sent (the default back); the strategy
	// alone sends no limits.
	if r := runCtl(conn, "cluster", "settings", "--max-memory", "0"); r.code != 0 {
		t.Fatalf("--max-memory 0: %+v", r)
	}
	if r := runCtl(conn, "cluster", "settings", "--scheduling-strategy", "binpack"); r.code != 0 {
		t.Fatalf("--scheduling-strategy: %+v", r)
	}
	f.locked(func() {
		n := len(f.settingsReqs)
		if got := f.settingsReqs[n-2].Settings.Limits; !proto.Equal(got, &ccv1.LimitSettings{MaxMemoryBytes: proto.Int64(0)}) {
			t.Errorf("--max-memory 0 sent %v", got)
		}
		if got := f.settingsReqs[n-1].Settings.Limits; got != nil {
			t.Errorf("a strategy change sent limits %v", got)
		}
	})
	for _, bad := range [][]string{{"--max-pids", "40000"}, {"--max-pids", "lots"}, {"--max-memory", "1k"}, {"--max-cpus", "-1"}} {
		if r := runCtl(conn, append([]string{"cluster", "settings"}, bad...)...); r.code != 1 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%v: %+v", bad, r)
		}
	}
}

func TestClusterSettingsQuotas(t *testing.T) {
	f := &fakeAPI{}
	conn := startFake(t, f)
	r := runCtl(conn, "cluster", "settings")
	for _, want := range []string{"Jobs per token:       none (default)\n", "Output per token:     none (default)\n"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%+v", want, r)
		}
	}
	r = runCtl(conn, "cluster", "settings", "--quota-jobs", "100", "--quota-output-bytes", "10g")
	if r.code != 0 {
		t.Fatalf("cluster settings --quota-*: %+v", r)
	}
	want := &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Quotas: &ccv1.QuotaSettings{
		JobsPerToken: proto.Int64(100), OutputBytesPerToken: proto.Int64(10 << 30)}}}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1]; !proto.Equal(got, want) {
			t.Errorf("UpdateSettings got\n%v\nwant\n%v", got, want)
		}
	})
	for _, want := range []string{"Jobs per token:       100\n", "Output per token:     10.0 GiB\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster settings lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCtl(conn, "cluster", "settings", "--quota-jobs", "0"); r.code != 0 {
		t.Fatalf("--quota-jobs 0: %+v", r)
	}
	f.locked(func() {
		if got := f.settingsReqs[len(f.settingsReqs)-1].Settings.Quotas; !proto.Equal(got, &ccv1.QuotaSettings{JobsPerToken: proto.Int64(0)}) {
			t.Errorf("--quota-jobs 0 sent %v", got)
		}
	})
	for _, bad := range [][]string{{"--quota-jobs", "-1"}, {"--quota-jobs", "lots"}, {"--quota-output-bytes", "big"}} {
		if r := runCtl(conn, append([]string{"cluster", "settings"}, bad...)...); r.code != 1 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%v: %+v", bad, r)
		}
	}
}

func TestServiceUpdateOfAGlobalService(t *testing.T) {
	global := current()
	global.Spec.Mode, global.Spec.Replicas = ccv1.ServiceMode_SERVICE_MODE_GLOBAL, 0
	f := &fakeAPI{svc: global}
	conn := startFake(t, f)
	bad := map[string][]string{
		"ccctl: --replicas: a global service runs one task on every node that matches; drop --replicas, or use --mode replicated": {"--replicas", "2"},
		"ccctl: --mode replicated: the service is global now; add --replicas N":                                                   {"--mode", "replicated"},
	}
	for want, flags := range bad {
		r := runCtl(conn, append([]string{"service", "update", "web"}, flags...)...)
		if r.code != 1 || r.stderr != want+"\n" {
			t.Errorf("%q: %+v\nwant %q", flags, r, want)
		}
	}
	if r := runCtl(conn, "service", "update", "web", "--mode", "replicated", "--replicas", "2"); r.code != 0 {
		t.Fatalf("update to replicated: %+v", r)
	}
	f.locked(func() {
		if s := f.updateSvc.GetSpec(); s.GetMode() != ccv1.ServiceMode_SERVICE_MODE_REPLICATED || s.GetReplicas() != 2 {
			t.Errorf("UpdateService got mode %v, replicas %d; want replicated, 2", s.GetMode(), s.GetReplicas())
		}
	})
}

func (f *fakeAPI) GetNode(_ context.Context, r *ccv1.GetNodeRequest) (*ccv1.GetNodeResponse, error) {
	return &ccv1.GetNodeResponse{Node: &ccv1.Node{Id: "n1", Name: r.Id, UserLabels: map[string]string{"zone": "a"},
		Allocated: &ccv1.Resources{CpuMillis: 1500, MemoryBytes: 1 << 30}, Tasks: 2}}, nil
}

func TestNodeInspectShowsUserLabelsAndAllocated(t *testing.T) {
	conn := startFake(t, &fakeAPI{})
	r := runCtl(conn, "node", "inspect", "node-1")
	var got struct {
		UserLabels map[string]string `json:"user_labels"`
		Allocated  struct {
			CPUMillis string `json:"cpu_millis"`
		} `json:"allocated"`
		Tasks int `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.UserLabels["zone"] != "a" || got.Allocated.CPUMillis != "1500" || got.Tasks != 2 {
		t.Errorf("node inspect: %+v (%v)", r, err)
	}
}
