package fsm

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Index buckets over the containers bucket, kept in the same transaction as
// the records: node_tasks holds "<node id>/<container id>" for every
// container placed on a node, service_tasks "<service id>/<container id>"
// for every task of a service. Their values are empty.
// node_names maps a node's name to its id, so that a join checks that its
// name is free without reading every node.
var (
	bucketNodeTasks    = []byte("node_tasks")
	bucketServiceTasks = []byte("service_tasks")
	bucketNodeNames    = []byte("node_names")
	keyIndexVersion    = []byte("index_version")
)

// indexVersion is raised when the index buckets change shape; open rebuilds
// them from the containers and nodes buckets when the database has an
// older one.
const indexVersion = 2

func indexKey(owner, id string) []byte {
	k := make([]byte, 0, len(owner)+1+len(id))
	k = append(k, owner...)
	k = append(k, '/')
	return append(k, id...)
}

// insertContainer writes a new container record with its name and indexes.
func insertContainer(tx *txn, rec *statev1.ContainerRecord) error {
	c := rec.Container
	if err := tx.Bucket(bucketContainerNames).Put([]byte(c.Name), []byte(c.Id)); err != nil {
		return err
	}
	tx.touched.task(c)
	if c.NodeId != "" {
		if err := tx.Bucket(bucketNodeTasks).Put(indexKey(c.NodeId, c.Id), nil); err != nil {
			return err
		}
		tx.touched.container(c)
	}
	if c.ServiceId != "" {
		if err := tx.Bucket(bucketServiceTasks).Put(indexKey(c.ServiceId, c.Id), nil); err != nil {
			return err
		}
	}
	return put(tx.Bucket(bucketContainers), c.Id, rec)
}

// deleteContainer removes a container record, its name and its indexes.
func deleteContainer(tx *txn, rec *statev1.ContainerRecord) error {
	c := rec.Container
	if id := tx.Bucket(bucketContainerNames).Get([]byte(c.Name)); string(id) == c.Id {
		if err := tx.Bucket(bucketContainerNames).Delete([]byte(c.Name)); err != nil {
			return err
		}
	}
	tx.touched.task(c)
	if c.NodeId != "" {
		if err := tx.Bucket(bucketNodeTasks).Delete(indexKey(c.NodeId, c.Id)); err != nil {
			return err
		}
		tx.touched.container(c)
	}
	if c.ServiceId != "" {
		if err := tx.Bucket(bucketServiceTasks).Delete(indexKey(c.ServiceId, c.Id)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketContainers).Delete([]byte(c.Id))
}

// rebuildIndexes fills the index buckets from the containers bucket: for a
// database written before they existed, or restored from such a snapshot.
func rebuildIndexes(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketNodeTasks, bucketServiceTasks, bucketNodeNames} {
		if tx.Bucket(b) != nil {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	names := tx.Bucket(bucketNodeNames)
	err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		n := &ccv1.Node{}
		if err := proto.Unmarshal(v, n); err != nil {
			return fmt.Errorf("nodes/%s: %w", k, err)
		}
		return names.Put([]byte(n.Name), []byte(n.Id))
	})
	if err != nil {
		return err
	}
	nodes, services := tx.Bucket(bucketNodeTasks), tx.Bucket(bucketServiceTasks)
	err = tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
		rec := &statev1.ContainerRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("containers/%s: %w", k, err)
		}
		c := rec.GetContainer()
		if c.GetNodeId() != "" {
			if err := nodes.Put(indexKey(c.NodeId, c.Id), nil); err != nil {
				return err
			}
		}
		if c.GetServiceId() != "" {
			if err := services.Put(indexKey(c.ServiceId, c.Id), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyIndexVersion, []byte{indexVersion})
}

func needsIndexRebuild(tx *bolt.Tx) bool {
	v := tx.Bucket(bucketMeta).Get(keyIndexVersion)
	return len(v) != 1 || v[0] != indexVersion
}

