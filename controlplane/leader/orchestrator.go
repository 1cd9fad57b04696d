package leader

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/orchestrator"
	"github.com/containercodes/cc/controlplane/raftstore"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Orchestrator is the leader loop of services: it reads the state, makes a
// plan (package orchestrator, which calls the scheduler) and writes its
// ops, again whenever the state changes or the plan asks to be woken.
type Orchestrator struct {
	raft    *raftstore.Store
	fsm     *fsm.FSM
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewOrchestrator returns the orchestrator loop.
func NewOrchestrator(c Config) *Orchestrator {
	return &Orchestrator{raft: c.Raft, fsm: c.FSM, log: c.loopLog("orchestrator"), metrics: c.Metrics}
}

// Run runs passes until ctx ends. It keeps a copy of the container records
// in memory and reads again only those the state machine says changed
// (fsm.ContainerFeed), not every record on every pass.
func (o *Orchestrator) Run(ctx context.Context) {
	feed := o.fsm.SubscribeContainers()
	defer feed.Close()
	tasks := &taskCache{feed: feed}
	decide(ctx, o.fsm, 10*time.Second, func(ctx context.Context, now time.Time) (outcome, time.Time) {
		return o.pass(ctx, now, tasks)
	})
}

// fullPlanEvery is how often a pass plans every service, not only those
// that changed: a safety net, since the incremental plan is the full one.
const fullPlanEvery = time.Minute

// taskCache is the orchestrator's copy of the container records, with
// the orchestrator.Tracker that indexes them and says which services a
// pass must plan. The copy is read only (Make does not change its input),
// so the tasks of one version of a service share one spec, and what the
// orchestrator does not read (trace contexts) is not kept.
type taskCache struct {
	feed   *fsm.ContainerFeed
	loaded bool                            // the copy is whole: false before the first read and after a failed one
	specs  map[specKey]*ccv1.ContainerSpec // the spec of each service version in the copy
	track  *orchestrator.Tracker           // holds the copy in its index
	// fullAt is when a pass last planned every service.
	fullAt time.Time

	nodes      map[string]*ccv1.Node // the node records
	nodesDirty bool
	nodeList   []*ccv1.Node // nodes in id order
}

type specKey struct {
	service string
	version uint64
}

// slim drops from rec what the orchestrator does not read and shares its
// spec with the tasks of the same service version when they are equal.
func (t *taskCache) slim(rec *statev1.ContainerRecord) {
	rec.TraceContext = nil
	c := rec.GetContainer()
	if c.GetServiceId() == "" || c.GetSpec() == nil {
		return
	}
	k := specKey{c.ServiceId, c.ServiceVersion}
	if s, ok := t.specs[k]; ok && proto.Equal(s, c.Spec) {
		c.Spec = s
		return
	}
	t.specs[k] = c.Spec
}

// read reads the state, the container and node records that changed
// since the last read (all of them the first time or after a failed read)
// into the cache. The state's Tasks are left nil: the tracker's index
// holds them.
func (t *taskCache) read(f *fsm.FSM) (*fsm.State, error) {
	ch := t.feed.Take()
	if !t.loaded || t.track == nil {
		ch = fsm.ContainerChanges{All: true}
	}
	if ch.All {
		t.specs = map[specKey]*ccv1.ContainerSpec{}
		t.nodes, t.nodesDirty = map[string]*ccv1.Node{}, true
		if t.track == nil {
			t.track = orchestrator.NewTracker()
		} else {
			t.track.Reset()
		}
	}
	// The records are indexed after the read transaction ends, to keep it
	// short: an open read transaction keeps bbolt from reusing pages.
	type change struct {
		id  string
		rec *statev1.ContainerRecord
	}
	var changes []change
	st, err := f.ReadChanged(ch, func(id string, rec *statev1.ContainerRecord) {
		changes = append(changes, change{id, rec})
	}, func(id string, n *ccv1.Node) {
		if n == nil {
			delete(t.nodes, id)
		} else {
			t.nodes[id] = n
		}
		t.nodesDirty = true
	})
	if err != nil {
		t.loaded = false // start over on the next pass
		return nil, err
	}
	t.loaded = true
	for _, ch := range changes {
		if c := ch.rec.GetContainer(); c != nil {
			t.slim(ch.rec)
			t.track.PutTask(c)
		} else {
			t.track.DeleteTask(ch.id)
		}
	}
	if t.nodesDirty {
		t.nodeList = t.nodeList[:0]
		for _, n := range t.nodes {
			t.nodeList = append(t.nodeList, n)
		}
		sort.Slice(t.nodeList, func(i, j int) bool { return t.nodeList[i].GetId() < t.nodeList[j].GetId() })
		t.nodesDirty = false
	}
	st.Nodes = t.nodeList
	return st, nil
}

// containers returns the copy of the containers in id order.
func (t *taskCache) containers() []*ccv1.Container {
	out := make([]*ccv1.Container, 0, t.track.Index.Len())
	t.track.Index.Each(func(c *ccv1.Container) { out = append(out, c) })
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// pass reads the state, makes a plan of the services that changed since
// the last pass and the tasks waiting for a node, and writes its ops.
func (o *Orchestrator) pass(ctx context.Context, now time.Time, tasks *taskCache) (outcome, time.Time) {
	defer func() { o.metrics.OrchestratorPass(time.Since(now)) }()
	st, err := tasks.read(o.fsm)
	if err != nil {
		o.log.Error("read state", "err", err)
		return idle, time.Time{}
	}
	track := tasks.track
	dirty := track.Dirty(st.Services, st.Nodes, now)
	if now.Sub(tasks.fullAt) >= fullPlanEvery {
		dirty = nil // every service, now and then: a safety net
	}
	if dirty == nil {
		tasks.fullAt = now
	}
	plan := orchestrator.Make(orchestrator.Input{
		Services: st.Services, Nodes: st.Nodes, Index: track.Index, Dirty: dirty,
		Strategy: st.Settings.GetSchedulingStrategy(), Now: now, NewID: newID,
	})
	if len(plan.Ops) == 0 {
		track.Planned(dirty, st.Services, st.Nodes, plan)
		return idle, track.WakeAt()
	}
	if err := writeTaskOps(ctx, o.raft, plan.Ops); err != nil {
		track.Failed()
		if ctx.Err() == nil {
			o.log.Warn("could not write the scheduler's decisions; retrying", "err", err)
		}
		return failed, time.Time{}
	}
	if o.metrics != nil {
		// The index is still the one the plan saw: it changes only in read.
		observePlacements(o.metrics, track.Index, plan.Ops, now)
	}
	track.Planned(dirty, st.Services, st.Nodes, plan)
	o.log.Debug("plan applied", "ops", len(plan.Ops), "dirty", len(dirty), "took", time.Since(now))
	return wrote, time.Time{}
}

// observePlacements records how long each task the ops placed waited for
// a node: 0 for one created on its node, the time since its creation for
// a pending one assigned.
func observePlacements(m *metrics.Metrics, tasks *orchestrator.Index, ops []*statev1.TaskOp, now time.Time) {
	for _, op := range ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			if o.Create.GetNodeId() != "" {
				m.TaskPlaced(0)
			}
		case *statev1.TaskOp_Assign:
			if c := tasks.Get(o.Assign.GetTaskId()); c.GetNodeId() == "" && c.GetCreatedAt() != nil {
				m.TaskPlaced(now.Sub(c.GetCreatedAt().AsTime()))
			}
		}
	}
}
