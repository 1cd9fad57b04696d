package fsm

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ErrTokenInvalid is a join refused for its token: unknown, wrong secret,
// not a join token, revoked, expired or used up. The message says which.
var ErrTokenInvalid = fmt.Errorf("join token refused")

func applyJoinNode(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.JoinNode)
	n := m.GetNode()
	if n == nil || n.Id == "" || n.Name == "" {
		return fmt.Errorf("%w: a joining node needs an id and a name", ErrInvalid)
	}
	nodes := tx.Bucket(bucketNodes)
	if nodes.Get([]byte(n.Id)) != nil {
		return fmt.Errorf("node %s %w", n.Id, ErrExists)
	}
	names := tx.Bucket(bucketNodeNames)
	if other := names.Get([]byte(n.Name)); other != nil {
		return fmt.Errorf("a node named %q %w (id %s): remove it first with `ccctl node rm %s`, or join with another --name", n.Name, ErrExists, other, n.Name)
	}
	if err := useToken(tx.Tx, at, m.TokenId, m.SecretSha256, ccv1.Role_ROLE_AGENT); err != nil {
		return err
	}
	node := proto.Clone(n).(*ccv1.Node)
	node.State = ccv1.NodeState_NODE_STATE_READY
	node.Availability = ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	node.CreatedAt, node.UpdatedAt = ts(at), ts(at)
	if err := names.Put([]byte(node.Name), []byte(node.Id)); err != nil {
		return err
	}
	tx.touched.record(node.Id)
	return put(nodes, node.Id, node)
}

func applyUpdateNode(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.UpdateNode)
	nodes := tx.Bucket(bucketNodes)
	var n ccv1.Node
	if err := get(nodes, m.Id, &n); err != nil {
		return fmt.Errorf("node %s: %w", m.Id, err)
	}
	if m.State != ccv1.NodeState_NODE_STATE_UNSPECIFIED {
		n.State = m.State
	}
	if m.Address != "" {
		n.Address = m.Address
	}
	if m.Resources != nil {
		n.Resources = m.Resources
	}
	if m.SetLabels {
		n.Labels = m.Labels
	}
	if m.Version != "" {
		n.Version = m.Version
	}
	if m.Availability != ccv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED {
		n.Availability = m.Availability
	}
	if m.SetUserLabels {
		n.UserLabels = m.UserLabels
	}
	n.UpdatedAt = ts(at)
	tx.touched.record(n.Id) // its session notes the state
	return put(nodes, n.Id, &n)
}

