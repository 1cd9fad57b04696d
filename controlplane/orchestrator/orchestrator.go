// Package orchestrator decides what the cluster does for its services: which
// tasks to create (missing replicas, replacements for tasks on down or
// drained nodes), which to stop or remove (scale-down, superseded, old
// history), how a rolling update proceeds or rolls back, and, through
// package scheduler, where every pending task goes and why a task stays
// pending. Plan is a pure function of the state and the time: no raft, no
// network, no clock of its own; the leader's loop reads the state, calls it
// and writes the ops it returns.
package orchestrator

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/scheduler"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Defaults of a service's update config.
const (
	DefaultMonitor = 5 * time.Second
	// HistoryPerSlot is how many stopped tasks a slot keeps for `service ps -a`.
	HistoryPerSlot = 2
)

// Input is what Plan decides from.
type Input struct {
	Services []*ccv1.Service
	// Tasks holds every container record: the tasks of services, and plain
	// containers (which use resources and ports on their nodes).
	Tasks    []*statev1.ContainerRecord
	Nodes    []*ccv1.Node
	Strategy ccv1.SchedulingStrategy
	Now      time.Time
	// NewID returns a fresh task id (random in production, a counter in
	// tests).
	NewID func() string

	// Index, when not nil, is Tasks indexed by the caller, kept from one
	// plan to the next; Make then reads it instead of Tasks.
	Index *Index
	// Dirty, when not nil, are the only services planned: those whose
	// tasks, spec or nodes changed since the last plan, or whose wake time
	// came. Pending tasks of every service are scheduled all the same.
	// A service left out must be one whose plan would be empty, which is
	// what the last plan leaves behind once its ops are written.
	Dirty map[string]bool
}

// Plan is what to do.
type Plan struct {
	Ops []*statev1.TaskOp
	// WakeAt, when not zero, is when a plan should be made again even if
	// nothing changes (an update's monitor period or delay ends).
	WakeAt time.Time
	// Wakes is WakeAt for each service planned that has one.
	Wakes map[string]time.Time
}

func (p *Plan) wake(s *ccv1.Service, t time.Time) {
	if p.WakeAt.IsZero() || t.Before(p.WakeAt) {
		p.WakeAt = t
	}
	if p.Wakes == nil {
		p.Wakes = map[string]time.Time{}
	}
	if w, ok := p.Wakes[s.Id]; !ok || t.Before(w) {
		p.Wakes[s.Id] = t
	}
}

func (p *Plan) stop(c *ccv1.Container, msg string, failed bool) {
	p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Stop{Stop: &statev1.StopTask{TaskId: c.Id, Message: msg, Failed: failed}}})
}

func (p *Plan) remove(c *ccv1.Container) {
	p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Remove{Remove: c.Id}})
}

func (p *Plan) progress(s *ccv1.Service, state ccv1.UpdateState, msg string, rollback bool) {
	p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Progress{Progress: &statev1.ServiceProgress{
		ServiceId: s.Id, Version: s.Version, Rollback: rollback,
		Status: &ccv1.UpdateStatus{State: state, Message: msg},
	}}})
}

// world is the input indexed.
type world struct {
	in      Input
	nodes   map[string]*ccv1.Node
	creates []*ccv1.Container // new tasks, placed by the scheduler below
}

// Make returns the plan for the state in.
func Make(in Input) Plan {
	w := &world{in: in, nodes: make(map[string]*ccv1.Node, len(in.Nodes))}
	for _, n := range in.Nodes {
		w.nodes[n.Id] = n
	}
	var p Plan
	services := make(map[string]bool, len(in.Services))
	if in.Index != nil {
		for _, s := range in.Services {
			services[s.Id] = true
			if in.Dirty == nil || in.Dirty[s.Id] {
				w.service(&p, s, in.Index.ServiceTasks(s.Id))
			}
		}
		// Tasks of services that are gone (RemoveService takes them with
		// it, so this is only a safety net).
		gone := func(id string) {
			if !services[id] {
				for _, c := range in.Index.ServiceTasks(id) {
					p.remove(c)
				}
			}
		}
		if in.Dirty == nil {
			for _, id := range in.Index.Services() {
				gone(id)
			}
		} else {
			ids := make([]string, 0, len(in.Dirty))
			for id := range in.Dirty {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				gone(id)
			}
		}
		w.schedule(&p)
		return p
	}
	byService := map[string][]*ccv1.Container{}
	for _, r := range in.Tasks {
		if c := r.GetContainer(); c.GetServiceId() != "" {
			byService[c.ServiceId] = append(byService[c.ServiceId], c)
		}
	}
	for _, s := range in.Services {
		if in.Dirty == nil || in.Dirty[s.Id] {
			w.service(&p, s, byService[s.Id])
		}
		services[s.Id] = true
	}
	// Tasks of services that are gone (RemoveService takes them with it,
	// so this is only a safety net).
	for id, tasks := range byService {
		if !services[id] && (in.Dirty == nil || in.Dirty[id]) {
			for _, c := range tasks {
				p.remove(c)
			}
		}
	}
	w.schedule(&p)
	return p
}

