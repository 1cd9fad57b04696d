package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/jobspec"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Services live in services (by id) with service_names (name → id). The
// cluster-wide settings are one record in the cluster bucket.
var (
	bucketServices     = []byte("services")
	bucketServiceNames = []byte("service_names")
	keySettings        = []byte("settings")
)

func applyCreateService(tx *txn, at time.Time, msg proto.Message) error {
	s := msg.(*statev1.CreateService).GetService()
	if s == nil || s.Id == "" || s.Name == "" || s.GetSpec().GetTask().GetImage() == "" {
		return fmt.Errorf("%w: a service needs an id, a name and an image", ErrInvalid)
	}
	b, names := tx.Bucket(bucketServices), tx.Bucket(bucketServiceNames)
	if b.Get([]byte(s.Id)) != nil {
		return fmt.Errorf("service %s %w", s.Id, ErrExists)
	}
	if id := names.Get([]byte(s.Name)); id != nil {
		return fmt.Errorf("the service name %q is in use by %s: remove it (`ccctl service rm %s`), update it, or choose another name: %w", s.Name, id, s.Name, ErrExists)
	}
	rec := proto.Clone(s).(*ccv1.Service)
	rec.Version, rec.Revision = 1, 1
	rec.PreviousSpec, rec.PreviousImageDigest = nil, ""
	rec.Update = nil
	rec.Counts = nil
	rec.CreatedAt, rec.UpdatedAt = ts(at), ts(at)
	if err := names.Put([]byte(rec.Name), []byte(rec.Id)); err != nil {
		return err
	}
	tx.touched.service(rec.Id)
	return put(b, rec.Id, rec)
}

// templateChanged reports whether going from a to b changes what the tasks
// run or where: only then do tasks have to be replaced.
func templateChanged(a *ccv1.ServiceSpec, aDigest string, b *ccv1.ServiceSpec, bDigest string) bool {
	return aDigest != bDigest || !proto.Equal(a.GetTask(), b.GetTask()) || !proto.Equal(a.GetPlacement(), b.GetPlacement()) || a.GetMode() != b.GetMode()
}

// replaceSpec moves the service to a new spec, keeping the current one as
// the previous, and starts a rolling update when the template changed.
func replaceSpec(s *ccv1.Service, spec *ccv1.ServiceSpec, digest string, state ccv1.UpdateState, message string, force bool, at time.Time) {
	changed := force || templateChanged(s.Spec, s.ImageDigest, spec, digest)
	s.Revision++
	s.PreviousSpec, s.PreviousImageDigest = s.Spec, s.ImageDigest
	s.Spec, s.ImageDigest = spec, digest
	if changed {
		s.Version++
		s.Update = &ccv1.UpdateStatus{State: state, Message: message, StartedAt: ts(at)}
	}
	s.UpdatedAt = ts(at)
}

func applyUpdateService(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.UpdateService)
	b := tx.Bucket(bucketServices)
	s := &ccv1.Service{}
	if err := get(b, m.Id, s); err != nil {
		return fmt.Errorf("service %s: %w", m.Id, err)
	}
	if m.ExpectedVersion != 0 && m.ExpectedVersion != s.Version {
		return fmt.Errorf("%w: service %s changed meanwhile (version %d, the update was made from version %d): read it again and retry", ErrConflict, s.Name, s.Version, m.ExpectedVersion)
	}
	if m.ExpectedRevision != 0 && m.ExpectedRevision != s.Revision {
		return fmt.Errorf("%w: service %s changed meanwhile (revision %d, the update was made from revision %d): read it again and retry", ErrConflict, s.Name, s.Revision, m.ExpectedRevision)
	}
	if m.Rollback {
		if s.PreviousSpec == nil {
			return fmt.Errorf("%w: service %s has no previous spec to roll back to", ErrFailedPrecondition, s.Name)
		}
		replaceSpec(s, s.PreviousSpec, s.PreviousImageDigest, ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK, "rollback requested", false, at)
		tx.touched.service(s.Id)
		return put(b, s.Id, s)
	}
	if m.Spec.GetTask().GetImage() == "" {
		return fmt.Errorf("%w: a service needs an image", ErrInvalid)
	}
	replaceSpec(s, proto.Clone(m.Spec).(*ccv1.ServiceSpec), m.ImageDigest, ccv1.UpdateState_UPDATE_STATE_UPDATING, "update in progress", m.Force, at)
	tx.touched.service(s.Id)
	return put(b, s.Id, s)
}

