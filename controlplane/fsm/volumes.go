package fsm

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// bucketVolumes holds ccv1.Volumes by name.
var bucketVolumes = []byte("volumes")

func applyCreateVolume(tx *txn, at time.Time, msg proto.Message) error {
	v := msg.(*statev1.CreateVolume).GetVolume()
	if v.GetName() == "" || v.NodeId == "" || v.SizeBytes <= 0 {
		return fmt.Errorf("%w: a volume needs a name, a node and a size", ErrInvalid)
	}
	b := tx.Bucket(bucketVolumes)
	if b.Get([]byte(v.Name)) != nil {
		return fmt.Errorf("volume %q: %w", v.Name, ErrExists)
	}
	if tx.Bucket(bucketNodes).Get([]byte(v.NodeId)) == nil {
		return fmt.Errorf("node %s: %w", v.NodeId, ErrNotFound)
	}
	rec := &ccv1.Volume{Name: v.Name, NodeId: v.NodeId, SizeBytes: v.SizeBytes, CreatedAt: ts(at)}
	tx.touched.volumes(rec.NodeId) // its session sends the node's volume list
	return put(b, rec.Name, rec)
}

func applyRemoveVolume(tx *txn, _ time.Time, msg proto.Message) error {
	name := msg.(*statev1.RemoveVolume).GetName()
	b := tx.Bucket(bucketVolumes)
	var old ccv1.Volume
	if err := get(b, name, &old); err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	users, err := volumeUsers(tx.Tx, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: volume %q is in use by %s: remove them first", ErrFailedPrecondition, name, strings.Join(users, ", "))
	}
	tx.touched.volumes(old.NodeId)
	return b.Delete([]byte(name))
}

// volumeUsers names the containers (not tasks of a service) and services
// whose spec mounts the volume, sorted.
func volumeUsers(tx *bolt.Tx, name string) ([]string, error) {
	all, err := allVolumeUsers(tx)
	return all[name], err
}

// allVolumeUsers maps each mounted volume to the containers (not tasks of a
// service) and services that mount it, sorted.
func allVolumeUsers(tx *bolt.Tx) (map[string][]string, error) {
	users := map[string][]string{}
	add := func(spec *ccv1.ContainerSpec, who string) {
		seen := map[string]bool{}
		for _, m := range spec.GetMounts() {
			if m.Type == "volume" && !seen[m.Source] {
				seen[m.Source] = true
				users[m.Source] = append(users[m.Source], who)
			}
		}
	}
	err := each(tx, bucketContainers, func() *statev1.ContainerRecord { return &statev1.ContainerRecord{} }, func(r *statev1.ContainerRecord) {
		if c := r.GetContainer(); c.ServiceId == "" {
			add(c.Spec, "container "+c.Name)
		}
	})
	if err != nil {
		return nil, err
	}
	err = each(tx, bucketServices, func() *ccv1.Service { return &ccv1.Service{} }, func(s *ccv1.Service) {
		add(s.GetSpec().GetTask(), "service "+s.Name)
	})
	for _, u := range users {
		slices.Sort(u)
	}
	return users, err
}

// Volumes returns every volume, in name order, with its users.
func (f *FSM) Volumes() ([]*ccv1.Volume, error) {
	var out []*ccv1.Volume
	err := f.View(func(tx *bolt.Tx) error {
		if err := each(tx, bucketVolumes, func() *ccv1.Volume { return &ccv1.Volume{} }, func(v *ccv1.Volume) { out = append(out, v) }); err != nil {
			return err
		}
		users, err := allVolumeUsers(tx)
		for _, v := range out {
			v.UsedBy = users[v.Name]
		}
		return err
	})
	return out, err
}

// Volume returns one volume by name, with its users.
func (f *FSM) Volume(name string) (*ccv1.Volume, error) {
	v := &ccv1.Volume{}
	err := f.View(func(tx *bolt.Tx) error {
		if err := get(tx.Bucket(bucketVolumes), name, v); err != nil {
			return fmt.Errorf("volume %q: %w", name, err)
		}
		users, err := volumeUsers(tx, name)
		v.UsedBy = users
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// NodeVolumes returns the names of the volumes on a node, sorted.
func (f *FSM) NodeVolumes(nodeID string) ([]string, error) {
	var out []string
	err := f.View(func(tx *bolt.Tx) error {
		return each(tx, bucketVolumes, func() *ccv1.Volume { return &ccv1.Volume{} }, func(v *ccv1.Volume) {
			if v.NodeId == nodeID {
				out = append(out, v.Name)
			}
		})
	})
	return out, err
}
