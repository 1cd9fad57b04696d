// Package worker is the agent's main loop: it keeps the session with the
// control plane (assignments in, heartbeats and status out), reconciles the
// assignments with what containerd runs through package runtime, applies
// restart policies with backoff, runs the containers' health checks
// (package health) and stops those that turn unhealthy, answers log
// requests, and keeps the node's edge configuration: the relays of its
// routed tasks (package relay), the sites' bundles, and the routes and
// sites handed to the node's edge server (edge.go).
package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/agent/health"
	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/agent/reconcile"
	"github.com/containercodes/cc/agent/relay"
	"github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Config is what the worker needs.
type Config struct {
	Identity *identity.Identity
	Runtime  *runtime.Runtime
	Hello    *ccv1.SessionHello // what the agent reports at connect
	Logger   *slog.Logger
	// Heartbeat is the heartbeat period; default 3s.
	Heartbeat time.Duration
	// Resync is the period of the reconcile pass when nothing happens;
	// default 5s.
	Resync time.Duration
	// DataDir is the agent's data dir: the sites' bundles are kept under
	// its edge/ directory.
	DataDir string
	// Edge serves the node's routes and sites; nil: this node serves no
	// edge (its routed tasks are still relayed for the other nodes').
	Edge Edge
	// Tracing starts the spans of container starts and job attempts
	// (children of the request that created them, whose trace context
	// comes with the assignment) and of calls to the control plane; nil:
	// none.
	Tracing trace.TracerProvider
	// Metrics counts starts, restarts, OOM kills and health checks, and
	// reads the containers' states when scraped; nil: none.
	Metrics *metrics.Metrics
}

// Worker runs a node.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	client ccv1.AgentServiceClient
	conn   *clusterdial.Conn
	// health runs the checks of the running containers that have one;
	// the reconcile passes tell it which (Sync), Run closes it.
	health *health.Monitor

	mu sync.Mutex
	// volumes are the node's volumes the session last listed; nil until
	// a list came (then the others' data is deleted).
	volumes    map[string]bool
	desired    map[string]*ccv1.Assignment
	haveFull   bool
	mem        map[string]reconcile.Memory
	preparing  map[string]bool
	lastSent   map[string]*ccv1.ContainerStatus
	logCancels map[string]context.CancelFunc
	// Job attempts (jobs.go): stops at the timeout in progress,
	// collections in progress, and collected results to report.
	stopping   map[string]bool
	collecting map[string]bool
	results    map[string]*ccv1.JobResult
	jobsWG     sync.WaitGroup

	sendMu sync.Mutex
	stream ccv1.AgentService_SessionClient // nil between sessions

	kick chan struct{} // buffered 1: a reconcile pass is wanted

	// The session's state, for readiness (Session); guarded by sessMu.
	sessMu    sync.Mutex
	sessUp    bool
	sessSince time.Time // when it came up, or went down
	sessErr   error     // why the last one ended

	// The node's edge configuration (edge.go), guarded by mu; the relays
	// of its routed tasks; edgeKick (buffered 1) wakes the edge loop.
	edgeCfg  *ccv1.EdgeConfig
	relays   *relay.Set
	edgeKick chan struct{}

	// counts is the containers by kind and state the last pass saw
	// (guarded by mu), for the metrics.
	counts map[metrics.ContainerKey]int
}