func applyRemoveNode(tx *txn, at time.Time, msg proto.Message) error {
	id := msg.(*statev1.RemoveNode).GetId()
	nodes := tx.Bucket(bucketNodes)
	var gone ccv1.Node
	if err := get(nodes, id, &gone); err != nil {
		return fmt.Errorf("node %s: %w", id, err)
	}
	if name := tx.Bucket(bucketNodeNames).Get([]byte(gone.Name)); string(name) == id {
		if err := tx.Bucket(bucketNodeNames).Delete([]byte(gone.Name)); err != nil {
			return err
		}
	}
	cs := tx.Bucket(bucketContainers)
	var failed []*statev1.ContainerRecord
	err := cs.ForEach(func(_, v []byte) error {
		rec := &statev1.ContainerRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return err
		}
		c := rec.Container
		if c.GetNodeId() == id && !finished(c.GetStatus().GetState()) {
			failed = append(failed, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range failed {
		c := rec.Container
		if c.Status == nil {
			c.Status = &ccv1.ContainerStatus{}
		}
		c.Status.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
		c.Status.Error = "its node " + id + " was removed"
		c.UpdatedAt = ts(at)
		tx.touched.task(c)
		if err := put(cs, c.Id, rec); err != nil {
			return err
		}
	}
	tx.touched.record(id) // its session ends
	return nodes.Delete([]byte(id))
}

func finished(s ccv1.ContainerState) bool {
	return s == ccv1.ContainerState_CONTAINER_STATE_EXITED || s == ccv1.ContainerState_CONTAINER_STATE_FAILED
}

func applyCreateContainer(tx *txn, at time.Time, msg proto.Message) error {
	c := msg.(*statev1.CreateContainer).GetContainer()
	if c == nil || c.Id == "" || c.Name == "" || c.GetSpec().GetImage() == "" {
		return fmt.Errorf("%w: a container needs an id, a name and an image", ErrInvalid)
	}
	cs, names := tx.Bucket(bucketContainers), tx.Bucket(bucketContainerNames)
	if cs.Get([]byte(c.Id)) != nil {
		return fmt.Errorf("container %s %w", c.Id, ErrExists)
	}
	if id := names.Get([]byte(c.Name)); id != nil {
		return fmt.Errorf("the container name %q is in use by %s: remove it (`ccctl rm %s`) or choose another --name: %w", c.Name, id, c.Name, ErrExists)
	}
	if c.NodeId != "" && tx.Bucket(bucketNodes).Get([]byte(c.NodeId)) == nil {
		return fmt.Errorf("node %s: %w", c.NodeId, ErrNotFound)
	}
	rec := &statev1.ContainerRecord{Container: proto.Clone(c).(*ccv1.Container), TraceContext: tx.trace}
	rc := rec.Container
	rc.Generation = 1
	rc.Desired = ccv1.DesiredState_DESIRED_STATE_RUNNING
	state := ccv1.ContainerState_CONTAINER_STATE_PENDING
	if rc.NodeId != "" {
		state = ccv1.ContainerState_CONTAINER_STATE_ASSIGNED
	}
	rc.Status = &ccv1.ContainerStatus{State: state}
	rc.CreatedAt, rc.UpdatedAt = ts(at), ts(at)
	if rc.NodeId != "" {
		rc.AssignedAt = ts(at)
	}
	return insertContainer(tx, rec)
}

func applySetContainerDesired(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.SetContainerDesired)
	if m.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING && m.Desired != ccv1.DesiredState_DESIRED_STATE_STOPPED {
		return fmt.Errorf("%w: desired state %v", ErrInvalid, m.Desired)
	}
	cs := tx.Bucket(bucketContainers)
	var rec statev1.ContainerRecord
	if err := get(cs, m.Id, &rec); err != nil {
		return fmt.Errorf("container %s: %w", m.Id, err)
	}
	c := rec.Container
	restart := m.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING && finished(c.GetStatus().GetState())
	if c.Desired == m.Desired && !restart {
		return nil
	}
	c.Desired = m.Desired
	c.Generation++
	if restart && c.NodeId != "" {
		c.Status = &ccv1.ContainerStatus{State: ccv1.ContainerState_CONTAINER_STATE_ASSIGNED, RestartCount: c.GetStatus().GetRestartCount()}
	}
	rec.StopTimeoutMs = m.StopTimeoutMs
	c.UpdatedAt = ts(at)
	tx.touched.container(c)
	return put(cs, c.Id, &rec)
}

func applyRemoveContainer(tx *txn, _ time.Time, msg proto.Message) error {
	id := msg.(*statev1.RemoveContainer).GetId()
	cs := tx.Bucket(bucketContainers)
	var rec statev1.ContainerRecord
	if err := get(cs, id, &rec); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return deleteContainer(tx, &rec)
}

// applyReportStatus stores what a node's agent saw. A report about a
// container that is not on that node any more, or about an older generation
// of it, is stale and ignored.
func applyReportStatus(tx *txn, at time.Time, msg proto.Message) error {
	return reportStatus(tx, at, msg.(*statev1.ReportStatus))
}

// applyReportStatuses stores the reports of many nodes.
func applyReportStatuses(tx *txn, at time.Time, msg proto.Message) error {
	for _, r := range msg.(*statev1.ReportStatuses).GetReports() {
		if err := reportStatus(tx, at, r); err != nil {
			return err
		}
	}
	return nil
}

func reportStatus(tx *txn, at time.Time, m *statev1.ReportStatus) error {
	cs := tx.Bucket(bucketContainers)
	for _, st := range m.Statuses {
		var rec statev1.ContainerRecord
		if err := get(cs, st.ContainerId, &rec); err != nil {
			continue
		}
		c := rec.Container
		if c.NodeId != m.NodeId || st.Generation < c.Generation || st.Status == nil {
			continue
		}
		c.Status = proto.Clone(st.Status).(*ccv1.ContainerStatus)
		c.UpdatedAt = ts(at)
		tx.touched.task(c)
		if err := put(cs, c.Id, &rec); err != nil {
			return err
		}
		if c.JobId != "" {
			if err := attemptReported(tx, at, &rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyPutImage(tx *txn, at time.Time, msg proto.Message) error {
	img := msg.(*statev1.PutImage).GetImage()
	if img == nil || img.Digest == "" {
		return fmt.Errorf("%w: an image needs a digest", ErrInvalid)
	}
	b := tx.Bucket(bucketImages)
	// A name belongs to one image: loading an archive with a name moves the
	// name to it, as docker moves a tag.
	taken := map[string]bool{}
	for _, n := range img.Names {
		taken[n] = true
	}
	var changed []*ccv1.Image
	err := b.ForEach(func(k, v []byte) error {
		if string(k) == img.Digest {
			return nil
		}
		other := &ccv1.Image{}
		if err := proto.Unmarshal(v, other); err != nil {
			return err
		}
		kept := other.Names[:0]
		for _, n := range other.Names {
			if !taken[n] {
				kept = append(kept, n)
			}
		}
		if len(kept) != len(other.Names) {
			other.Names = kept
			changed = append(changed, other)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, o := range changed {
		if err := put(b, o.Digest, o); err != nil {
			return err
		}
	}
	rec := proto.Clone(img).(*ccv1.Image)
	var old ccv1.Image
	if get(b, img.Digest, &old) == nil {
		rec.CreatedAt = old.CreatedAt
	} else {
		rec.CreatedAt = ts(at)
	}
	return put(b, rec.Digest, rec)
}

func applyRemoveImage(tx *txn, _ time.Time, msg proto.Message) error {
	d := msg.(*statev1.RemoveImage).GetDigest()
	b := tx.Bucket(bucketImages)
	if b.Get([]byte(d)) == nil {
		return fmt.Errorf("image %s: %w", d, ErrNotFound)
	}
	return b.Delete([]byte(d))
}
