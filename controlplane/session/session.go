// Package session serves the agents' long-lived streams: it sends each node
// the complete set of its assignments, then the changes with sequence
// numbers; it takes heartbeats and batched container status the other way,
// and relays log requests to the node that holds the logs.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/edgeconfig"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/tracing"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Options tune the hub.
type Options struct {
	// HelloTimeout bounds the wait for an agent's first message. Default 30s.
	HelloTimeout time.Duration
	// Tracing starts a span (session.deliver) for each new assignment
	// sent whose container was created by a traced request; nil: none.
	Tracing trace.TracerProvider
	// Metrics times assignment deliveries and counts status batches; nil:
	// none.
	Metrics *metrics.Metrics
}

// Hub holds the live agent sessions of this server: it serves their
// streams, relays log requests to them and buffers the status they report.
// Whether a node without a session is down is the leader's decision
// (package leader, from the sessions of every server).
type Hub struct {
	raft   *raftstore.Store
	fsm    *fsm.FSM
	log    *slog.Logger
	opts   Options
	tracer trace.Tracer

	mu       sync.Mutex
	sessions map[string]*session // node id → live session
	pending  map[string]*logRequest
	stats    statsWaiters         // stats requests waiting for SendStats
	execs    map[string]*execWait // exec requests waiting for the agent's stream
	closed   bool
	done     chan struct{} // closed by Close: ends log relays too

	status     *statusBuffer
	stopFlush  context.CancelFunc
	flushEnded chan struct{} // closed when flushLoop and edgeLoop ended

	edge *edgeCache
}

type session struct {
	nodeID   string
	edge     bool                               // the node runs the edge
	edgeSent atomic.Pointer[edgeconfig.Cluster] // the resolution last sent
	out      chan *ccv1.SessionResponse         // log requests and cancels for the send loop
	cancel   context.CancelFunc
	lastSeen atomic.Int64 // the last heartbeat or status, Unix nanoseconds
	opened   time.Time    // after the hello
	// edgeTraffic is what the node's edge served, as of its last
	// heartbeat that said; nil before one did.
	edgeTraffic atomic.Pointer[ccv1.EdgeTraffic]
	// ready: the node's record, as the send loop last read it, says
	// ready; a heartbeat reads the record only when it does not.
	ready atomic.Bool
}

// New returns a hub over a raft node and its state machine.
func New(r *raftstore.Store, f *fsm.FSM, log *slog.Logger, opts Options) *Hub {
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 30 * time.Second
	}
	hub := &Hub{raft: r, fsm: f, log: log, opts: opts, tracer: tracing.Tracer(opts.Tracing, "github.com/containercodes/cc/controlplane/session"),
		sessions: map[string]*session{}, pending: map[string]*logRequest{}, execs: map[string]*execWait{}, done: make(chan struct{}),
		status: newStatusBuffer(), flushEnded: make(chan struct{}), edge: newEdgeCache(f)}
	ctx, cancel := context.WithCancel(context.Background())
	hub.stopFlush = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		hub.flushLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		hub.edgeLoop(ctx)
	}()
	go func() {
		wg.Wait()
		close(hub.flushEnded)
	}()
	return hub
}

// Close ends every session, writes the status they left, and stops.
func (hub *Hub) Close() {
	hub.mu.Lock()
	if hub.closed {
		hub.mu.Unlock()
		return
	}
	hub.closed = true
	close(hub.done)
	for _, s := range hub.sessions {
		s.cancel()
	}
	hub.mu.Unlock()
	hub.stopFlush()
	<-hub.flushEnded
}

// Connected reports whether a node has a live session here.
func (hub *Hub) Connected(nodeID string) bool {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	return hub.sessions[nodeID] != nil
}

// LastSeen is the last heartbeat of a node with a live session here.
func (hub *Hub) LastSeen(nodeID string) (time.Time, bool) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	s := hub.sessions[nodeID]
	if s == nil {
		return time.Time{}, false
	}
	return time.Unix(0, s.lastSeen.Load()), true
}