// indexed calls fn with every container record listed under owner in an
// index bucket.
func indexed(tx *bolt.Tx, index []byte, owner string, fn func(rec *statev1.ContainerRecord) error) error {
	prefix := indexKey(owner, "")
	cs := tx.Bucket(bucketContainers)
	c := tx.Bucket(index).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := k[len(prefix):]
		rec := &statev1.ContainerRecord{}
		v := cs.Get(id)
		if v == nil {
			continue
		}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("containers/%s: %w", id, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// NodeContainers returns the containers placed on a node, in id order.
func (f *FSM) NodeContainers(nodeID string) ([]*statev1.ContainerRecord, error) {
	var out []*statev1.ContainerRecord
	err := f.View(func(tx *bolt.Tx) error {
		return indexed(tx, bucketNodeTasks, nodeID, func(rec *statev1.ContainerRecord) error {
			if rec.Container.NodeId == nodeID {
				out = append(out, rec)
			}
			return nil
		})
	})
	return out, err
}

// NodeContainersByID returns those of the containers ids that are placed
// on a node, by id: what a session reads when a NodeFeed names them.
func (f *FSM) NodeContainersByID(nodeID string, ids []string) (map[string]*statev1.ContainerRecord, error) {
	out, err := f.ContainersByID(ids)
	if err != nil {
		return nil, err
	}
	for id, rec := range out {
		if rec.GetContainer().GetNodeId() != nodeID {
			delete(out, id)
		}
	}
	return out, nil
}

// ServiceTasks returns the task records of a service, in id order.
func (f *FSM) ServiceTasks(serviceID string) ([]*statev1.ContainerRecord, error) {
	var out []*statev1.ContainerRecord
	err := f.View(func(tx *bolt.Tx) error {
		return indexed(tx, bucketServiceTasks, serviceID, func(rec *statev1.ContainerRecord) error {
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// DefaultStopGraceMs is the wait between SIGTERM and SIGKILL when the
// cluster stops a task whose spec sets none.
const DefaultStopGraceMs = 10_000

// applyTaskOps applies the leader's decisions. Each op checks its own
// precondition and is skipped when it no longer holds.
func applyTaskOps(tx *txn, at time.Time, msg proto.Message) error {
	for _, op := range msg.(*statev1.TaskOps).GetOps() {
		var err error
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			err = opCreateTask(tx, at, o.Create)
		case *statev1.TaskOp_Assign:
			err = opAssignTask(tx, at, o.Assign)
		case *statev1.TaskOp_Stop:
			err = opStopTask(tx, at, o.Stop)
		case *statev1.TaskOp_Remove:
			err = opRemoveTask(tx, o.Remove)
		case *statev1.TaskOp_Pending:
			err = opPendingReason(tx, o.Pending)
		case *statev1.TaskOp_Progress:
			err = opServiceProgress(tx, at, o.Progress)
		default:
			return fmt.Errorf("%w: unknown task op", ErrInvalid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func opCreateTask(tx *txn, at time.Time, c *ccv1.Container) error {
	if c.GetId() == "" || c.Name == "" || c.ServiceId == "" || c.GetSpec().GetImage() == "" {
		return fmt.Errorf("%w: a task needs an id, a name, a service and an image", ErrInvalid)
	}
	if tx.Bucket(bucketServices).Get([]byte(c.ServiceId)) == nil {
		return nil // removed meanwhile
	}
	if tx.Bucket(bucketContainers).Get([]byte(c.Id)) != nil || tx.Bucket(bucketContainerNames).Get([]byte(c.Name)) != nil {
		return nil
	}
	rec := &statev1.ContainerRecord{Container: proto.Clone(c).(*ccv1.Container)}
	rc := rec.Container
	if rc.NodeId != "" && tx.Bucket(bucketNodes).Get([]byte(rc.NodeId)) == nil {
		rc.NodeId = ""
	}
	rc.Generation = 1
	rc.Desired = ccv1.DesiredState_DESIRED_STATE_RUNNING
	rc.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_PENDING}
	if rc.NodeId != "" {
		rc.Status.State = ccv1.ContainerState_CONTAINER_STATE_ASSIGNED
		rc.AssignedAt = ts(at)
		rc.PendingReason = ""
	}
	rc.CreatedAt, rc.UpdatedAt = ts(at), ts(at)
	return insertContainer(tx, rec)
}

func loadTask(tx *txn, id string) (*statev1.ContainerRecord, bool, error) {
	rec := &statev1.ContainerRecord{}
	err := get(tx.Bucket(bucketContainers), id, rec)
	if err == ErrNotFound {
		return nil, false, nil
	}
	return rec, err == nil, err
}

func opAssignTask(tx *txn, at time.Time, a *statev1.AssignTask) error {
	rec, ok, err := loadTask(tx, a.TaskId)
	if err != nil || !ok {
		return err
	}
	c := rec.Container
	if c.NodeId != "" || c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING || tx.Bucket(bucketNodes).Get([]byte(a.NodeId)) == nil {
		return nil
	}
	c.NodeId = a.NodeId
	c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED}
	c.PendingReason = ""
	c.AssignedAt, c.UpdatedAt = ts(at), ts(at)
	if err := tx.Bucket(bucketNodeTasks).Put(indexKey(c.NodeId, c.Id), nil); err != nil {
		return err
	}
	tx.touched.container(c)
	return put(tx.Bucket(bucketContainers), c.Id, rec)
}

func opStopTask(tx *txn, at time.Time, s *statev1.StopTask) error {
	rec, ok, err := loadTask(tx, s.TaskId)
	if err != nil || !ok {
		return err
	}
	c := rec.Container
	if c.Desired == ccv1.DesiredState_DESIRED_STATE_STOPPED {
		return nil
	}
	c.Desired = ccv1.DesiredState_DESIRED_STATE_STOPPED
	c.Generation++
	c.Message = s.Message
	rec.StopTimeoutMs = DefaultStopGraceMs
	if g := c.GetSpec().GetStopGracePeriod(); g != nil && g.AsDuration() >= 0 {
		rec.StopTimeoutMs = g.AsDuration().Milliseconds()
	}
	if s.Failed || c.NodeId == "" {
		if c.Status == nil {
			c.Status = &ccv1.ContainerStatus{}
		}
		if !finished(c.Status.State) {
			c.Status.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
			c.Status.Error = s.Message
		}
	}
	c.UpdatedAt = ts(at)
	tx.touched.container(c)
	return put(tx.Bucket(bucketContainers), c.Id, rec)
}

func opRemoveTask(tx *txn, id string) error {
	rec, ok, err := loadTask(tx, id)
	if err != nil || !ok {
		return err
	}
	return deleteContainer(tx, rec)
}

func opPendingReason(tx *txn, p *statev1.PendingReason) error {
	rec, ok, err := loadTask(tx, p.TaskId)
	if err != nil || !ok {
		return err
	}
	c := rec.Container
	if c.NodeId != "" || c.PendingReason == p.Reason {
		return nil
	}
	c.PendingReason = p.Reason
	tx.touched.task(c)
	return put(tx.Bucket(bucketContainers), c.Id, rec)
}