// nodeProblem says why a task's node cannot keep it: "" when it can.
func (w *world) nodeProblem(c *ccv1.Container) (msg string, failed, drained bool) {
	if c.NodeId == "" {
		return "", false, false
	}
	n := w.nodes[c.NodeId]
	switch {
	case n == nil:
		return "its node " + c.NodeId + " was removed from the cluster", true, false
	case n.State != ccv1.NodeState_NODE_STATE_READY:
		return "its node " + n.Name + " is down", true, false
	case n.Availability == ccv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
		return "its node " + n.Name + " is drained", false, true
	}
	return "", false, false
}

func running(c *ccv1.Container) bool {
	return c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
}

// service plans one service.
func (w *world) service(p *Plan, s *ccv1.Service, tasks []*ccv1.Container) {
	var current, history []*ccv1.Container
	for _, c := range tasks {
		if c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING {
			current = append(current, c)
		} else {
			history = append(history, c)
		}
	}
	// Tasks whose node is down or gone are stopped (and marked failed:
	// no agent will report on them) and replaced below.
	live := current[:0:0]
	var draining []*ccv1.Container
	for _, c := range current {
		msg, failed, drained := w.nodeProblem(c)
		switch {
		case drained:
			draining = append(draining, c)
		case msg != "":
			p.stop(c, msg, failed)
			history = append(history, c)
		default:
			live = append(live, c)
		}
	}
	if s.GetSpec().GetMode() == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
		w.global(p, s, live, draining)
	} else {
		w.replicated(p, s, live, draining)
	}
	w.trimHistory(p, s, history)
}

// replicated keeps one task in each slot 1..replicas.
func (w *world) replicated(p *Plan, s *ccv1.Service, live, draining []*ccv1.Container) {
	want := uint32(s.GetSpec().GetReplicas())
	slots := map[uint32][]*ccv1.Container{}
	for _, c := range live {
		if c.Slot == 0 || c.Slot > want {
			// Scaled down: the node removes the container.
			p.remove(c)
			continue
		}
		slots[c.Slot] = append(slots[c.Slot], c)
	}
	for _, c := range draining {
		if c.Slot == 0 || c.Slot > want {
			p.remove(c)
			continue
		}
		// A drained node's task keeps running until its replacement runs
		// elsewhere, or until it is clear that no node can take one.
		repl := slots[c.Slot]
		switch {
		case len(repl) == 0:
			w.create(p, s, c.Slot, "")
		case anyRunning(repl) || allPendingNoRoom(repl):
			p.stop(c, "its node was drained; moved to another node", false)
		}
	}
	for slot := uint32(1); slot <= want; slot++ {
		ts := slots[slot]
		if len(ts) == 0 && !drainingSlot(draining, slot) {
			w.create(p, s, slot, "")
			continue
		}
		if len(ts) > 1 {
			// Two current tasks in one slot: keep the newest.
			sort.Slice(ts, func(i, j int) bool { return newer(ts[i], ts[j]) })
			for _, c := range ts[1:] {
				p.stop(c, "superseded by "+ts[0].Name, false)
			}
			slots[slot] = ts[:1]
		}
	}
	var cur []*ccv1.Container
	for slot := uint32(1); slot <= want; slot++ {
		cur = append(cur, slots[slot]...)
	}
	w.update(p, s, cur, func(old *ccv1.Container) { w.create(p, s, old.Slot, "") })
}

func drainingSlot(draining []*ccv1.Container, slot uint32) bool {
	for _, c := range draining {
		if c.Slot == slot {
			return true
		}
	}
	return false
}

func anyRunning(ts []*ccv1.Container) bool {
	for _, c := range ts {
		if running(c) {
			return true
		}
	}
	return false
}

