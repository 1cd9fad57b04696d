package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Volumes: admins create and remove them, viewers read them; a container
// that mounts one goes to its node, and the volume cannot be removed while
// it is mounted.
func TestVolumeAPI(t *testing.T) {
	h := newJobHarness(t)
	admin := h.srv.Client()
	n1, _, _ := h.node("n1")
	n2, _, _ := h.node("n2")
	for _, id := range []string{n1, n2} {
		if _, err := admin.Nodes.UpdateNode(ctxT(t), &ccv1.UpdateNodeRequest{Id: id, Availability: ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE}); err != nil {
			t.Fatal(err)
		}
	}
	_, v := h.token(ccv1.Role_ROLE_VIEWER)
	vols := ccv1.NewVolumeServiceClient(h.srv.Conn(""))
	viewer := ccv1.NewVolumeServiceClient(h.srv.Conn(v))

	_, err := viewer.CreateVolume(ctxT(t), &ccv1.CreateVolumeRequest{Name: "data"})
	wantCode(t, err, codes.PermissionDenied, "")
	_, err = vols.CreateVolume(ctxT(t), &ccv1.CreateVolumeRequest{Name: "data", Node: "n2", SizeBytes: 1 << 20})
	wantCode(t, err, codes.InvalidArgument, "size")
	_, err = vols.CreateVolume(ctxT(t), &ccv1.CreateVolumeRequest{Name: "bad/name", Node: "n2"})
	wantCode(t, err, codes.InvalidArgument, "volume name")
	created, err := vols.CreateVolume(ctxT(t), &ccv1.CreateVolumeRequest{Name: "data", Node: "n2", SizeBytes: 64 << 20})
	if err != nil || created.Volume.NodeId != n2 || created.Volume.NodeName != "n2" {
		t.Fatalf("create: %v %v", created, err)
	}
	_, err = vols.CreateVolume(ctxT(t), &ccv1.CreateVolumeRequest{Name: "data"})
	wantCode(t, err, codes.AlreadyExists, "")
	if l, err := viewer.ListVolumes(ctxT(t), &ccv1.ListVolumesRequest{}); err != nil || len(l.Volumes) != 1 {
		t.Fatalf("viewer list: %v %v", l, err)
	}

	spec := &ccv1.ContainerSpec{Image: "busybox", Mounts: []*ccv1.Mount{{Type: "volume", Source: "data", Target: "/data", VolumeNodeId: "forged"}}}
	c, err := admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Name: "user", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Container.Spec.Mounts[0]; c.Container.NodeId != n2 || m.VolumeNodeId != n2 || m.VolumeSizeBytes != 64<<20 {
		t.Errorf("container on %s with mount %v, want on n2 with the volume's node and size", c.Container.NodeId, m)
	}
	_, err = admin.Containers.CreateContainer(ctxT(t), &ccv1.CreateContainerRequest{Node: "n1", Spec: spec})
	wantCode(t, err, codes.FailedPrecondition, "leave out --node")

	_, err = vols.RemoveVolume(ctxT(t), &ccv1.RemoveVolumeRequest{Name: "data"})
	wantCode(t, err, codes.FailedPrecondition, "in use by container user")
	got, err := viewer.GetVolume(ctxT(t), &ccv1.GetVolumeRequest{Name: "data"})
	if err != nil || len(got.Volume.UsedBy) != 1 || got.Volume.UsedBy[0] != "container user" {
		t.Errorf("get: %v %v", got, err)
	}
	if _, err := admin.Containers.RemoveContainer(ctxT(t), &ccv1.RemoveContainerRequest{Id: c.Container.Id, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := vols.RemoveVolume(ctxT(t), &ccv1.RemoveVolumeRequest{Name: "data"}); err != nil {
		t.Fatalf("remove unused: %v", err)
	}
	_, err = viewer.GetVolume(ctxT(t), &ccv1.GetVolumeRequest{Name: "data"})
	wantCode(t, err, codes.NotFound, "")
}