// New connects (lazily) to the control plane.
func New(cfg Config) (*Worker, error) {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 3 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Second
	}
	if len(cfg.Identity.Servers) == 0 {
		return nil, errors.New("the agent knows no control plane address: join again")
	}
	conn, err := clusterdial.DialSpread(cfg.Identity.ServerList(),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg.Identity.TLSConfig())),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Uploads and fetches continue the trace of the work they serve;
		// calls outside a trace (the session, renewals) are no spans.
		grpc.WithStatsHandler(tracing.ClientHandler(cfg.Tracing)),
	)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, log: cfg.Logger, conn: conn, client: ccv1.NewAgentServiceClient(conn),
		tracer:  tracing.Tracer(cfg.Tracing, "github.com/containercodes/cc/agent/worker"),
		desired: map[string]*ccv1.Assignment{}, mem: map[string]reconcile.Memory{},
		preparing: map[string]bool{}, lastSent: map[string]*ccv1.ContainerStatus{},
		logCancels: map[string]context.CancelFunc{}, kick: make(chan struct{}, 1),
		stopping: map[string]bool{}, collecting: map[string]bool{}, results: map[string]*ccv1.JobResult{},
		relays: relay.New(cfg.Hello.GetAddress(), cfg.Logger.With("component", "relay")), edgeKick: make(chan struct{}, 1),
	}
	// A change of health wants a pass: it reports the change, and stops a
	// container that turned unhealthy.
	w.health = health.NewMonitor(countedChecker{health.NewChecker(cfg.Runtime), cfg.Metrics}, cfg.Logger.With("component", "health"), func(string) { w.poke() })
	cfg.Metrics.SetContainers(w.containerCounts)
	cfg.Metrics.SetUsage(w.containerUsage)
	return w, nil
}

// Run works until ctx ends. Containers keep running when it returns; their
// health checks stop. A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	defer w.conn.Close()
	defer w.health.Close() // after wg.Wait: no pass starts a prober after it
	defer w.relays.Close() // after wg.Wait: no pass opens a relay after it
	var wg sync.WaitGroup
	defer wg.Wait()
	defer w.jobsWG.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(4)
	go func() {
		defer wg.Done()
		w.edgeLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		w.cfg.Identity.RenewLoop(ctx, w.client, func(err error) { w.log.Warn("certificate renewal failed; retrying", "err", err) })
	}()
	go func() {
		defer wg.Done()
		for range w.cfg.Runtime.Events(ctx) {
			w.poke()
		}
	}()
	go func() {
		defer wg.Done()
		w.reconcileLoop(ctx)
	}()
	backoff := time.Second
	for {
		started := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		w.setSession(false, err)
		w.log.Warn("session with the control plane ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

// setSession records that the session came up (it received the full
// assignment set) or ended (err).
func (w *Worker) setSession(up bool, err error) {
	w.sessMu.Lock()
	defer w.sessMu.Unlock()
	if up != w.sessUp || w.sessSince.IsZero() {
		w.sessSince = time.Now()
	}
	w.sessUp = up
	if err != nil {
		w.sessErr = err
	}
}

// Session says whether the node holds its session with the control plane
// (it has received its assignments), since when it is up or down, and why
// the last session ended (nil when none did).
func (w *Worker) Session() (up bool, since time.Time, lastErr error) {
	w.sessMu.Lock()
	defer w.sessMu.Unlock()
	return w.sessUp, w.sessSince, w.sessErr
}

func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Worker) send(m *ccv1.SessionRequest) error {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.stream == nil {
		return errors.New("no session")
	}
	return w.stream.Send(m)
}

// updateTrust takes the trust record the session's server sent, when that
// server is a member the node knows (identity.UpdateTrust).
func (w *Worker) updateTrust(ctx context.Context, t pki.Trust) {
	var from tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			from = info.State
		}
	}
	changed, err := w.cfg.Identity.UpdateTrust(t, from)
	switch {
	case err != nil:
		w.log.Warn("trust record not taken", "err", err)
	case changed:
		t := w.cfg.Identity.Trust()
		w.log.Info("trust record updated", "members", len(t.Members), "removed", len(t.Removed))
	}
}

