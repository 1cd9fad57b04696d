package fsm

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Cluster returns the cluster record, or ErrNotInitialized before bootstrap
// has written it.
func (f *FSM) Cluster() (*statev1.ClusterRecord, error) {
	rec := &statev1.ClusterRecord{}
	err := f.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketCluster), string(keyCluster), rec)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotInitialized
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	return rec, nil
}

// Token returns one token record.
func (f *FSM) Token(id string) (*statev1.TokenRecord, error) {
	return one(f, bucketTokens, "token", id, &statev1.TokenRecord{})
}

// Tokens returns every token record, in id order.
func (f *FSM) Tokens() ([]*statev1.TokenRecord, error) {
	return list(f, bucketTokens, func() *statev1.TokenRecord { return &statev1.TokenRecord{} })
}

// Nodes returns every node, in id order.
func (f *FSM) Nodes() ([]*ccv1.Node, error) {
	return list(f, bucketNodes, func() *ccv1.Node { return &ccv1.Node{} })
}

func list[T proto.Message](f *FSM, bucket []byte, newT func() T) ([]T, error) {
	var out []T
	err := f.View(func(tx *bolt.Tx) error {
		return each(tx, bucket, newT, func(m T) { out = append(out, m) })
	})
	return out, err
}

// each decodes every record of a bucket, in key order.
func each[T proto.Message](tx *bolt.Tx, bucket []byte, newT func() T, fn func(T)) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		m := newT()
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%s/%s: %w", bucket, k, err)
		}
		fn(m)
		return nil
	})
}

// one reads the record id of a bucket into m; kind names it in errors.
func one[T proto.Message](f *FSM, bucket []byte, kind, id string, m T) (T, error) {
	err := f.View(func(tx *bolt.Tx) error { return get(tx.Bucket(bucket), id, m) })
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s %s: %w", kind, id, err)
	}
	return m, nil
}

// idByName reads a name index (a bucket of name → id).
func idByName(f *FSM, bucket []byte, kind, name string) (string, error) {
	var id string
	err := f.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(name))
		if v == nil {
			return ErrNotFound
		}
		id = string(v)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", kind, name, err)
	}
	return id, nil
}

// Node returns one node.
func (f *FSM) Node(id string) (*ccv1.Node, error) {
	return one(f, bucketNodes, "node", id, &ccv1.Node{})
}

// Container returns one container record.
func (f *FSM) Container(id string) (*statev1.ContainerRecord, error) {
	return one(f, bucketContainers, "container", id, &statev1.ContainerRecord{})
}

// ContainersByID returns those of the container records ids that exist,
// by id, read in one transaction.
func (f *FSM) ContainersByID(ids []string) (map[string]*statev1.ContainerRecord, error) {
	out := make(map[string]*statev1.ContainerRecord, len(ids))
	err := f.View(func(tx *bolt.Tx) error {
		cs := tx.Bucket(bucketContainers)
		for _, id := range ids {
			v := cs.Get([]byte(id))
			if v == nil {
				continue
			}
			rec := &statev1.ContainerRecord{}
			if err := proto.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("containers/%s: %w", id, err)
			}
			out[id] = rec
		}
		return nil
	})
	return out, err
}

// ContainerIDByName returns the id of the container with that name.
func (f *FSM) ContainerIDByName(name string) (string, error) {
	return idByName(f, bucketContainerNames, "container", name)
}

// Containers returns every container record, in id order.
func (f *FSM) Containers() ([]*statev1.ContainerRecord, error) {
	return list(f, bucketContainers, func() *statev1.ContainerRecord { return &statev1.ContainerRecord{} })
}

// Images returns every image, in digest order.
func (f *FSM) Images() ([]*ccv1.Image, error) {
	return list(f, bucketImages, func() *ccv1.Image { return &ccv1.Image{} })
}
