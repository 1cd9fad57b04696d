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

// taskCache is the orchestrator's copy of the container records. The
// copy is read only (Make does not change its input), so the tasks of one
// version of a service share one spec, and what the orchestrator does not
// read (trace contexts) is not kept.
type taskCache struct {
	feed  *fsm.ContainerFeed
	byID  map[string]*statev1.ContainerRecord // nil before the first read
	dirty bool                                // the sorted list needs rebuilding
	list  []*statev1.ContainerRecord          // byID in id order
	specs map[specKey]*ccv1.ContainerSpec     // the spec of each service version in the copy

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
// into the cache.
func (t *taskCache) read(f *fsm.FSM) (*fsm.State, error) {
	ch := t.feed.Take()
	if t.byID == nil {
		ch = fsm.ContainerChanges{All: true}
	}
	var fresh map[string]*statev1.ContainerRecord
	if ch.All {
		fresh = make(map[string]*statev1.ContainerRecord, len(t.byID))
		t.specs = map[specKey]*ccv1.ContainerSpec{}
		t.nodes, t.nodesDirty = map[string]*ccv1.Node{}, true
	}
	st, err := f.ReadChanged(ch, func(id string, rec *statev1.ContainerRecord) {
		if rec != nil {
			t.slim(rec)
		}
		switch {
		case fresh != nil:
			fresh[id] = rec
		case rec == nil:
			delete(t.byID, id)
		default:
			t.byID[id] = rec
		}
		t.dirty = true
	}, func(id string, n *ccv1.Node) {
		if n == nil {
			delete(t.nodes, id)
		} else {
			t.nodes[id] = n
		}
		t.nodesDirty = true
	})
	if err != nil {
		t.byID, t.list = nil, nil // start over on the next pass
		return nil, err
	}
	if fresh != nil {
		t.byID, t.dirty = fresh, true
	}
	if t.dirty {
		t.list = t.list[:0]
		for _, r := range t.byID {
			t.list = append(t.list, r)
		}
		sort.Slice(t.list, func(i, j int) bool { return t.list[i].GetContainer().GetId() < t.list[j].GetContainer().GetId() })
		t.dirty = false
	}
	if t.nodesDirty {
		t.nodeList = t.nodeList[:0]
		for _, n := range t.nodes {
			t.nodeList = append(t.nodeList, n)
		}
		sort.Slice(t.nodeList, func(i, j int) bool { return t.nodeList[i].GetId() < t.nodeList[j].GetId() })
		t.nodesDirty = false
	}
	st.Tasks, st.Nodes = t.list, t.nodeList
	return st, nil
}

// pass reads the state, makes a plan and writes its ops.
func (o *Orchestrator) pass(ctx context.Context, now time.Time, tasks *taskCache) (outcome, time.Time) {
	defer func() { o.metrics.OrchestratorPass(time.Since(now)) }()
	st, err := tasks.read(o.fsm)
	if err != nil {
		o.log.Error("read state", "err", err)
		return idle, time.Time{}
	}
	plan := orchestrator.Make(orchestrator.Input{
		Services: st.Services, Tasks: st.Tasks, Nodes: st.Nodes,
		Strategy: st.Settings.GetSchedulingStrategy(), Now: now, NewID: newID,
	})
	if len(plan.Ops) == 0 {
		return idle, plan.WakeAt
	}
	if err := writeTaskOps(ctx, o.raft, plan.Ops); err != nil {
		if ctx.Err() == nil {
			o.log.Warn("could not write the scheduler's decisions; retrying", "err", err)
		}
		return failed, time.Time{}
	}
	o.log.Debug("plan applied", "ops", len(plan.Ops), "took", time.Since(now))
	if o.metrics != nil {
		observePlacements(o.metrics, st.Tasks, plan.Ops, now)
	}
	return wrote, time.Time{}
}

// observePlacements records how long each task the ops placed waited for
// a node: 0 for one created on its node, the time since its creation for
// a pending one assigned.
func observePlacements(m *metrics.Metrics, tasks []*statev1.ContainerRecord, ops []*statev1.TaskOp, now time.Time) {
	var created map[string]time.Time
	for _, op := range ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Create:
			if o.Create.GetNodeId() != "" {
				m.TaskPlaced(0)
			}
		case *statev1.TaskOp_Assign:
			if created == nil {
				created = make(map[string]time.Time, len(tasks))
				for _, t := range tasks {
					if c := t.GetContainer(); c.GetNodeId() == "" && c.GetCreatedAt() != nil {
						created[c.GetId()] = c.GetCreatedAt().AsTime()
					}
				}
			}
			if at, ok := created[o.Assign.GetTaskId()]; ok {
				m.TaskPlaced(now.Sub(at))
			}
		}
	}
}