// session runs one session until it fails.
func (w *Worker) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.Session(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Hello{Hello: w.cfg.Hello}}); err != nil {
		return err
	}
	w.sendMu.Lock()
	w.stream = stream
	w.sendMu.Unlock()
	w.mu.Lock()
	w.lastSent = map[string]*ccv1.ContainerStatus{} // the new session gets every status
	w.mu.Unlock()
	defer func() {
		w.sendMu.Lock()
		w.stream = nil
		w.sendMu.Unlock()
	}()
	go func() {
		t := time.NewTicker(w.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				hb := &ccv1.Heartbeat{}
				if w.cfg.Hello.GetEdge() {
					hb.Edge = w.cfg.Metrics.EdgeTraffic()
				}
				if err := w.send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Heartbeat{Heartbeat: hb}}); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	var next, edgeNext uint64
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *ccv1.SessionResponse_Full:
			set := map[string]*ccv1.Assignment{}
			for _, a := range m.Full.Assignments {
				set[a.ContainerId] = a
			}
			w.mu.Lock()
			w.desired, w.haveFull = set, true
			w.mu.Unlock()
			next = msg.Seq + 1
			w.setSession(true, nil)
			w.log.Info("assignments received", "count", len(set))
			w.poke()
		case *ccv1.SessionResponse_Changes:
			if msg.Seq != next {
				return fmt.Errorf("assignment sequence gap: got %d, want %d; resyncing", msg.Seq, next)
			}
			next++
			w.mu.Lock()
			for _, a := range m.Changes.Updated {
				w.desired[a.ContainerId] = a
			}
			for _, id := range m.Changes.Removed {
				delete(w.desired, id)
			}
			w.mu.Unlock()
			w.log.Debug("assignment changes received", "seq", msg.Seq, "updated", len(m.Changes.Updated), "removed", len(m.Changes.Removed))
			w.poke()
		case *ccv1.SessionResponse_Edge:
			if err := w.setEdge(m.Edge, &edgeNext); err != nil {
				return err
			}
		case *ccv1.SessionResponse_Logs:
			go w.serveLogs(ctx, m.Logs)
		case *ccv1.SessionResponse_Stats:
			go w.serveStats(ctx, m.Stats)
		case *ccv1.SessionResponse_Exec:
			go w.serveExec(ctx, m.Exec)
		case *ccv1.SessionResponse_Servers:
			if m.Servers.Trust != nil {
				w.updateTrust(stream.Context(), pki.TrustFromProto(m.Servers.Trust))
			}
			addrs := m.Servers.ApiAddresses
			if err := w.cfg.Identity.SetServers(addrs); err != nil {
				w.log.Warn("cannot save the server list", "err", err)
			}
			w.conn.Update(addrs)
		case *ccv1.SessionResponse_Volumes:
			keep := map[string]bool{}
			for _, n := range m.Volumes.Names {
				keep[n] = true
			}
			w.mu.Lock()
			w.volumes = keep
			w.mu.Unlock()
			w.poke()
		case *ccv1.SessionResponse_LogCancel:
			w.mu.Lock()
			if c := w.logCancels[m.LogCancel.RequestId]; c != nil {
				c()
			}
			w.mu.Unlock()
		}
	}
}

