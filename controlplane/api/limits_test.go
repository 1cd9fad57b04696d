package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A jobs token cannot ask for more than the cluster's caps, nor run a job
// as root; the refusals name the cap and how to change it.
func TestSubmitJobCapsAndRoot(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	tok := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_JOBS})
	jobs := ccv1.NewJobServiceClient(srv.Conn(tok.Secret))
	submit := func(c ccv1.JobServiceClient, spec *ccv1.JobSpec) error {
		_, err := c.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: spec})
		return err
	}
	withRes := func(r *ccv1.ContainerResources) *ccv1.JobSpec { return &ccv1.JobSpec{Image: "busybox", Resources: r} }

	// pids have a hard cap, settings or not.
	wantCode(t, submit(jobs, withRes(&ccv1.ContainerResources{Pids: 1_000_000})), codes.InvalidArgument,
		"pids 1000000 is above the cluster's cap of 32768 (ccctl cluster settings --max-pids")

	resp, err := admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{
		MaxMemoryBytes: proto.Int64(64 << 30), MaxCpuMillis: proto.Int64(16000), MaxPids: proto.Int64(4096)}}})
	if err != nil {
		t.Fatal(err)
	}
	if l := resp.Settings.GetLimits(); l.GetMaxMemoryBytes() != 64<<30 || l.GetMaxCpuMillis() != 16000 || l.GetMaxPids() != 4096 {
		t.Fatalf("settings: %v", resp.Settings)
	}
	_, err = admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxPids: proto.Int64(1 << 20)}}})
	wantCode(t, err, codes.InvalidArgument, "limits.max_pids: between 1 and 32768")

	wantCode(t, submit(jobs, withRes(&ccv1.ContainerResources{MemoryBytes: 4 << 40})), codes.InvalidArgument,
		"memory 4TiB is above the cluster's cap of 64GiB (ccctl cluster settings --max-memory)")
	wantCode(t, submit(jobs, withRes(&ccv1.ContainerResources{CpuMillis: 1_000_000})), codes.InvalidArgument,
		"cpus 1000 is above the cluster's cap of 16 (ccctl cluster settings --max-cpus)")
	wantCode(t, submit(jobs, withRes(&ccv1.ContainerResources{Pids: 5000})), codes.InvalidArgument,
		"pids 5000 is above the cluster's cap of 4096")
	// Admins are capped too.
	wantCode(t, submit(ccv1.NewJobServiceClient(srv.Conn("")), withRes(&ccv1.ContainerResources{MemoryBytes: 4 << 40})), codes.InvalidArgument, "cap of 64GiB")

	for _, user := range []string{"0", "0:0", "1000:0"} {
		wantCode(t, submit(jobs, &ccv1.JobSpec{Image: "busybox", User: user}), codes.PermissionDenied, "only an admin token may run a job as root")
	}
	wantCode(t, submit(jobs, &ccv1.JobSpec{Image: "busybox", User: "root"}), codes.InvalidArgument, "numeric uid")

	// Within the caps, and as a non-root user, the job is taken; an admin
	// may run one as root. Its reservation is its limit.
	if err := submit(jobs, &ccv1.JobSpec{Image: "busybox", User: "1000:1000", Resources: &ccv1.ContainerResources{MemoryBytes: 1 << 30, MemoryReservationBytes: 1}}); err != nil {
		t.Fatalf("a job within the caps: %v", err)
	}
	if err := submit(ccv1.NewJobServiceClient(srv.Conn("")), &ccv1.JobSpec{Image: "busybox", User: "0"}); err != nil {
		t.Fatalf("an admin's root job: %v", err)
	}
	list, err := jobs.ListJobs(ctxT(t), &ccv1.ListJobsRequest{})
	if err != nil || len(list.Jobs) != 2 {
		t.Fatalf("jobs: %v, %v", list, err)
	}
	for _, j := range list.Jobs {
		if r := j.Spec.Resources; r.MemoryReservationBytes != r.MemoryBytes || j.Spec.User == "1000:1000" && r.MemoryBytes != 1<<30 {
			t.Fatalf("stored resources %v: the reservation is not the limit", r)
		}
	}
}

// Containers and services are capped like jobs, and bounded in size.
func TestContainerSpecCaps(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	if _, err := admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxMemoryBytes: proto.Int64(8 << 30)}}}); err != nil {
		t.Fatal(err)
	}
	task := func(r *ccv1.ContainerResources) *ccv1.ContainerSpec {
		return &ccv1.ContainerSpec{Image: "busybox", Resources: r}
	}
	_, err := admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Spec: task(&ccv1.ContainerResources{Pids: 1 << 40})})
	wantCode(t, err, codes.InvalidArgument, "pids 1099511627776 is above the cluster's cap of 32768")
	_, err = admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Spec: task(&ccv1.ContainerResources{MemoryBytes: 4 << 40})})
	wantCode(t, err, codes.InvalidArgument, "memory 4TiB is above the cluster's cap of 8GiB (ccctl cluster settings --max-memory)")
	// A reservation without a limit is what the scheduler counts: capped.
	_, err = admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Spec: task(&ccv1.ContainerResources{MemoryReservationBytes: 4 << 40})})
	wantCode(t, err, codes.InvalidArgument, "memory 4TiB is above the cluster's cap of 8GiB")
	_, err = admin.Services.CreateService(ctxT(t), &ccv1.CreateServiceRequest{Name: "web", Spec: &ccv1.ServiceSpec{Replicas: 1, Task: task(&ccv1.ContainerResources{MemoryBytes: 16 << 30})}})
	wantCode(t, err, codes.InvalidArgument, "memory 16GiB is above the cluster's cap of 8GiB")
	env := make([]string, 257)
	for i := range env {
		env[i] = "A=1"
	}
	_, err = admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Spec: &ccv1.ContainerSpec{Image: "busybox", Env: env}})
	wantCode(t, err, codes.InvalidArgument, "env: 257 entries, at most 256")
}