func opServiceProgress(tx *txn, at time.Time, p *statev1.ServiceProgress) error {
	b := tx.Bucket(bucketServices)
	s := &ccv1.Service{}
	if err := get(b, p.ServiceId, s); err == ErrNotFound {
		return nil
	} else if err != nil {
		return err
	}
	if s.Version != p.Version {
		return nil
	}
	if p.Rollback {
		if s.PreviousSpec == nil {
			return nil
		}
		replaceSpec(s, s.PreviousSpec, s.PreviousImageDigest, ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK, p.GetStatus().GetMessage(), false, at)
		tx.touched.service(s.Id)
		return put(b, s.Id, s)
	}
	st := proto.Clone(p.Status).(*ccv1.UpdateStatus)
	if st.StartedAt == nil && s.Update != nil {
		st.StartedAt = s.Update.StartedAt
	}
	switch st.State {
	case ccv1.UpdateState_UPDATE_STATE_COMPLETED, ccv1.UpdateState_UPDATE_STATE_ROLLED_BACK, ccv1.UpdateState_UPDATE_STATE_PAUSED:
		if st.CompletedAt == nil {
			st.CompletedAt = ts(at)
		}
	}
	s.Update = st
	s.UpdatedAt = ts(at)
	tx.touched.service(s.Id)
	return put(b, s.Id, s)
}

func applyRemoveService(tx *txn, _ time.Time, msg proto.Message) error {
	id := msg.(*statev1.RemoveService).GetId()
	b := tx.Bucket(bucketServices)
	s := &ccv1.Service{}
	if err := get(b, id, s); err != nil {
		return fmt.Errorf("service %s: %w", id, err)
	}
	var tasks []*statev1.ContainerRecord
	err := indexed(tx.Tx, bucketServiceTasks, id, func(rec *statev1.ContainerRecord) error {
		tasks = append(tasks, rec)
		return nil
	})
	if err != nil {
		return err
	}
	for _, rec := range tasks {
		if err := deleteContainer(tx, rec); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketServiceNames).Delete([]byte(s.Name)); err != nil {
		return err
	}
	tx.touched.service(id)
	return b.Delete([]byte(id))
}

func applyUpdateSettings(tx *txn, _ time.Time, msg proto.Message) error {
	st := msg.(*statev1.UpdateSettings).GetSettings()
	if st == nil {
		return fmt.Errorf("%w: no settings", ErrInvalid)
	}
	switch st.SchedulingStrategy {
	case ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED, ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK:
	default:
		return fmt.Errorf("%w: unknown scheduling strategy %d", ErrInvalid, st.SchedulingStrategy)
	}
	if err := validLimits(st.Limits); err != nil {
		return err
	}
	if err := validQuotas(st.Quotas); err != nil {
		return err
	}
	if err := validAudit(st.Audit); err != nil {
		return err
	}
	// An update changes what it sets: an unset strategy, edge or limit
	// keeps the stored one.
	old := &ccv1.Settings{}
	if err := get(tx.Bucket(bucketCluster), string(keySettings), old); err != nil && err != ErrNotFound {
		return err
	}
	out := proto.Clone(old).(*ccv1.Settings)
	if st.SchedulingStrategy != ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		out.SchedulingStrategy = st.SchedulingStrategy
	}
	if st.Edge != nil {
		e, err := normalizeEdgeSettings(tx.Tx, st.Edge, old.Edge)
		if err != nil {
			return err
		}
		out.Edge = e
	}
	if st.Limits != nil {
		out.Limits = mergeLimits(old.Limits, st.Limits)
	}
	if st.Quotas != nil {
		out.Quotas = mergeQuotas(old.Quotas, st.Quotas)
	}
	if st.Audit != nil {
		out.Audit = mergeAudit(old.Audit, st.Audit)
	}
	if st.Security != nil {
		out.Security = mergeSecurity(old.Security, st.Security)
	}
	return put(tx.Bucket(bucketCluster), string(keySettings), out)
}

