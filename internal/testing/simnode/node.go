package simnode

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/internal/clusterdial"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// maxBatch bounds the statuses of one report message, far below gRPC's
// default 4 MiB message limit.
const maxBatch = 1000

// node is one simulated agent: its identity, its connection, the fake
// runtime's view of its tasks, and one goroutine (run) that keeps a session.
type node struct {
	fleet  *Fleet
	i      int
	name   string
	id     string
	conn   *clusterdial.Conn
	client ccv1.AgentServiceClient

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{} // closed when run returns

	mu       sync.Mutex
	tasks    map[string]*task // by container id
	received map[TaskKey]time.Time
	epoch    uint64 // marks the tasks a full set names
}

// task is an assignment as the fake runtime runs it.
type task struct {
	gen               uint64
	run               bool // desired running: it runs
	started, finished time.Time
	seen              uint64 // epoch of the last full set that named it

	// What the current session was last told.
	sent    bool
	sentGen uint64
	sentRun bool
}

func newNode(i int, name, id string, conn *clusterdial.Conn) *node {
	return &node{i: i, name: name, id: id, conn: conn, client: ccv1.NewAgentServiceClient(conn),
		done: make(chan struct{}), tasks: map[string]*task{}, received: map[TaskKey]time.Time{}}
}

// start runs the node's loop until stop. Its life is the fleet's, not the
// context of Start's joins.
func (n *node) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.run(ctx)
}

func (n *node) stop() {
	n.stopOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
			<-n.done
		}
		n.conn.Close()
	})
}

// run keeps a session, reconnecting with jittered exponential backoff (from
// 1s to 30s, reset after a session that lasted a minute); the connection
// fails over to another server by itself.
func (n *node) run(ctx context.Context) {
	defer close(n.done)
	backoff := time.Second
	for {
		started := time.Now()
		err := n.session(ctx)
		if ctx.Err() != nil {
			return
		}
		n.fleet.sessionEnded(err)
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		wait := backoff/2 + rand.N(backoff)
		n.fleet.log.Debug("session ended; reconnecting", "node", n.name, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

// sess is one session: its stream and the timers that beat and report on
// it. Timer callbacks run only while the session is open (closed is
// checked under node.mu) and are counted in wg, which the session waits
// for before it returns.
type sess struct {
	n      *node
	ctx    context.Context
	cancel context.CancelFunc
	stream ccv1.AgentService_SessionClient
	wg     sync.WaitGroup

	sendMu sync.Mutex // one Send at a time, and reports in order

	// Under node.mu:
	closed    bool
	connected bool
	hb        *time.Timer
	report    *time.Timer
	armed     bool // report is pending
}

func (n *node) session(ctx context.Context) error {
	cfg := &n.fleet.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := n.client.Session(ctx)
	if err != nil {
		return err
	}
	hello := &ccv1.SessionHello{Version: cfg.Version, Resources: cfg.Resources, Address: cfg.Address}
	if cfg.Labels != nil {
		hello.Labels = cfg.Labels(n.i)
	}
	if err := stream.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Hello{Hello: hello}}); err != nil {
		return err
	}
	n.fleet.sessions.Add(1)
	s := &sess{n: n, ctx: ctx, cancel: cancel, stream: stream}
	n.mu.Lock()
	for _, t := range n.tasks {
		t.sent = false // a new session gets every status
	}
	s.hb = time.AfterFunc(rand.N(cfg.Heartbeat), s.beat)
	n.mu.Unlock()
	defer func() {
		cancel()
		n.mu.Lock()
		s.closed = true
		s.hb.Stop()
		if s.report != nil {
			s.report.Stop()
		}
		if s.connected {
			n.fleet.connected.Add(-1)
		}
		n.mu.Unlock()
		s.wg.Wait()
	}()
	return s.recv()
}

// recv handles the server's messages until the stream fails.
func (s *sess) recv() error {
	n := s.n
	var next uint64
	for {
		msg, err := s.stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *ccv1.SessionResponse_Full:
			now := time.Now()
			n.mu.Lock()
			n.epoch++
			for _, a := range m.Full.Assignments {
				n.assign(a, now)
			}
			for id, t := range n.tasks {
				if t.seen != n.epoch {
					n.forget(id, t)
				}
			}
			if !s.connected {
				s.connected = true
				n.fleet.connected.Add(1)
			}
			n.mu.Unlock()
			next = msg.Seq + 1
			s.changed()
		case *ccv1.SessionResponse_Changes:
			if msg.Seq != next {
				return fmt.Errorf("assignment sequence gap: got %d, want %d; resyncing", msg.Seq, next)
			}
			next++
			now := time.Now()
			n.mu.Lock()
			for _, a := range m.Changes.Updated {
				n.assign(a, now)
			}
			for _, id := range m.Changes.Removed {
				if t := n.tasks[id]; t != nil {
					n.forget(id, t)
				}
			}
			n.mu.Unlock()
			s.changed()
		case *ccv1.SessionResponse_Servers:
			n.conn.Update(rotate(m.Servers.ApiAddresses, n.i))
		case *ccv1.SessionResponse_Logs:
			s.wg.Add(1) // the session is open: its deferred Wait comes after
			go s.answerLogs(m.Logs)
		}
	}
}