// allPendingNoRoom: every replacement waits for a node, none fits.
func allPendingNoRoom(ts []*ccv1.Container) bool {
	for _, c := range ts {
		if c.NodeId != "" || c.PendingReason == "" {
			return false
		}
	}
	return true
}

func newer(a, b *ccv1.Container) bool {
	if a.ServiceVersion != b.ServiceVersion {
		return a.ServiceVersion > b.ServiceVersion
	}
	if !a.GetCreatedAt().AsTime().Equal(b.GetCreatedAt().AsTime()) {
		return a.GetCreatedAt().AsTime().After(b.GetCreatedAt().AsTime())
	}
	return a.Id > b.Id
}

// global keeps one task on every ready, active node that matches the
// placement constraints.
func (w *world) global(p *Plan, s *ccv1.Service, live, draining []*ccv1.Container) {
	for _, c := range draining {
		p.stop(c, "its node was drained", false)
	}
	cons := constraints(s)
	eligible := map[string]bool{}
	for _, n := range w.in.Nodes {
		if n.State == ccv1.NodeState_NODE_STATE_READY && n.Availability == ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE && matchesAll(cons, n) {
			eligible[n.Id] = true
		}
	}
	have := map[string][]*ccv1.Container{}
	for _, c := range live {
		n := w.nodes[c.NodeId]
		if c.NodeId != "" && n != nil && !matchesAll(cons, n) {
			p.stop(c, "its node no longer matches the placement constraints", false)
			continue
		}
		if c.NodeId == "" {
			p.remove(c) // global tasks are created on their node
			continue
		}
		have[c.NodeId] = append(have[c.NodeId], c)
	}
	var cur []*ccv1.Container
	for _, n := range w.in.Nodes {
		if !eligible[n.Id] {
			continue
		}
		ts := have[n.Id]
		if len(ts) == 0 {
			w.create(p, s, 0, n.Id)
			continue
		}
		sort.Slice(ts, func(i, j int) bool { return newer(ts[i], ts[j]) })
		for _, c := range ts[1:] {
			p.stop(c, "superseded by "+ts[0].Name, false)
		}
		cur = append(cur, ts[0])
	}
	w.update(p, s, cur, func(old *ccv1.Container) { w.create(p, s, 0, old.NodeId) })
}

// update moves a service's current tasks to its current version, a few at
// a time, and decides when the update is done or has failed.
func (w *world) update(p *Plan, s *ccv1.Service, cur []*ccv1.Container, replace func(old *ccv1.Container)) {
	state := s.GetUpdate().GetState()
	cfg := s.GetSpec().GetUpdate()
	monitor := DefaultMonitor
	if d := cfg.GetMonitor(); d != nil {
		monitor = d.AsDuration()
	}
	var outdated, inflight []*ccv1.Container
	var lastUp time.Time
	for _, c := range cur {
		if c.ServiceVersion < s.Version {
			outdated = append(outdated, c)
			continue
		}
		if state != ccv1.UpdateState_UPDATE_STATE_UPDATING && state != ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK {
			continue
		}
		if why := taskFailed(c); why != "" && cfg.GetFailureAction() != ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE {
			msg := fmt.Sprintf("task %s %s", c.Name, why)
			switch {
			case state == ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK:
				p.progress(s, ccv1.UpdateState_UPDATE_STATE_PAUSED, "rollback paused: "+msg, false)
			case cfg.GetFailureAction() == ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK:
				p.progress(s, ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK, "update failed, rolling back: "+msg, true)
			default:
				p.progress(s, ccv1.UpdateState_UPDATE_STATE_PAUSED, "update paused: "+msg, false)
			}
			return
		}
		up, at := isUp(c, monitor, w.in.Now)
		if !up {
			inflight = append(inflight, c)
			if !at.IsZero() {
				p.wake(s, at)
			}
			continue
		}
		if at.After(lastUp) {
			lastUp = at
		}
	}
	if state != ccv1.UpdateState_UPDATE_STATE_UPDATING && state != ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK {
		return
	}
	if len(outdated) == 0 && len(inflight) == 0 {
		done, msg := ccv1.UpdateState_UPDATE_STATE_COMPLETED, "update completed"
		if state == ccv1.UpdateState_UPDATE_STATE_ROLLING_BACK {
			done, msg = ccv1.UpdateState_UPDATE_STATE_ROLLED_BACK, "rollback completed"
			if prev := s.GetUpdate().GetMessage(); prev != "" && prev != "rollback requested" {
				msg += " (" + prev + ")"
			}
		}
		p.progress(s, done, msg, false)
		return
	}
	par := int(cfg.GetParallelism())
	if par <= 0 {
		par = 1
	}
	room := par - len(inflight)
	if room <= 0 || len(outdated) == 0 {
		return
	}
	if d := cfg.GetDelay().AsDuration(); d > 0 && len(inflight) == 0 && !lastUp.IsZero() {
		if next := lastUp.Add(d); w.in.Now.Before(next) {
			p.wake(s, next)
			return
		}
	}
	sort.Slice(outdated, func(i, j int) bool {
		if outdated[i].Slot != outdated[j].Slot {
			return outdated[i].Slot < outdated[j].Slot
		}
		return outdated[i].NodeId < outdated[j].NodeId
	})
	for _, c := range outdated[:min(room, len(outdated))] {
		p.stop(c, fmt.Sprintf("replaced by the update to version %d", s.Version), false)
		replace(c)
	}
}

