package fsm_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func volMount(name string) []*ccv1.Mount {
	return []*ccv1.Mount{{Type: "volume", Source: name, Target: "/data", VolumeNodeId: "n1", VolumeSizeBytes: 1 << 20}}
}

// A volume is recorded once per name on a known node, removal is refused
// while a container or a service mounts it, and the record survives a
// snapshot and restore.
func TestVolumes(t *testing.T) {
	x := newSvcFixture(t)
	create := func(name, node string) error {
		return x.apply(statev1.CommandType_COMMAND_TYPE_CREATE_VOLUME, &statev1.CreateVolume{Volume: &ccv1.Volume{Name: name, NodeId: node, SizeBytes: 1 << 20}})
	}
	if err := create("data", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := create("data", "n1"); !errors.Is(err, fsm.ErrExists) {
		t.Fatalf("second create: %v, want exists", err)
	}
	if err := create("other", "nope"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("create on an unknown node: %v, want not found", err)
	}
	x.must(statev1.CommandType_COMMAND_TYPE_CREATE_CONTAINER, &statev1.CreateContainer{Container: &ccv1.Container{Id: "c1", Name: "box", NodeId: "n1",
		Spec: &ccv1.ContainerSpec{Image: "img:1", Mounts: volMount("data")}}})
	spec := webSpec("img:1", 1)
	spec.Task.Mounts = volMount("data")
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: spec})

	remove := func() error {
		return x.apply(statev1.CommandType_COMMAND_TYPE_REMOVE_VOLUME, &statev1.RemoveVolume{Name: "data"})
	}
	err := remove()
	if !errors.Is(err, fsm.ErrFailedPrecondition) || !strings.Contains(err.Error(), "container box, service web") {
		t.Fatalf("remove in use: %v, want refused naming container box and service web", err)
	}
	v, err := x.f.Volume("data")
	if err != nil || v.NodeId != "n1" || strings.Join(v.UsedBy, ",") != "container box,service web" {
		t.Fatalf("volume: %v %v", v, err)
	}

	snap := takeSnapshot(t, x.f)
	dst := newFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if vs, err := dst.Volumes(); err != nil || len(vs) != 1 || vs[0].Name != "data" || vs[0].SizeBytes != 1<<20 {
		t.Fatalf("restored volumes: %v %v", vs, err)
	}

	x.must(statev1.CommandType_COMMAND_TYPE_REMOVE_CONTAINER, &statev1.RemoveContainer{Id: "c1"})
	x.must(statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: "s1", Spec: webSpec("img:1", 1)})
	if err := remove(); err != nil {
		t.Fatalf("remove unused: %v", err)
	}
	if _, err := x.f.Volume("data"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("removed volume: %v", err)
	}
}
