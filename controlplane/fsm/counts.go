package fsm

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// NodeCount is a node's state and availability, a key of Counts.Nodes.
type NodeCount struct {
	State        ccv1.NodeState
	Availability ccv1.NodeAvailability
}

// CertCount is what Counts keeps of a certificate record.
type CertCount struct {
	Name     string
	NotAfter time.Time
	Renewal  ccv1.RenewalState
}

// Counts is the state counted (for metrics), read in one transaction.
type Counts struct {
	Index uint64 // the applied index the read saw
	Nodes map[NodeCount]int
	// Containers counts container records by the state their node
	// reported; a record without a node is PENDING, one its node has not
	// reported yet ASSIGNED.
	Containers map[ccv1.ContainerState]int
	// Pending counts the reasons of tasks without a node that should run.
	Pending  map[string]int
	Services map[ccv1.UpdateState]int
	Jobs     map[ccv1.JobState]int
	// Queues counts each queue's queued and active (assigned or running)
	// jobs.
	Queues map[string]QueueCount
	Certs  []CertCount
	Images int
}

// QueueCount is a queue's queued and active jobs.
type QueueCount struct{ Queued, Active uint64 }

// Counts counts nodes, containers, services, jobs by state, certificates
// and images. Jobs are counted from their index buckets; the other kinds
// are read whole.
func (f *FSM) Counts() (*Counts, error) {
	c := &Counts{
		Nodes: map[NodeCount]int{}, Containers: map[ccv1.ContainerState]int{}, Pending: map[string]int{},
		Services: map[ccv1.UpdateState]int{}, Jobs: map[ccv1.JobState]int{}, Queues: map[string]QueueCount{},
	}
	err := f.View(func(tx *bolt.Tx) error {
		c.Index = readIndex(tx)
		if err := each(tx, bucketNodes, func() *ccv1.Node { return &ccv1.Node{} }, func(n *ccv1.Node) {
			c.Nodes[NodeCount{n.State, n.Availability}]++
		}); err != nil {
			return err
		}
		if err := each(tx, bucketContainers, func() *statev1.ContainerRecord { return &statev1.ContainerRecord{} }, func(r *statev1.ContainerRecord) {
			ct := r.GetContainer()
			st := ct.GetStatus().GetState()
			switch {
			case ct.GetNodeId() == "":
				st = ccv1.ContainerState_CONTAINER_STATE_PENDING
				if ct.GetDesired() == ccv1.DesiredState_DESIRED_STATE_RUNNING && ct.GetPendingReason() != "" {
					c.Pending[ct.GetPendingReason()]++
				}
			case st == ccv1.ContainerState_CONTAINER_STATE_UNSPECIFIED:
				st = ccv1.ContainerState_CONTAINER_STATE_ASSIGNED
			}
			c.Containers[st]++
		}); err != nil {
			return err
		}
		if err := each(tx, bucketServices, func() *ccv1.Service { return &ccv1.Service{} }, func(s *ccv1.Service) {
			c.Services[s.GetUpdate().GetState()]++
		}); err != nil {
			return err
		}
		sc := tx.Bucket(bucketJobState).Cursor()
		for k, _ := sc.First(); k != nil; k, _ = sc.Next() {
			if len(k) > 0 {
				c.Jobs[ccv1.JobState(k[0])]++
			}
		}
		qc := tx.Bucket(bucketJobQueue).Cursor()
		for k, _ := qc.First(); k != nil; k, _ = qc.Next() {
			if i := bytes.IndexByte(k, 0); i >= 0 {
				q := c.Queues[string(k[:i])]
				q.Queued++
				c.Queues[string(k[:i])] = q
			}
		}
		jb := tx.Bucket(bucketJobs)
		for _, s := range []ccv1.JobState{ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING} {
			p := []byte{byte(s)}
			for k, v := sc.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = sc.Next() {
				rec := &statev1.JobRecord{}
				if err := get(jb, string(v), rec); err != nil {
					return err
				}
				q := c.Queues[jobQueue(rec.Job)]
				q.Active++
				c.Queues[jobQueue(rec.Job)] = q
			}
		}
		if err := each(tx, bucketQueues, func() *statev1.QueueRecord { return &statev1.QueueRecord{} }, func(q *statev1.QueueRecord) {
			c.Queues[q.Name] = c.Queues[q.Name] // configured queues show at 0
		}); err != nil {
			return err
		}
		if err := each(tx, bucketCerts, func() *statev1.CertRecord { return &statev1.CertRecord{} }, func(r *statev1.CertRecord) {
			ct := r.GetCert()
			c.Certs = append(c.Certs, CertCount{Name: ct.GetName(), NotAfter: ct.GetNotAfter().AsTime(), Renewal: ct.GetRenewalState()})
		}); err != nil {
			return err
		}
		c.Images = tx.Bucket(bucketImages).Stats().KeyN
		return nil
	})
	return c, err
}