// taskFailed says how a task of the new version failed, or "".
func taskFailed(c *ccv1.Container) string {
	st := c.GetStatus()
	switch {
	case st.GetHealth() == ccv1.HealthState_HEALTH_STATE_UNHEALTHY:
		return "is unhealthy" + detail(st.GetHealthOutput())
	case st.GetRestartCount() > 0:
		return fmt.Sprintf("restarted %d times", st.GetRestartCount()) + detail(exitText(st))
	case st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED:
		return "failed" + detail(st.GetError())
	case st.GetState() == ccv1.ContainerState_CONTAINER_STATE_EXITED:
		return "exited" + detail(exitText(st))
	}
	return ""
}

func exitText(st *ccv1.ContainerStatus) string {
	if st.GetState() != ccv1.ContainerState_CONTAINER_STATE_EXITED {
		return st.GetError()
	}
	s := fmt.Sprintf("exit code %d", st.GetExitCode())
	if st.GetOomKilled() {
		s += ", out of memory"
	}
	return s
}

func detail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}

// isUp reports whether a new task has been running (and healthy, with a
// health check) for the monitor period; when not yet, at is when it will
// have been, if it keeps going.
func isUp(c *ccv1.Container, monitor time.Duration, now time.Time) (bool, time.Time) {
	st := c.GetStatus()
	if !running(c) || st.GetStartedAt() == nil {
		return false, time.Time{}
	}
	if c.GetSpec().GetHealth() != nil && st.GetHealth() != ccv1.HealthState_HEALTH_STATE_HEALTHY {
		return false, time.Time{}
	}
	at := st.GetStartedAt().AsTime().Add(monitor)
	return !now.Before(at), at
}

// trimHistory removes the stopped tasks beyond HistoryPerSlot in each slot
// (per node for a global service), oldest first, stopped tasks that never
// reached a node, and those of slots scaled away.
func (w *world) trimHistory(p *Plan, s *ccv1.Service, history []*ccv1.Container) {
	bySlot := map[string][]*ccv1.Container{}
	replicated := s.GetSpec().GetMode() != ccv1.ServiceMode_SERVICE_MODE_GLOBAL
	for _, c := range history {
		if c.NodeId == "" || (replicated && uint64(c.Slot) > s.GetSpec().GetReplicas()) {
			p.remove(c) // never placed, or its slot was scaled away
			continue
		}
		k := fmt.Sprint(c.Slot)
		if c.Slot == 0 {
			k = c.NodeId
		}
		bySlot[k] = append(bySlot[k], c)
	}
	for _, ts := range bySlot {
		if len(ts) <= HistoryPerSlot {
			continue
		}
		sort.Slice(ts, func(i, j int) bool { return newer(ts[i], ts[j]) })
		for _, c := range ts[HistoryPerSlot:] {
			p.remove(c)
		}
	}
}

// create adds a new task of the service's current version; node is set
// for a global service's task.
func (w *world) create(p *Plan, s *ccv1.Service, slot uint32, node string) {
	id := w.in.NewID()
	label := fmt.Sprint(slot)
	if slot == 0 {
		label = node
		if n := w.nodes[node]; n != nil {
			label = n.Name
		}
	}
	short := id
	if len(short) > 8 {
		short = short[:8]
	}
	c := &ccv1.Container{
		Id:             id,
		Name:           fmt.Sprintf("%s.%s.%s", s.Name, label, short),
		Spec:           s.Spec.Task,
		ServiceId:      s.Id,
		Slot:           slot,
		ServiceVersion: s.Version,
		ImageDigest:    s.ImageDigest,
		NodeId:         node,
		CreatedAt:      timestamppb.New(w.in.Now),
	}
	w.creates = append(w.creates, c)
}