// Session serves one agent's stream until it ends.
func (hub *Hub) Session(nodeID string, stream ccv1.AgentService_SessionServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	hello, err := recvHello(ctx, stream, hub.opts.HelloTimeout)
	if err != nil {
		return err
	}
	if err := hub.nodeUp(ctx, nodeID, hello); err != nil {
		return err
	}
	s := &session{nodeID: nodeID, edge: hello.Edge, out: make(chan *ccv1.SessionResponse, 16), cancel: cancel, opened: time.Now()}
	s.lastSeen.Store(s.opened.UnixNano())
	hub.register(s)
	defer hub.unregister(s)
	hub.log.Info("agent session opened", "node_id", nodeID, "version", hello.Version)

	// The send loop has a goroutine of its own; this one receives.
	sendErr := make(chan error, 1)
	go func() {
		err := hub.sendLoop(ctx, s, stream)
		cancel()
		sendErr <- err
	}()
	err = hub.recvLoop(ctx, s, stream)
	cancel()
	if serr := <-sendErr; serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr // what ended the session: the send loop's error
	}
	hub.log.Info("agent session closed", "node_id", nodeID, "err", err)
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "session ended")
	}
	return err
}

func recvHello(ctx context.Context, stream ccv1.AgentService_SessionServer, timeout time.Duration) (*ccv1.SessionHello, error) {
	type result struct {
		msg *ccv1.SessionRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if h := r.msg.GetHello(); h != nil {
			return h, nil
		}
		return nil, status.Error(codes.InvalidArgument, "a session starts with a hello")
	case <-time.After(timeout):
		return nil, status.Error(codes.DeadlineExceeded, "no hello from the agent in time")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// nodeUp records what the agent reports at connect and marks it ready.
func (hub *Hub) nodeUp(ctx context.Context, nodeID string, h *ccv1.SessionHello) error {
	n, err := hub.fsm.Node(nodeID)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "node %s is not part of the cluster (removed?): join again with a new token", nodeID)
	}
	upd := &statev1.UpdateNode{Id: nodeID}
	changed := false
	if n.State != ccv1.NodeState_NODE_STATE_READY {
		upd.State, changed = ccv1.NodeState_NODE_STATE_READY, true
	}
	if h.Address != "" && h.Address != n.Address {
		upd.Address, changed = h.Address, true
	}
	if h.Resources != nil && !proto.Equal(h.Resources, n.Resources) {
		upd.Resources, changed = h.Resources, true
	}
	if h.Labels != nil && !maps.Equal(h.Labels, n.Labels) {
		upd.Labels, upd.SetLabels, changed = h.Labels, true, true
	}
	if h.Version != "" && h.Version != n.Version {
		upd.Version, changed = h.Version, true
	}
	if !changed {
		return nil
	}
	_, err = hub.raft.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, upd, time.Now())
	return err
}

func (hub *Hub) register(s *session) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if old := hub.sessions[s.nodeID]; old != nil {
		old.cancel() // a reconnect replaces the old stream
	}
	hub.sessions[s.nodeID] = s
}

// unregister drops the session. Whether the node is down is the leader's
// decision (package leader, the node-health loop), from the sessions of
// every server.
func (hub *Hub) unregister(s *session) {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if hub.sessions[s.nodeID] != s {
		return
	}
	delete(hub.sessions, s.nodeID)
}