// assign records an assignment and runs it at once: desired running is
// running, desired stopped is exited with code 0. n.mu is held.
func (n *node) assign(a *ccv1.Assignment, now time.Time) {
	k := TaskKey{ID: a.ContainerId, Generation: a.Generation}
	if _, ok := n.received[k]; !ok {
		n.received[k] = now
	}
	t := n.tasks[a.ContainerId]
	if t == nil {
		t = &task{}
		n.tasks[a.ContainerId] = t
	} else if t.gen == a.Generation {
		t.seen = n.epoch
		return
	}
	t.seen = n.epoch
	run := a.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING
	switch {
	case run:
		// A new generation is a new container, as on a real agent.
		t.started, t.finished = now, time.Time{}
		if !t.run {
			n.fleet.running.Add(1)
		}
	case t.run:
		t.finished = now
		n.fleet.running.Add(-1)
	case t.finished.IsZero():
		t.finished = now // stopped before it ran
	}
	t.gen, t.run = a.Generation, run
}

// forget drops a removed assignment. n.mu is held.
func (n *node) forget(id string, t *task) {
	if t.run {
		n.fleet.running.Add(-1)
	}
	delete(n.tasks, id)
}

// changed asks for a status report: after ReportDelay, or now.
func (s *sess) changed() {
	n := s.n
	delay := n.fleet.cfg.ReportDelay
	if delay < 0 {
		s.sendReport()
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.closed || s.armed {
		return
	}
	s.armed = true
	if s.report == nil {
		s.report = time.AfterFunc(delay, s.fireReport)
	} else {
		s.report.Reset(delay)
	}
}

func (s *sess) fireReport() {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	s.n.mu.Lock()
	s.armed = false
	s.n.mu.Unlock()
	s.sendReport()
}

// enter counts a timer callback in the session, or says it is closed.
func (s *sess) enter() bool {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// sendReport sends the statuses that changed since the session last heard
// of them, in batches.
func (s *sess) sendReport() {
	n := s.n
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	now := timestamppb.Now()
	var batch []*ccv1.TaskStatus
	n.mu.Lock()
	for id, t := range n.tasks {
		if t.sent && t.sentGen == t.gen && t.sentRun == t.run {
			continue
		}
		st := &ccv1.ContainerStatus{StartedAt: ts(t.started)}
		if t.run {
			st.State = ccv1.ContainerState_CONTAINER_STATE_RUNNING
		} else {
			st.State = ccv1.ContainerState_CONTAINER_STATE_EXITED
			st.FinishedAt = ts(t.finished)
		}
		batch = append(batch, &ccv1.TaskStatus{ContainerId: id, Generation: t.gen, Status: st, ObservedAt: now})
	}
	n.mu.Unlock()
	for len(batch) > 0 {
		part := batch[:min(len(batch), maxBatch)]
		batch = batch[len(part):]
		err := s.stream.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Status{Status: &ccv1.StatusBatch{Statuses: part}}})
		if err != nil {
			s.cancel() // Recv fails too; the next session gets everything
			return
		}
		n.mu.Lock()
		for _, st := range part {
			if t := n.tasks[st.ContainerId]; t != nil {
				t.sent, t.sentGen = true, st.Generation
				t.sentRun = st.Status.State == ccv1.ContainerState_CONTAINER_STATE_RUNNING
			}
		}
		n.mu.Unlock()
	}
}

// beat sends a heartbeat and sets the next one a period ±10% later.
func (s *sess) beat() {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	s.sendMu.Lock()
	err := s.stream.Send(&ccv1.SessionRequest{Msg: &ccv1.SessionRequest_Heartbeat{Heartbeat: &ccv1.Heartbeat{}}})
	s.sendMu.Unlock()
	if err != nil {
		s.cancel()
		return
	}
	p := s.n.fleet.cfg.Heartbeat
	next := p - p/10 + rand.N(p/5+1)
	s.n.mu.Lock()
	if !s.closed {
		s.hb.Reset(next)
	}
	s.n.mu.Unlock()
}

// answerLogs tells the server that asked for logs that there are none.
func (s *sess) answerLogs(req *ccv1.LogRequest) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	st, err := s.n.client.SendLogs(ctx)
	if err != nil {
		return
	}
	_ = st.Send(&ccv1.SendLogsRequest{Msg: &ccv1.SendLogsRequest_Header{Header: &ccv1.LogHeader{
		RequestId: req.RequestId, Error: "a simulated node runs no processes and keeps no logs"}}})
	_, _ = st.CloseAndRecv()
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