// schedule places the new tasks and the tasks still pending, and records
// why the others stay pending.
func (w *world) schedule(p *Plan) {
	services := map[string]*ccv1.Service{}
	for _, s := range w.in.Services {
		services[s.Id] = s
	}
	// Tasks this plan stops or removes free their resources and ports for
	// the tasks it places (an update stops the old task first).
	leaving := map[string]bool{}
	for _, op := range p.Ops {
		switch o := op.Op.(type) {
		case *statev1.TaskOp_Stop:
			leaving[o.Stop.TaskId] = true
		case *statev1.TaskOp_Remove:
			leaving[o.Remove] = true
		}
	}
	var placed, pending []scheduler.Task
	var waiting []*ccv1.Container // existing pending tasks, FIFO
	if x := w.in.Index; x != nil {
		for _, c := range x.Unplaced() {
			if c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING && !leaving[c.Id] && services[c.ServiceId] != nil {
				waiting = append(waiting, c)
			}
		}
		if len(waiting) == 0 && len(w.creates) == 0 {
			return // nothing to place
		}
		placed = w.placedTasks(x, leaving)
	} else {
		for _, r := range w.in.Tasks {
			c := r.GetContainer()
			if c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING || leaving[c.Id] {
				continue
			}
			if c.NodeId != "" {
				if msg, _, _ := w.nodeProblem(c); msg == "" || c.ServiceId == "" {
					placed = append(placed, schedTask(c, nil))
				}
				continue
			}
			if s := services[c.ServiceId]; s != nil {
				waiting = append(waiting, c)
			}
		}
		if len(waiting) == 0 && len(w.creates) == 0 {
			return // nothing to place
		}
	}
	sort.SliceStable(waiting, func(i, j int) bool {
		return waiting[i].GetCreatedAt().AsTime().Before(waiting[j].GetCreatedAt().AsTime())
	})
	pending = make([]scheduler.Task, 0, len(waiting)+len(w.creates))
	for _, c := range waiting {
		pending = append(pending, schedTask(c, services[c.ServiceId]))
	}
	p.Ops = slices.Grow(p.Ops, len(waiting)+len(w.creates))
	var direct []*ccv1.Container              // global tasks: created on their node
	placed = placed[:len(placed):len(placed)] // appending copies: placed may be the index's list
	for _, c := range w.creates {
		if c.NodeId != "" {
			direct = append(direct, c)
			placed = append(placed, schedTask(c, nil))
			continue
		}
		pending = append(pending, schedTask(c, services[c.ServiceId]))
	}
	nodes := make([]scheduler.Node, 0, len(w.in.Nodes))
	for _, n := range w.in.Nodes {
		nodes = append(nodes, schedNode(n))
	}
	strategy := scheduler.Spread
	if w.in.Strategy == ccv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK {
		strategy = scheduler.Binpack
	}
	res := scheduler.Place(nodes, placed, pending, strategy)
	// The creates go out in the order of their names: the state machine
	// inserts each name into its index in the order of the ops, and
	// ascending keys are appended to a page instead of shifting half of it
	// (a service's thousand new tasks share one page of that index).
	sort.Slice(direct, func(i, j int) bool { return direct[i].Name < direct[j].Name })
	creates := slices.Clone(w.creates)
	sort.Slice(creates, func(i, j int) bool { return creates[i].Name < creates[j].Name })
	for _, c := range direct {
		p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Create{Create: c}})
	}
	for _, c := range creates {
		if c.NodeId != "" {
			continue
		}
		if node, ok := res.Assigned[c.Id]; ok {
			c.NodeId = node
		} else {
			c.PendingReason = res.Pending[c.Id]
		}
		p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Create{Create: c}})
	}
	for _, c := range waiting {
		if node, ok := res.Assigned[c.Id]; ok {
			p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Assign{Assign: &statev1.AssignTask{TaskId: c.Id, NodeId: node}}})
		} else if why := res.Pending[c.Id]; why != c.PendingReason {
			p.Ops = append(p.Ops, &statev1.TaskOp{Op: &statev1.TaskOp_Pending{Pending: &statev1.PendingReason{TaskId: c.Id, Reason: why}}})
		}
	}
}

