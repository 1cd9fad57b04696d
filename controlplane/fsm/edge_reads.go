package fsm

import (
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Routes returns every route, in name order (none while the bucket does
// not exist).
func (f *FSM) Routes() ([]*ccv1.Route, error) {
	return listIfAny(f, []byte("routes"), func() *ccv1.Route { return &ccv1.Route{} })
}

// Sites returns every site, in name order (none while the bucket does not
// exist).
func (f *FSM) Sites() ([]*ccv1.Site, error) {
	return listIfAny(f, []byte("sites"), func() *ccv1.Site { return &ccv1.Site{} })
}

func listIfAny[T proto.Message](f *FSM, bucket []byte, newT func() T) ([]T, error) {
	var out []T
	err := f.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucket) == nil {
			return nil
		}
		return each(tx, bucket, newT, func(m T) { out = append(out, m) })
	})
	return out, err
}