func (hub *Hub) recvLoop(ctx context.Context, s *session, stream ccv1.AgentService_SessionServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		// Recv does not watch ctx: a session ended here (shutdown, a
		// reconnect elsewhere) stops at the next message at the latest.
		if err := ctx.Err(); err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *ccv1.SessionRequest_Heartbeat:
			s.lastSeen.Store(time.Now().UnixNano())
			if e := m.Heartbeat.GetEdge(); e != nil {
				s.edgeTraffic.Store(&ccv1.EdgeTraffic{Requests: e.Requests, Errors: e.Errors})
			}
			// Another server may have marked the node down after the
			// agent moved here: a live session puts that right. The
			// send loop notes the node's state whenever its record
			// changes; only a node not noted ready is read here.
			if s.ready.Load() {
				continue
			}
			if n, err := hub.fsm.Node(s.nodeID); err == nil && n.State != ccv1.NodeState_NODE_STATE_READY {
				if _, err := hub.raft.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_NODE, &statev1.UpdateNode{Id: s.nodeID, State: ccv1.NodeState_NODE_STATE_READY}, time.Now()); err != nil {
					hub.log.Warn("could not mark node ready", "node_id", s.nodeID, "err", err)
				}
			}
		case *ccv1.SessionRequest_Status:
			s.lastSeen.Store(time.Now().UnixNano())
			if len(m.Status.Statuses) == 0 {
				continue
			}
			hub.opts.Metrics.StatusBatch(len(m.Status.Statuses))
			hub.status.add(s.nodeID, m.Status.Statuses)
		case *ccv1.SessionRequest_Hello:
			return status.Error(codes.InvalidArgument, "hello sent twice")
		}
	}
}