// Reservation is what a container sets aside on its node: its reservation,
// or its limit when it has none.
func Reservation(spec *ccv1.ContainerSpec) scheduler.Resources {
	r := spec.GetResources()
	out := scheduler.Resources{CPUMillis: r.GetCpuReservationMillis(), MemoryBytes: r.GetMemoryReservationBytes()}
	if out.CPUMillis == 0 {
		out.CPUMillis = r.GetCpuMillis()
	}
	if out.MemoryBytes == 0 {
		out.MemoryBytes = r.GetMemoryBytes()
	}
	return out
}

func schedTask(c *ccv1.Container, s *ccv1.Service) scheduler.Task {
	t := scheduler.Task{ID: c.Id, ServiceID: c.ServiceId, NodeID: c.NodeId, Reserve: Reservation(c.Spec)}
	if t.ServiceID == "" {
		t.ServiceID = "container:" + c.Id
	}
	for _, pm := range c.GetSpec().GetPorts() {
		if pm.HostPort > 0 {
			t.HostPorts = append(t.HostPorts, scheduler.Port{Number: pm.HostPort, Protocol: pm.Protocol})
		}
	}
	for _, m := range c.GetSpec().GetMounts() {
		if m.Type == "volume" {
			t.Volumes = append(t.Volumes, scheduler.Volume{Name: m.Source, NodeID: m.VolumeNodeId})
		}
	}
	if s != nil {
		t.Constraints = constraints(s)
		t.Spread = s.GetSpec().GetPlacement().GetSpread()
	}
	return t
}

// constraints parses a service's constraints; the API refused bad ones,
// so one that does not parse here matches no node.
func constraints(s *ccv1.Service) []scheduler.Constraint {
	var out []scheduler.Constraint
	for _, e := range s.GetSpec().GetPlacement().GetConstraints() {
		c, err := scheduler.ParseConstraint(e)
		if err != nil {
			// The scheduler keeps such a task pending with "invalid
			// placement" and the text the user wrote.
			c = scheduler.Constraint{Attr: e}
		}
		out = append(out, c)
	}
	return out
}

func matchesAll(cons []scheduler.Constraint, n *ccv1.Node) bool {
	sn := schedNode(n)
	for _, c := range cons {
		if !c.Matches(&sn) {
			return false
		}
	}
	return true
}

// schedNode is n as the scheduler sees it. Constraints on node.labels see
// only the labels an operator set (user_labels): the labels the agent
// reports are whatever a join-token holder chose, so they are visible only
// as node.reported.<key>.
func schedNode(n *ccv1.Node) scheduler.Node {
	return scheduler.Node{
		ID: n.Id, Name: n.Name, Labels: n.UserLabels, Reported: n.Labels,
		Ready:    n.State == ccv1.NodeState_NODE_STATE_READY,
		Active:   n.Availability == ccv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Capacity: scheduler.Resources{CPUMillis: n.GetResources().GetCpuMillis(), MemoryBytes: n.GetResources().GetMemoryBytes()},
	}
}

// PlaceOne places a single plain container among the containers already
// placed, with the spread strategy: what `ccctl run` without --node does.
func PlaceOne(nodes []*ccv1.Node, containers []*statev1.ContainerRecord, c *ccv1.Container) scheduler.Result {
	return PlaceContainers(nodes, containers, []*ccv1.Container{c}, scheduler.Spread)
}

// PlaceContainers places plain containers (job attempts, for one) in the
// order given among the containers already placed.
func PlaceContainers(nodes []*ccv1.Node, containers []*statev1.ContainerRecord, pending []*ccv1.Container, strategy scheduler.Strategy) scheduler.Result {
	sn := make([]scheduler.Node, 0, len(nodes))
	for _, n := range nodes {
		sn = append(sn, schedNode(n))
	}
	var placed []scheduler.Task
	for _, r := range containers {
		if o := r.GetContainer(); o.NodeId != "" && o.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING {
			placed = append(placed, schedTask(o, nil))
		}
	}
	tasks := make([]scheduler.Task, 0, len(pending))
	for _, c := range pending {
		tasks = append(tasks, schedTask(c, nil))
	}
	return scheduler.Place(sn, placed, tasks, strategy)
}
