package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// --privileged and seccomp=unconfined need an admin token and the
// cluster's security.allow_privileged; other profiles and disk limits are
// checked when submitted.
func TestSecurityProfileGate(t *testing.T) {
	srv := testcluster.Start(t)
	admin := srv.Client()
	viewer := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
	create := func(c ccv1.ContainerServiceClient, sec *ccv1.SecurityProfile, res *ccv1.ContainerResources) error {
		_, err := c.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Spec: &ccv1.ContainerSpec{Image: "busybox", Security: sec, Resources: res}})
		return err
	}
	privileged := &ccv1.SecurityProfile{Privileged: true}
	unconfined := &ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED}

	wantCode(t, create(ccv1.NewContainerServiceClient(srv.Conn(viewer.Secret)), privileged, nil), codes.PermissionDenied, "")
	wantCode(t, create(admin.Containers, privileged, nil), codes.PermissionDenied,
		"--privileged is off in this cluster: an admin may turn it on with `ccctl cluster settings --allow-privileged=true`")
	wantCode(t, create(admin.Containers, unconfined, nil), codes.PermissionDenied, "--security-opt seccomp=unconfined is off in this cluster")
	_, err := admin.Services.CreateService(ctxT(t), &ccv1.CreateServiceRequest{Name: "p", Spec: &ccv1.ServiceSpec{Replicas: 1,
		Task: &ccv1.ContainerSpec{Image: "busybox", Security: privileged}}})
	wantCode(t, err, codes.PermissionDenied, "is off in this cluster")

	wantCode(t, create(admin.Containers, &ccv1.SecurityProfile{CapAdd: []string{"NET_WIZARD"}}, nil), codes.InvalidArgument, `capability "NET_WIZARD": unknown`)
	wantCode(t, create(admin.Containers, &ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM, SeccompProfile: []byte(`{"defaultAction":"SCMP_ACT_MAYBE"}`)}, nil),
		codes.InvalidArgument, `defaultAction "SCMP_ACT_MAYBE"`)
	wantCode(t, create(admin.Containers, nil, &ccv1.ContainerResources{DiskBytes: 1 << 20}), codes.InvalidArgument, "disk: at least 16m")

	// A cluster cap on disk limits.
	if _, err := admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxDiskBytes: proto.Int64(1 << 30)}}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, create(admin.Containers, nil, &ccv1.ContainerResources{DiskBytes: 2 << 30}), codes.InvalidArgument,
		"disk 2GiB is above the cluster's cap of 1GiB (ccctl cluster settings --max-disk)")
	_, err = admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxDiskBytes: proto.Int64(1)}}})
	wantCode(t, err, codes.InvalidArgument, "limits.max_disk_bytes: at least 16 MiB")
	// A job has no disk limit.
	tok := createToken(t, admin, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_JOBS})
	_, err = ccv1.NewJobServiceClient(srv.Conn(tok.Secret)).SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox",
		Resources: &ccv1.ContainerResources{DiskBytes: 64 << 20}}})
	wantCode(t, err, codes.InvalidArgument, "a job's root is read-only")

	resp, err := admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Security: &ccv1.SecuritySettings{AllowPrivileged: proto.Bool(true)}}})
	if err != nil || !resp.Settings.GetSecurity().GetAllowPrivileged() {
		t.Fatalf("settings: %v, %v", resp, err)
	}
	// Another update keeps it.
	resp, err = admin.Cluster.UpdateSettings(ctxT(t), &ccv1.UpdateSettingsRequest{Settings: &ccv1.Settings{Limits: &ccv1.LimitSettings{MaxPids: proto.Int64(100)}}})
	if err != nil || !resp.Settings.GetSecurity().GetAllowPrivileged() {
		t.Fatalf("settings: %v, %v", resp, err)
	}
	for _, sec := range []*ccv1.SecurityProfile{privileged, unconfined} {
		if err := create(admin.Containers, sec, nil); grpcstatus.Code(err) == codes.PermissionDenied {
			t.Errorf("%v with allow_privileged on: %v", sec, err)
		}
	}
	wantCode(t, create(ccv1.NewContainerServiceClient(srv.Conn(viewer.Secret)), privileged, nil), codes.PermissionDenied, "")
}