// sendLoop sends the full set of assignments, then changes as the state
// changes, and relays log requests. The node's edge configuration follows
// the assignments the same way, with its own sequence. After the full set
// it reads only what the state machine says changed for the node (a
// fsm.NodeFeed), and keeps of what it sent only each container's
// generation.
func (hub *Hub) sendLoop(ctx context.Context, s *session, stream ccv1.AgentService_SessionServer) error {
	feed := hub.fsm.SubscribeNode(s.nodeID)
	defer feed.Close()
	var seq uint64
	var sent map[string]uint64 // container id → generation sent; nil before the full set
	var servers []string
	var trust pki.Trust
	var edge edgeSender
	var volumes []string    // the volume list last sent; nil before the first
	var changedAt time.Time // when the change that woke the loop was applied
	// The first pass reads everything; later ones what the feed names.
	ch := fsm.NodeChanges{Rescan: true, Volumes: true, Node: true, Servers: true}
	for {
		if ch.Node {
			n, err := hub.fsm.Node(s.nodeID)
			if err != nil {
				return status.Errorf(codes.PermissionDenied, "node %s was removed from the cluster", s.nodeID)
			}
			s.ready.Store(n.State == ccv1.NodeState_NODE_STATE_READY)
		}
		if ch.Servers {
			if addrs, nowTrust := hub.serverList(); !equalStrings(addrs, servers) || !nowTrust.Equal(trust) {
				if err := stream.Send(&ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Servers{Servers: &ccv1.ServerList{ApiAddresses: addrs, Trust: nowTrust.Proto()}}}); err != nil {
					return err
				}
				servers, trust = addrs, nowTrust
			}
		}
		// Before the assignments: a task's volume is listed before the
		// task that mounts it arrives.
		if ch.Volumes {
			vols, err := hub.fsm.NodeVolumes(s.nodeID)
			if err != nil {
				return err
			}
			if vols == nil {
				vols = []string{}
			}
			if volumes == nil || !equalStrings(vols, volumes) {
				if err := stream.Send(&ccv1.SessionResponse{Msg: &ccv1.SessionResponse_Volumes{Volumes: &ccv1.VolumeList{Names: vols}}}); err != nil {
					return err
				}
				volumes = vols
			}
		}
		if sent == nil {
			now, err := Assignments(hub.fsm, s.nodeID)
			if err != nil {
				return err
			}
			seq = 1
			if err := stream.Send(&ccv1.SessionResponse{Seq: seq, Msg: &ccv1.SessionResponse_Full{Full: &ccv1.AssignmentSet{Assignments: sorted(now)}}}); err != nil {
				return err
			}
			hub.opts.Metrics.AssignmentsDelivered(metrics.DeliveryFull, time.Since(s.opened))
			sent = generations(now)
		} else if ch.Rescan || len(ch.Containers) > 0 {
			changes, err := hub.changes(s.nodeID, sent, &ch)
			if err != nil {
				return err
			}
			if changes != nil {
				seq++
				spans := hub.traceDelivery(ctx, s.nodeID, sent, changes.Updated)
				err := stream.Send(&ccv1.SessionResponse{Seq: seq, Msg: &ccv1.SessionResponse_Changes{Changes: changes}})
				for _, sp := range spans {
					if err != nil {
						sp.SetStatus(otelcodes.Error, err.Error())
					}
					sp.End()
				}
				if err != nil {
					return err
				}
				if !changedAt.IsZero() {
					hub.opts.Metrics.AssignmentsDelivered(metrics.DeliveryChanges, time.Since(changedAt))
				}
				for _, a := range changes.Updated {
					sent[a.ContainerId] = a.Generation
				}
				for _, id := range changes.Removed {
					delete(sent, id)
				}
			}
		}
		cl, edgeChanged, err := hub.edge.current()
		if err != nil {
			hub.log.Warn("could not resolve the edge configuration; sending the last", "node_id", s.nodeID, "err", err)
		}
		if m := edge.next(cl.For(s.nodeID, s.edge)); m != nil {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		s.edgeSent.Store(cl)
		ch = fsm.NodeChanges{}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-edgeChanged:
			changedAt = hub.fsm.LastApplied()
		case <-feed.C():
			changedAt = hub.fsm.LastApplied()
			ch = feed.Take()
		case m := <-s.out:
			changedAt = time.Time{}
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// changes reads what ch names of a node's assignments and returns how
// they differ from what was sent (container id → generation), or nil.
func (hub *Hub) changes(nodeID string, sent map[string]uint64, ch *fsm.NodeChanges) (*ccv1.AssignmentChanges, error) {
	if ch.Rescan {
		now, err := Assignments(hub.fsm, nodeID)
		if err != nil {
			return nil, err
		}
		return diffGenerations(sent, now, nil), nil
	}
	ids := make([]string, 0, len(ch.Containers))
	for id := range ch.Containers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	recs, err := hub.fsm.NodeContainersByID(nodeID, ids)
	if err != nil {
		return nil, err
	}
	now := make(map[string]*ccv1.Assignment, len(recs))
	for id, r := range recs {
		now[id] = assignment(r)
	}
	return diffGenerations(sent, now, ids), nil
}

// diffGenerations is Diff against what was sent: of the containers among
// only (nil: all), those whose generation differs or that are new are
// updated; those sent but absent from now are removed.
func diffGenerations(sent map[string]uint64, now map[string]*ccv1.Assignment, only []string) *ccv1.AssignmentChanges {
	ch := &ccv1.AssignmentChanges{}
	for id, a := range now {
		if g, ok := sent[id]; !ok || g != a.Generation {
			ch.Updated = append(ch.Updated, a)
		}
	}
	if only == nil {
		for id := range sent {
			if _, ok := now[id]; !ok {
				ch.Removed = append(ch.Removed, id)
			}
		}
	} else {
		for _, id := range only {
			if _, ok := sent[id]; ok && now[id] == nil {
				ch.Removed = append(ch.Removed, id)
			}
		}
	}
	if len(ch.Updated) == 0 && len(ch.Removed) == 0 {
		return nil
	}
	sort.Slice(ch.Updated, func(i, j int) bool { return ch.Updated[i].ContainerId < ch.Updated[j].ContainerId })
	sort.Strings(ch.Removed)
	return ch
}

func generations(m map[string]*ccv1.Assignment) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for id, a := range m {
		out[id] = a.Generation
	}
	return out
}

// serverList is the API addresses of the servers not removed, sorted, and
// the cluster's trust record (empty until the state has one).
func (hub *Hub) serverList() ([]string, pki.Trust) {
	trust, _ := hub.fsm.Trust()
	recs, err := hub.fsm.Servers()
	if err != nil {
		return nil, trust
	}
	var out []string
	for _, r := range recs {
		if !r.Removed && r.ApiAddress != "" {
			out = append(out, r.ApiAddress)
		}
	}
	sort.Strings(out)
	return out, trust
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Assignments computes a node's assignments from the state.
func Assignments(f *fsm.FSM, nodeID string) (map[string]*ccv1.Assignment, error) {
	recs, err := f.NodeContainers(nodeID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*ccv1.Assignment, len(recs))
	for _, r := range recs {
		out[r.Container.Id] = assignment(r)
	}
	return out, nil
}

func assignment(r *statev1.ContainerRecord) *ccv1.Assignment {
	c := r.Container
	return &ccv1.Assignment{
		ContainerId:   c.Id,
		Name:          c.Name,
		Spec:          c.Spec,
		Desired:       c.Desired,
		Generation:    c.Generation,
		ImageDigest:   c.ImageDigest,
		StopTimeoutMs: r.StopTimeoutMs,
		TraceContext:  r.TraceContext,
	}
}

// traceDelivery starts a span (session.deliver) for each assignment of
// updated that is new to the node and whose container was created by a
// traced request, as the child of that request's span, and hands the
// agent the span's context in its place: the agent's start of the
// container continues the trace from the delivery. The caller ends the
// spans once the message is sent.
func (hub *Hub) traceDelivery(ctx context.Context, nodeID string, sent map[string]uint64, updated []*ccv1.Assignment) []trace.Span {
	var spans []trace.Span
	for _, a := range updated {
		if _, known := sent[a.ContainerId]; known || len(a.TraceContext) == 0 {
			continue
		}
		sctx, span := hub.tracer.Start(tracing.Extract(ctx, a.TraceContext), "session.deliver",
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("cc.node.id", nodeID), attribute.String("cc.container.id", a.ContainerId),
				attribute.String("cc.container.name", a.Name)))
		if tc := tracing.Inject(sctx); tc != nil {
			a.TraceContext = tc
		}
		spans = append(spans, span)
	}
	return spans
}

// Diff returns the changes from one set of assignments to the next, or nil
// when there are none. A changed assignment has a new generation.
func Diff(before, after map[string]*ccv1.Assignment) *ccv1.AssignmentChanges {
	return diffGenerations(generations(before), after, nil)
}

func sorted(m map[string]*ccv1.Assignment) []*ccv1.Assignment {
	out := make([]*ccv1.Assignment, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerId < out[j].ContainerId })
	return out
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Open is how many agent sessions this server holds.
func (hub *Hub) Open() int {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	return len(hub.sessions)
}

// EdgeTraffic returns, for each node with a live session here whose
// heartbeats report its edge, what the edge served as of the last one.
func (hub *Hub) EdgeTraffic() map[string]*ccv1.EdgeTraffic {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	out := map[string]*ccv1.EdgeTraffic{}
	for id, s := range hub.sessions {
		if e := s.edgeTraffic.Load(); e != nil {
			out[id] = e
		}
	}
	return out
}

// EdgeTrafficOf is EdgeTraffic of one node: nil without a session here
// whose heartbeats report its edge.
func (hub *Hub) EdgeTrafficOf(nodeID string) *ccv1.EdgeTraffic {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if s := hub.sessions[nodeID]; s != nil {
		return s.edgeTraffic.Load()
	}
	return nil
}

// Sessions returns the nodes with a live session here and their last
// heartbeat.
func (hub *Hub) Sessions() map[string]time.Time {
	hub.mu.Lock()
	defer hub.mu.Unlock()
	out := make(map[string]time.Time, len(hub.sessions))
	for id, s := range hub.sessions {
		out[id] = time.Unix(0, s.lastSeen.Load())
	}
	return out
}