func (w *Worker) reconcileLoop(ctx context.Context) {
	timer := time.NewTimer(w.cfg.Resync)
	defer timer.Stop()
	for {
		wake := w.pass(ctx)
		d := w.cfg.Resync
		if !wake.IsZero() {
			if u := time.Until(wake); u < d {
				d = u
			}
		}
		if d < 10*time.Millisecond {
			d = 10 * time.Millisecond
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// pass is one reconcile pass: observe, decide, act, report.
func (w *Worker) pass(ctx context.Context) (wakeAt time.Time) {
	w.mu.Lock()
	if !w.haveFull {
		w.mu.Unlock()
		return time.Time{}
	}
	desired := make(map[string]*ccv1.Assignment, len(w.desired))
	for id, a := range w.desired {
		desired[id] = a
	}
	mem := make(map[string]reconcile.Memory, len(w.mem))
	for id, m := range w.mem {
		mem[id] = m
	}
	w.mu.Unlock()

	hops := runtime.NewHops()
	observed, err := w.observe(ctx)
	if err != nil {
		w.log.Warn("cannot list containers", "err", err)
		return time.Now().Add(time.Second)
	}
	hops.Mark("observe")
	w.syncHealth(desired, observed)
	want := map[string]reconcile.Desired{}
	for id, a := range desired {
		want[id] = reconcile.Desired{
			ID: id, Generation: a.Generation, Run: a.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING,
			Restart: a.GetSpec().GetRestart(), StopTimeout: time.Duration(a.StopTimeoutMs) * time.Millisecond,
		}
	}
	actions, wakeAt := reconcile.Decide(want, w.toReconcile(desired, observed), mem, time.Now())
	for _, act := range actions {
		if act.Unhealthy {
			// The control plane sees the container unhealthy before it
			// is stopped.
			w.report(desired, observed)
			break
		}
	}
	if len(actions) > 0 {
		hops.Mark("decide")
		defer func() { hops.Log(ctx, w.log, "reconcile pass timing", "actions", len(actions)) }()
	}
	for _, act := range actions {
		if ctx.Err() != nil {
			return
		}
		if act.Unhealthy {
			hs, _ := w.health.State(healthKey(observed[act.ID]))
			w.log.Warn("container unhealthy: stopping it so its restart policy applies", "container_id", act.ID,
				"name", desired[act.ID].GetName(), "restart", desired[act.ID].GetSpec().GetRestart().String(), "output", hs.Output)
		}
		w.do(ctx, act, desired[act.ID])
	}
	if len(actions) > 0 {
		hops.Mark("act")
		if observed, err = w.observe(ctx); err != nil {
			return time.Now().Add(time.Second)
		}
		w.syncHealth(desired, observed)
		hops.Mark("observe_after")
	}
	if jw := w.jobPass(ctx, desired, observed); !jw.IsZero() && (wakeAt.IsZero() || jw.Before(wakeAt)) {
		wakeAt = jw
	}
	w.syncRelays(relayView(observed))
	w.dropVolumes(observed)
	hops.Mark("jobs_relays_volumes")
	w.report(desired, observed)
	hops.Mark("report")
	w.count(desired, observed)
	return wakeAt
}

func relayView(observed map[string]runtime.Observed) map[string]runtimeView {
	out := make(map[string]runtimeView, len(observed))
	for id, o := range observed {
		out[id] = runtimeView{running: o.State == ccv1.ContainerState_CONTAINER_STATE_RUNNING, ip: o.IP}
	}
	return out
}

// syncHealth runs the health checks of the running containers of the
// current generation whose spec has one, and stops the others'.
func (w *Worker) syncHealth(desired map[string]*ccv1.Assignment, observed map[string]runtime.Observed) {
	var targets []health.Target
	for id, o := range observed {
		a := desired[id]
		if a == nil || a.GetSpec().GetHealth() == nil || a.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING ||
			o.State != ccv1.ContainerState_CONTAINER_STATE_RUNNING || o.Generation != a.Generation {
			continue
		}
		targets = append(targets, health.Target{
			Key:   healthKey(o),
			Check: a.Spec.Health, Ports: a.Spec.Ports,
		})
	}
	w.health.Sync(targets)
}

func healthKey(o runtime.Observed) health.Key {
	return health.Key{ID: o.ID, Generation: o.Generation, StartedAt: o.StartedAt}
}

func (w *Worker) observe(ctx context.Context) (map[string]runtime.Observed, error) {
	list, err := w.cfg.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]runtime.Observed, len(list))
	for _, o := range list {
		out[o.ID] = o
	}
	return out, nil
}

func (w *Worker) toReconcile(desired map[string]*ccv1.Assignment, obs map[string]runtime.Observed) map[string]reconcile.Observed {
	out := make(map[string]reconcile.Observed, len(obs))
	for id, o := range obs {
		r := reconcile.Observed{
			ID: id, Generation: o.Generation,
			Running:  o.State == ccv1.ContainerState_CONTAINER_STATE_RUNNING,
			Exited:   o.State != ccv1.ContainerState_CONTAINER_STATE_RUNNING,
			ExitCode: o.ExitCode, FinishedAt: o.FinishedAt,
		}
		if r.Running && desired[id].GetSpec().GetHealth() != nil {
			hs, _ := w.health.State(healthKey(o))
			r.Unhealthy = hs.Health == ccv1.HealthState_HEALTH_STATE_UNHEALTHY
		}
		out[id] = r
	}
	return out
}

func (w *Worker) do(ctx context.Context, act reconcile.Action, a *ccv1.Assignment) {
	log := w.log.With("container_id", act.ID, "action", act.Kind.String())
	switch act.Kind {
	case reconcile.Remove:
		if err := w.cfg.Runtime.Remove(ctx, act.ID); err != nil {
			log.Warn("remove failed", "err", err)
			return
		}
		if err := w.cfg.Runtime.RemoveLogs(act.ID); err != nil {
			log.Warn("remove logs failed", "err", err)
		}
		w.mu.Lock()
		delete(w.mem, act.ID)
		delete(w.lastSent, act.ID)
		delete(w.results, act.ID)
		w.mu.Unlock()
		w.health.Forget(act.ID)
		log.Info("container removed")
	case reconcile.Stop:
		if err := w.cfg.Runtime.Stop(ctx, act.ID, act.Timeout); err != nil {
			log.Warn("stop failed", "err", err)
			return
		}
		if act.Unhealthy {
			w.mu.Lock()
			w.mem[act.ID] = reconcile.AfterStop(w.mem[act.ID], a.GetGeneration(), act)
			w.mu.Unlock()
		}
		log.Info("container stopped")
	case reconcile.Start:
		sctx, span := w.span(ctx, "agent.start", a, !act.IsRestart, attribute.Bool("cc.restart", act.IsRestart),
			attribute.String("cc.image", a.GetSpec().GetImage()))
		w.mu.Lock()
		w.preparing[act.ID] = true
		w.mu.Unlock()
		w.report(map[string]*ccv1.Assignment{act.ID: a}, nil)
		if act.IsRestart {
			w.cfg.Metrics.ContainerRestarted()
		}
		began := time.Now()
		err := w.start(sctx, a)
		w.cfg.Metrics.ContainerStarted(kindOf(a), err == nil, time.Since(began))
		w.mu.Lock()
		delete(w.preparing, act.ID)
		w.mem[act.ID] = reconcile.AfterStart(w.mem[act.ID], a.Generation, act, err, time.Now())
		w.mu.Unlock()
		endSpan(span, err)
		if err != nil {
			log.WarnContext(sctx, "start failed", "err", err)
			return
		}
		log.InfoContext(sctx, "container started", "name", a.Name, "restart", act.IsRestart)
	}
}

func (w *Worker) start(ctx context.Context, a *ccv1.Assignment) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var open func(context.Context) (io.ReadCloser, error)
	if a.ImageDigest != "" {
		digest := a.ImageDigest
		open = func(ctx context.Context) (io.ReadCloser, error) { return w.fetchBlob(ctx, digest) }
	}
	hops := runtime.NewHops()
	if err := w.cfg.Runtime.EnsureImage(ctx, a.GetSpec().GetImage(), open); err != nil {
		return fmt.Errorf("image %s: %w", a.GetSpec().GetImage(), err)
	}
	hops.Mark("ensure_image")
	_, err := w.cfg.Runtime.Start(ctx, runtime.Task{ID: a.ContainerId, Name: a.Name, Generation: a.Generation, Spec: a.Spec, OpenInput: w.openInput(a)})
	hops.Mark("start")
	if err == nil {
		hops.Log(ctx, w.log, "agent start timing", "container_id", a.ContainerId)
	}
	return err
}