// mergeSecurity applies an update of the security settings: an unset
// field keeps the stored value.
func mergeSecurity(old, upd *ccv1.SecuritySettings) *ccv1.SecuritySettings {
	out := &ccv1.SecuritySettings{}
	if old != nil {
		out = proto.Clone(old).(*ccv1.SecuritySettings)
	}
	if upd.AllowPrivileged != nil {
		out.AllowPrivileged = proto.Bool(upd.GetAllowPrivileged())
	}
	return out
}

// validLimits refuses caps no spec could keep: negative ones, memory
// below 4 MiB, CPU above 1000 cores, pids above jobspec.PidsHardCap. A
// zero cap means the default.
func validLimits(l *ccv1.LimitSettings) error {
	if l == nil {
		return nil
	}
	var probs []string
	if l.MaxMemoryBytes != nil && (l.GetMaxMemoryBytes() < 0 || l.GetMaxMemoryBytes() > 0 && l.GetMaxMemoryBytes() < jobspec.MinMemoryBytes) {
		probs = append(probs, "limits.max_memory_bytes: at least 4 MiB (0: the default, the memory of the largest node)")
	}
	if l.MaxCpuMillis != nil && (l.GetMaxCpuMillis() < 0 || l.GetMaxCpuMillis() > jobspec.MaxCPUMillis) {
		probs = append(probs, fmt.Sprintf("limits.max_cpu_millis: between 1 and %d (0: the default, the CPUs of the largest node)", jobspec.MaxCPUMillis))
	}
	if l.MaxPids != nil && (l.GetMaxPids() < 0 || l.GetMaxPids() > jobspec.PidsHardCap) {
		probs = append(probs, fmt.Sprintf("limits.max_pids: between 1 and %d (0: the default, %d)", jobspec.PidsHardCap, jobspec.PidsHardCap))
	}
	if l.MaxDiskBytes != nil && (l.GetMaxDiskBytes() < 0 || l.GetMaxDiskBytes() > 0 && l.GetMaxDiskBytes() < 16<<20) {
		probs = append(probs, "limits.max_disk_bytes: at least 16 MiB (0: no cap)")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

// mergeLimits is the stored caps changed by an update's: a cap the update
// sets replaces the stored one, 0 clears it (the default), an unset one
// keeps it.
func mergeLimits(old, upd *ccv1.LimitSettings) *ccv1.LimitSettings {
	out := &ccv1.LimitSettings{}
	if old != nil {
		out = proto.Clone(old).(*ccv1.LimitSettings)
	}
	set := func(dst **int64, v *int64) {
		switch {
		case v == nil:
		case *v == 0:
			*dst = nil
		default:
			*dst = proto.Int64(*v)
		}
	}
	set(&out.MaxMemoryBytes, upd.MaxMemoryBytes)
	set(&out.MaxCpuMillis, upd.MaxCpuMillis)
	set(&out.MaxPids, upd.MaxPids)
	set(&out.MaxDiskBytes, upd.MaxDiskBytes)
	if out.MaxMemoryBytes == nil && out.MaxCpuMillis == nil && out.MaxPids == nil && out.MaxDiskBytes == nil {
		return nil
	}
	return out
}

// Settings returns the cluster-wide settings (defaults when never set).
func (f *FSM) Settings() (*ccv1.Settings, error) {
	st := &ccv1.Settings{}
	err := f.View(func(tx *bolt.Tx) error {
		err := get(tx.Bucket(bucketCluster), string(keySettings), st)
		if err == ErrNotFound {
			return nil
		}
		return err
	})
	return st, err
}

// Services returns every service, in id order.
func (f *FSM) Services() ([]*ccv1.Service, error) {
	return list(f, bucketServices, func() *ccv1.Service { return &ccv1.Service{} })
}

// Service returns one service.
func (f *FSM) Service(id string) (*ccv1.Service, error) {
	return one(f, bucketServices, "service", id, &ccv1.Service{})
}

// ServiceIDByName returns the id of the service with that name.
func (f *FSM) ServiceIDByName(name string) (string, error) {
	return idByName(f, bucketServiceNames, "service", name)
}

// State is one consistent read of what the orchestrator and the scheduler
// decide from.
type State struct {
	Services []*ccv1.Service
	Tasks    []*statev1.ContainerRecord // every container: tasks and plain containers
	Nodes    []*ccv1.Node
	Settings *ccv1.Settings
	Index    uint64 // the applied index the read saw
}

// ReadState reads services, containers, nodes and settings in one
// transaction.
func (f *FSM) ReadState() (*State, error) {
	st := &State{Settings: &ccv1.Settings{}}
	err := f.View(func(tx *bolt.Tx) error {
		st.Index = readIndex(tx)
		if err := each(tx, bucketServices, func() *ccv1.Service { return &ccv1.Service{} }, func(s *ccv1.Service) { st.Services = append(st.Services, s) }); err != nil {
			return err
		}
		if err := each(tx, bucketContainers, func() *statev1.ContainerRecord { return &statev1.ContainerRecord{} }, func(r *statev1.ContainerRecord) { st.Tasks = append(st.Tasks, r) }); err != nil {
			return err
		}
		if err := each(tx, bucketNodes, func() *ccv1.Node { return &ccv1.Node{} }, func(n *ccv1.Node) { st.Nodes = append(st.Nodes, n) }); err != nil {
			return err
		}
		if err := get(tx.Bucket(bucketCluster), string(keySettings), st.Settings); err != nil && err != ErrNotFound {
			return err
		}
		return nil
	})
	return st, err
}

// ReadChanged is ReadState for a reader that keeps its own copy of the
// container and node records, kept up to date from a ContainerFeed: it
// reads services and settings, and of the containers and nodes only those
// ch names (every one when ch.All), calling changed and node with each, or
// with nil for one that is gone. State.Tasks and State.Nodes are left
// empty.
func (f *FSM) ReadChanged(ch ContainerChanges, changed func(id string, rec *statev1.ContainerRecord), node func(id string, n *ccv1.Node)) (*State, error) {
	st := &State{Settings: &ccv1.Settings{}}
	err := f.View(func(tx *bolt.Tx) error {
		st.Index = readIndex(tx)
		if err := each(tx, bucketServices, func() *ccv1.Service { return &ccv1.Service{} }, func(s *ccv1.Service) { st.Services = append(st.Services, s) }); err != nil {
			return err
		}
		if ch.All {
			if err := each(tx, bucketContainers, func() *statev1.ContainerRecord { return &statev1.ContainerRecord{} }, func(r *statev1.ContainerRecord) { changed(r.GetContainer().GetId(), r) }); err != nil {
				return err
			}
			if err := each(tx, bucketNodes, func() *ccv1.Node { return &ccv1.Node{} }, func(n *ccv1.Node) { node(n.GetId(), n) }); err != nil {
				return err
			}
		} else {
			cs := tx.Bucket(bucketContainers)
			read := func(id string) error {
				v := cs.Get([]byte(id))
				if v == nil {
					changed(id, nil)
					return nil
				}
				rec := &statev1.ContainerRecord{}
				if err := proto.Unmarshal(v, rec); err != nil {
					return fmt.Errorf("containers/%s: %w", id, err)
				}
				changed(id, rec)
				return nil
			}
			for id := range ch.IDs {
				if err := read(id); err != nil {
					return err
				}
			}
			for n := range ch.Nodes {
				prefix := indexKey(n, "")
				c := tx.Bucket(bucketNodeTasks).Cursor()
				for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
					if err := read(string(k[len(prefix):])); err != nil {
						return err
					}
				}
			}
			ns := tx.Bucket(bucketNodes)
			for id := range ch.NodeRecords {
				n := &ccv1.Node{}
				switch err := get(ns, id, n); {
				case err == ErrNotFound:
					node(id, nil)
				case err != nil:
					return fmt.Errorf("nodes/%s: %w", id, err)
				default:
					node(id, n)
				}
			}
		}
		if err := get(tx.Bucket(bucketCluster), string(keySettings), st.Settings); err != nil && err != ErrNotFound {
			return err
		}
		return nil
	})
	return st, err
}