// report sends the statuses that changed since the last report.
func (w *Worker) report(desired map[string]*ccv1.Assignment, observed map[string]runtime.Observed) {
	now := timestamppb.Now()
	w.mu.Lock()
	var batch []*ccv1.TaskStatus
	for id, a := range desired {
		st := w.statusOf(a, observed)
		if proto.Equal(st, w.lastSent[id]) {
			continue
		}
		batch = append(batch, &ccv1.TaskStatus{ContainerId: id, Generation: a.Generation, Status: st, ObservedAt: now})
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := w.send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Status{Status: &ccv1.StatusBatch{Statuses: batch}}}); err != nil {
		return // sent again in full on the next session
	}
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		states := make([]string, 0, len(batch))
		for _, ts := range batch {
			states = append(states, ts.Status.GetState().String())
		}
		w.log.Debug("statuses sent", "states", states)
	}
	w.mu.Lock()
	for _, ts := range batch {
		if st := ts.Status; st.GetOomKilled() {
			if prev := w.lastSent[ts.ContainerId]; !prev.GetOomKilled() || !proto.Equal(prev.GetStartedAt(), st.GetStartedAt()) {
				w.cfg.Metrics.OOMKilled(kindOf(desired[ts.ContainerId]))
			}
		}
		w.lastSent[ts.ContainerId] = ts.Status
	}
	w.mu.Unlock()
}

// statusOf says where a container stands; w.mu is held.
func (w *Worker) statusOf(a *ccv1.Assignment, observed map[string]runtime.Observed) *ccv1.ContainerStatus {
	m := w.mem[a.ContainerId]
	if m.Generation != a.Generation {
		m = reconcile.Memory{}
	}
	st := &ccv1.ContainerStatus{RestartCount: m.Restarts}
	o, seen := observed[a.ContainerId]
	// A stop raises the generation without recreating the container: the
	// one that ran is still the one to report.
	current := seen && (o.Generation >= a.Generation || a.Desired == ccv1.DesiredState_DESIRED_STATE_STOPPED)
	switch {
	case w.preparing[a.ContainerId]:
		st.State = ccv1.ContainerState_CONTAINER_STATE_PREPARING
	case current && o.State == ccv1.ContainerState_CONTAINER_STATE_RUNNING:
		st.State = ccv1.ContainerState_CONTAINER_STATE_RUNNING
		st.StartedAt = ts(o.StartedAt)
		st.Ip = o.IP
		st.Relays = w.relays.Ports(a.ContainerId)
		if a.GetSpec().GetHealth() != nil {
			// STARTING until its prober says otherwise.
			st.Health = ccv1.HealthState_HEALTH_STATE_STARTING
			if hs, ok := w.health.State(healthKey(o)); ok {
				st.Health, st.HealthOutput = hs.Health, hs.Output
			}
		}
	case current:
		st.State = ccv1.ContainerState_CONTAINER_STATE_EXITED
		if o.State == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			st.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
			st.Error = "the container was created but its process never started"
		}
		st.ExitCode, st.OomKilled = o.ExitCode, o.OOMKilled
		st.StartedAt, st.FinishedAt = ts(o.StartedAt), ts(o.FinishedAt)
		// The last health of the run that ended (UNHEALTHY after the
		// agent stopped it for that).
		if hs, ok := w.health.State(healthKey(o)); ok && a.GetSpec().GetHealth() != nil {
			st.Health, st.HealthOutput = hs.Health, hs.Output
		}
		if a.GetSpec().GetSandbox() != nil && st.State == ccv1.ContainerState_CONTAINER_STATE_EXITED {
			st.JobResult = proto.Clone(w.jobResult(a.ContainerId)).(*ccv1.JobResult)
		}
	case m.StartFailed:
		st.State = ccv1.ContainerState_CONTAINER_STATE_FAILED
		st.Error = m.StartFailure
	case a.Desired == ccv1.DesiredState_DESIRED_STATE_STOPPED:
		st.State = ccv1.ContainerState_CONTAINER_STATE_EXITED
		st.Error = "stopped before it started"
	default:
		st.State = ccv1.ContainerState_CONTAINER_STATE_PREPARING
	}
	return st
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// dropVolumes deletes the volumes the control plane no longer lists and
// no container mounts.
func (w *Worker) dropVolumes(observed map[string]runtime.Observed) {
	w.mu.Lock()
	keep := w.volumes
	w.mu.Unlock()
	if keep == nil {
		return
	}
	inUse := map[string]bool{}
	for _, o := range observed {
		for _, v := range o.Volumes {
			inUse[v] = true
		}
	}
	if err := w.cfg.Runtime.RemoveVolumesExcept(keep, inUse); err != nil {
		w.log.Warn("cannot remove a volume the cluster no longer lists", "err", err)
	}
}
