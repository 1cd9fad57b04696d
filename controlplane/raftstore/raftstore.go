// Package raftstore runs the control plane's raft node: hashicorp/raft with
// raft-boltdb as log and stable store, a file snapshot store, a mutual-TLS
// transport, and the state machine of package fsm. It proposes commands and
// reports the node's raft status.
package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	"github.com/containercodes/cc/internal/tracing"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// ErrNotLeader is returned for a write on a server that is not the leader.
var ErrNotLeader = errors.New("this server is not the raft leader")

// Config is what a raft node needs.
type Config struct {
	ID   string // raft server id, stable for the life of the server
	Dir  string // where the log, stable store and snapshots live
	Bind string // host:port to listen on for raft, unless Listener is set
	// Listener, when set, is the raft listener (bound by the caller, who
	// needed its address first).
	Listener  net.Listener
	Advertise string // host:port peers dial; empty = derived from Bind
	// ServerTLS and ClientTLS secure the transport; both are required.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// Bootstrap makes this server the first voter of a new cluster when the
	// directory holds no raft state yet.
	Bootstrap bool
	Logger    *slog.Logger
	// Faults injects partitions into the transport; tests only, nil in
	// production.
	Faults *Faults
	// Tracing starts the spans of proposals (raft.propose, raft.apply on
	// the leader, raft.forward on a follower); nil: none.
	Tracing trace.TracerProvider

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64

	// Metrics times this server's proposals; nil: none.
	Metrics *metrics.Metrics
}

// Store is a running raft node.
type Store struct {
	raft      *raft.Raft
	fsm       *fsm.FSM
	transport *raft.NetworkTransport
	logs      *raftboltdb.BoltStore
	snaps     *raft.FileSnapshotStore
	log       *slog.Logger
	id        string
	tracer    trace.Tracer
	// startIndex is the last log index when the node started: the state
	// is current once raft has applied up to it.
	startIndex uint64
	// readyTerm is the last term in which this leader committed an entry
	// of its own (see ReadIndex).
	readyTerm atomic.Uint64

	// peer reaches the leader for forwarded writes and read indexes; nil
	// on a server that cannot forward (tests of a lone server).
	peer Peer

	// members checks raft peers; membersDone stops its sweeps, which
	// close membersExited when they have.
	members       *members
	membersDone   chan struct{}
	membersExited chan struct{}
	closeOnce     sync.Once

	metrics *metrics.Metrics
	// leaderChanges counts the leaders raft reported (observer, ended by
	// membersDone; observerExited is closed when it has).
	leaderChanges atomic.Uint64
	// leaderGone counts the elections this follower started because the
	// leader's raft port refused connections (watchLeader).
	leaderGone     atomic.Uint64
	watchExited    chan struct{}
	observer       *raft.Observer
	observerExited chan struct{}
}

// memberSweepInterval is the most often the connections of peers that
// stopped being members are looked for (and the least often, without a
// change of the state).
const memberSweepInterval = time.Second

// Peer is how a follower reaches the leader.
type Peer interface {
	// Apply applies an encoded command on the leader with the given raft
	// id, returning the index and the command's refusal.
	Apply(ctx context.Context, leaderID string, cmd []byte) (uint64, error)
	// ReadIndex asks the leader for an index confirmed by a quorum.
	ReadIndex(ctx context.Context, leaderID string) (uint64, error)
}

// SetPeer makes a follower forward writes and read barriers to the leader.
func (s *Store) SetPeer(p Peer) { s.peer = p }

// HasState reports whether dir already holds raft state.
func HasState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "raft.db"))
	return err == nil
}

// Open starts the raft node over the state machine f.
func Open(cfg Config, f *fsm.FSM) (*Store, error) {
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return nil, errors.New("raftstore: transport TLS configuration is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	hl := newHCLog(cfg.Logger)
	existing := HasState(cfg.Dir)

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"), BoltOptions: BoltOptions()})
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, hl)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if err := catchUpFromSnapshot(snaps, f, cfg.Logger); err != nil {
		logs.Close()
		return nil, err
	}

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Bind); err != nil {
			logs.Close()
			return nil, fmt.Errorf("raft listen on %s: %w", cfg.Bind, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &members{fsm: f, log: log}
	stream, err := newTLSStream(ln, cfg.Advertise, cfg.ServerTLS, cfg.ClientTLS, m, cfg.Faults)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft advertise address: %w", err)
	}
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.NoSnapshotRestoreOnStart = true
	// Group commit: proposals queue on a buffered channel while the leader
	// writes the previous batch, and go out together, up to
	// MaxAppendEntries per log write and per AppendEntries message.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = maxAppendEntries
	setIf(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setIf(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setIf(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setIf(&rc.CommitTimeout, cfg.CommitTimeout)
	setIf(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}

	if cfg.Bootstrap && !existing {
		conf := raft.Configuration{Servers: []raft.Server{{
			ID:       rc.LocalID,
			Address:  transport.LocalAddr(),
			Suffrage: raft.Voter,
		}}}
		if err := raft.BootstrapCluster(rc, logs, logs, snaps, transport, conf); err != nil {
			transport.Close()
			logs.Close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	// The newest entries stay in memory as well: replication to followers
	// and the state machine read them back from there, not from bbolt.
	cached, err := raft.NewLogCache(logCacheSize, logs)
	if err != nil {
		transport.Close()
		logs.Close()
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, f, cached, logs, snaps, transport)
	if err != nil {
		transport.Close()
		logs.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	m.raft.Store(r)
	s := &Store{raft: r, fsm: f, transport: transport, logs: logs, snaps: snaps, log: cfg.Logger, id: cfg.ID, startIndex: r.LastIndex(),
		tracer:  tracing.Tracer(cfg.Tracing, "github.com/containercodes/cc/controlplane/raftstore"),
		members: m, membersDone: make(chan struct{}), membersExited: make(chan struct{}), metrics: cfg.Metrics, observerExited: make(chan struct{}), watchExited: make(chan struct{})}
	go func() {
		defer close(s.membersExited)
		m.watch(s.membersDone, memberSweepInterval)
	}()
	go func() {
		defer close(s.watchExited)
		s.watchLeader(s.membersDone, rc.HeartbeatTimeout)
	}()
	obs := make(chan raft.Observation, 16)
	s.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		lo, ok := o.Data.(raft.LeaderObservation)
		return ok && lo.LeaderID != ""
	})
	r.RegisterObserver(s.observer)
	go func() {
		defer close(s.observerExited)
		for {
			select {
			case <-s.membersDone:
				return
			case <-obs:
				s.leaderChanges.Add(1)
			}
		}
	}()
	return s, nil
}

// maxAppendEntries bounds the entries of one log write and of one
// AppendEntries message (raft's default is 64). Under load each entry waits
// for the batch before it; larger batches carry more writes per fsync.
const maxAppendEntries = 512

// logCacheSize is how many of the newest log entries are kept in memory:
// enough for the entries in flight to followers under a steady load of small
// writes, and few enough that large entries (the leader loops' ops of up to
// 2,000 tasks, about a megabyte each) cost tens of megabytes at most.
const logCacheSize = 64

// BoltOptions are the bbolt settings of the raft log and of the state
// database. The freelist is not written at each commit (it is rebuilt from
// the pages when the file is opened), which saves a page write per
// transaction without touching durability: every commit still syncs its
// data and its meta page.
func BoltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:        5 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	}
}

func setIf(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// CatchUp restores the state machine from the newest snapshot in dir when
// its database is behind it (lost or replaced). The state machine keeps its
// own database across restarts, so raft does not restore the latest snapshot
// at start (NoSnapshotRestoreOnStart) and the FSM skips replayed entries it
// already holds; Open calls this too, and a caller that reads the state
// before Open (the server, for its identity) calls it first.
func CatchUp(dir string, f *fsm.FSM, log *slog.Logger) error {
	if !HasState(dir) {
		return nil
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 3, newHCLog(log))
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	return catchUpFromSnapshot(snaps, f, log)
}

func catchUpFromSnapshot(snaps *raft.FileSnapshotStore, f *fsm.FSM, log *slog.Logger) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 || list[0].Index <= f.AppliedIndex() {
		return nil
	}
	log.Warn("state database is behind the latest snapshot; restoring it", "applied_index", f.AppliedIndex(), "snapshot_index", list[0].Index)
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", list[0].ID, err)
	}
	return f.Restore(rc)
}

// ID is this server's raft id.
func (s *Store) ID() string { return s.id }

// Addr is the advertised raft address.
func (s *Store) Addr() string { return string(s.transport.LocalAddr()) }

// IsLeader reports whether this server is the leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderCh delivers true when this server gains leadership and false when it
// loses it.
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// CaughtUp reports whether the state machine has applied every entry the
// log held when the node started, and how far it is.
func (s *Store) CaughtUp() (applied, target uint64, ok bool) {
	return s.fsm.AppliedIndex(), s.startIndex, s.applied(s.startIndex)
}

// WaitLeader blocks until the cluster has a leader or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no raft leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Apply proposes a command (from fsm.Encode) and waits until it is applied
// here. On a follower the command is forwarded to the leader, and Apply
// returns once this server has applied it too, so a read that follows sees
// the write. During an election it waits for the outcome. The error is
// ErrNotLeader (no leader in time), a raft failure, or the command's own
// refusal.
func (s *Store) Apply(ctx context.Context, cmd []byte) (fsm.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		leaderID, err := s.awaitLeader(ctx)
		if err != nil {
			return fsm.Result{}, err
		}
		var res fsm.Result
		if leaderID == s.id {
			res, err = s.traced(ctx, "raft.apply", func(ctx context.Context) (fsm.Result, error) { return s.applyLocal(ctx, cmd) })
		} else {
			res, err = s.traced(ctx, "raft.forward", func(ctx context.Context) (fsm.Result, error) { return s.forward(ctx, leaderID, cmd) },
				attribute.String("cc.raft.leader_id", leaderID))
		}
		// Only a refusal before the entry was appended is safe to retry:
		// the command was not applied anywhere.
		if errors.Is(err, ErrNotAppended) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return res, err
	}
}

// Propose encodes a command issued at `at` and applies it as Apply does
// (forwarded to the leader from a follower). It is the one way the API,
// the sessions and the server write a single command.
func (s *Store) Propose(ctx context.Context, t statev1.CommandType, payload proto.Message, at time.Time) (fsm.Result, error) {
	return s.ProposeAudited(ctx, t, payload, at, nil)
}

// ProposeAudited is Propose for a command an API call proposes: audit says
// who made the call, and the state machine writes the audit record in the
// same transaction as the command.
//
// A proposal made within a trace (ctx has a span: an API call's) is a
// span (raft.propose), and the command carries its context, so that the
// state machine's apply spans on every server continue the trace. The
// control plane's own writes (status reports, heartbeats) start none.
func (s *Store) ProposeAudited(ctx context.Context, t statev1.CommandType, payload proto.Message, at time.Time, audit *statev1.AuditContext) (fsm.Result, error) {
	ctx, span := s.startSpan(ctx, "raft.propose", attribute.String("cc.command.type", fsm.CommandName(t)))
	defer span.End()
	data, err := fsm.EncodeTraced(t, payload, at, audit, tracing.Inject(ctx))
	if err != nil {
		return fsm.Result{}, err
	}
	res, err := s.Apply(ctx, data)
	endSpan(span, res, err)
	return res, err
}

// startSpan starts a span under ctx's, or none when ctx is in no trace.
func (s *Store) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return s.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// traced runs an apply or a forward as a span, within a trace.
func (s *Store) traced(ctx context.Context, name string, fn func(context.Context) (fsm.Result, error), attrs ...attribute.KeyValue) (fsm.Result, error) {
	ctx, span := s.startSpan(ctx, name, attrs...)
	defer span.End()
	res, err := fn(ctx)
	endSpan(span, res, err)
	return res, err
}

// endSpan notes a proposal's index and outcome on its span.
func endSpan(span trace.Span, res fsm.Result, err error) {
	if !span.IsRecording() {
		return
	}
	if res.Index > 0 {
		span.SetAttributes(attribute.Int64("cc.raft.index", int64(res.Index)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
}

// ProposeLocalAll encodes commands issued at `at` and applies them in order
// through ApplyLocalAll (leader only, pipelined): the leader loops' way to
// write their decisions, which a deposed leader must not forward.
func (s *Store) ProposeLocalAll(ctx context.Context, t statev1.CommandType, payloads []proto.Message, at time.Time) error {
	cmds := make([][]byte, 0, len(payloads))
	for _, p := range payloads {
		data, err := fsm.Encode(t, p, at)
		if err != nil {
			return err
		}
		cmds = append(cmds, data)
	}
	return s.ApplyLocalAll(ctx, cmds)
}

// ErrNotAppended marks a write the leader refused before appending it: it is
// safe to retry.
var ErrNotAppended = fmt.Errorf("%w (nothing was written)", ErrNotLeader)

func (s *Store) awaitLeader(ctx context.Context) (string, error) {
	if s.raft.State() == raft.Leader {
		return s.id, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.WaitLeader(wctx); err != nil {
		return "", ErrNotLeader
	}
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return "", ErrNotLeader
	}
	return string(id), nil
}

// ApplyLocal applies a command on this server, which must be the leader
// (a forwarded write): no forwarding again.
func (s *Store) ApplyLocal(ctx context.Context, cmd []byte) (fsm.Result, error) {
	if s.raft.State() != raft.Leader {
		return fsm.Result{}, ErrNotAppended
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return s.traced(ctx, "raft.apply", func(ctx context.Context) (fsm.Result, error) { return s.applyLocal(ctx, cmd) })
}

// ApplyLocalAll applies commands in order on this server, which must be the
// leader, without waiting for one before proposing the next: raft writes
// and replicates them in batches and the state machine applies them in few
// transactions. It returns the first error; commands after a failed one
// may or may not have been applied.
func (s *Store) ApplyLocalAll(ctx context.Context, cmds [][]byte) error {
	if s.raft.State() != raft.Leader {
		return ErrNotAppended
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	d, _ := ctx.Deadline()
	futs := make([]raft.ApplyFuture, 0, len(cmds))
	starts := make([]time.Time, 0, len(cmds))
	for _, cmd := range cmds {
		timeout := time.Until(d)
		if timeout <= 0 {
			break
		}
		starts = append(starts, time.Now())
		futs = append(futs, s.raft.Apply(cmd, timeout))
	}
	var first error
	for i, fut := range futs {
		if fut.Error() == nil {
			s.metrics.RaftApplied(time.Since(starts[i]))
		}
		if _, err := result(fut); err != nil && first == nil {
			first = err
		}
	}
	if first == nil && len(futs) < len(cmds) {
		first = context.DeadlineExceeded
	}
	return first
}

func (s *Store) applyLocal(ctx context.Context, cmd []byte) (fsm.Result, error) {
	d, _ := ctx.Deadline()
	timeout := time.Until(d)
	if timeout <= 0 {
		return fsm.Result{}, context.DeadlineExceeded
	}
	start := time.Now()
	fut := s.raft.Apply(cmd, timeout)
	if fut.Error() == nil {
		s.metrics.RaftApplied(time.Since(start))
	}
	return result(fut)
}

// result waits for an apply and maps its errors.
func result(fut raft.ApplyFuture) (fsm.Result, error) {
	if err := fut.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return fsm.Result{}, ErrNotAppended
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return fsm.Result{}, fmt.Errorf("%w: %v (the write may or may not have been applied)", ErrNotLeader, err)
		}
		return fsm.Result{}, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := fut.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("raft apply: unexpected response %T", fut.Response())
	}
	return res, res.Err
}

func (s *Store) forward(ctx context.Context, leaderID string, cmd []byte) (fsm.Result, error) {
	if s.peer == nil {
		return fsm.Result{}, ErrNotLeader
	}
	idx, err := s.peer.Apply(ctx, leaderID, cmd)
	if idx == 0 {
		return fsm.Result{}, err
	}
	if werr := s.waitApplied(ctx, idx); werr != nil {
		return fsm.Result{Index: idx}, werr
	}
	return fsm.Result{Index: idx, Err: err}, err
}

// waitApplied waits until this server has applied index.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	for !s.applied(index) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to apply index %d locally: %w", index, ctx.Err())
		case <-s.fsm.Watch():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// applied reports whether the state machine holds every entry up to index.
// raft's AppliedIndex counts entries handed to the FSM goroutine, not
// entries it has applied, and the FSM never sees no-op and barrier entries:
// so once raft has handed over index, wait for the FSM to apply the last
// entry at or below index that it will see.
func (s *Store) applied(index uint64) bool {
	fsmIndex := s.fsm.AppliedIndex()
	if fsmIndex >= index {
		return true
	}
	if s.raft.AppliedIndex() < index {
		return false
	}
	for i := index; i > fsmIndex; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			// Compacted into a snapshot: raft will never hand this entry
			// to the FSM again, so there is nothing to wait for.
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// ReadIndex is the leader's side of a read barrier: it confirms it is still
// the leader with a quorum and returns its commit index.
func (s *Store) ReadIndex() (uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	// A new leader's commit index can be behind entries its predecessor
	// committed until it commits an entry of its own term (Raft thesis
	// 6.4): a barrier, once per term, does.
	term := s.raft.CurrentTerm()
	if s.readyTerm.Load() != term {
		if err := s.raft.Barrier(5 * time.Second).Error(); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		s.readyTerm.Store(term)
	}
	idx := s.raft.CommitIndex()
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if s.raft.CurrentTerm() != term {
		return 0, ErrNotLeader
	}
	return idx, nil
}

// Barrier makes the next read linearizable: once it returns, this server's
// state holds every write acknowledged before it was called.
func (s *Store) Barrier(ctx context.Context) error {
	leaderID, err := s.awaitLeader(ctx)
	if err != nil {
		return err
	}
	var idx uint64
	if leaderID == s.id {
		idx, err = s.ReadIndex()
	} else if s.peer != nil {
		idx, err = s.peer.ReadIndex(ctx, leaderID)
	} else {
		return ErrNotLeader
	}
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, idx)
}

// AddVoter adds a server to the raft configuration (on the leader).
func (s *Store) AddVoter(id, addr string, timeout time.Duration) error {
	return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout).Error()
}

// RemoveServer removes a server from the raft configuration (on the leader).
func (s *Store) RemoveServer(id string, timeout time.Duration) error {
	return s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error()
}

// TransferLeadership hands leadership to id, or to any voter when id is "".
func (s *Store) TransferLeadership(id, addr string) error {
	if id == "" {
		return s.raft.LeadershipTransfer().Error()
	}
	return s.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error()
}

// LeaderGone is how many elections this server started because the
// leader's raft port refused connections (see watchLeader).
func (s *Store) LeaderGone() uint64 { return s.leaderGone.Load() }

// LastContact is when this follower last heard from the leader.
func (s *Store) LastContact() time.Time { return s.raft.LastContact() }

// Status is a summary of the node's raft state.
type Status struct {
	ID            string
	State         string
	Term          uint64
	LastIndex     uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	LeaderID      string
	LeaderAddress string
	Servers       []Server
}

// Server is one member of the raft configuration.
type Server struct {
	ID       string
	Address  string
	Suffrage string
}

// Status reads the node's current raft state.
func (s *Store) Status() (Status, error) {
	addr, id := s.raft.LeaderWithID()
	st := Status{
		ID:            s.id,
		State:         s.raft.State().String(),
		Term:          s.raft.CurrentTerm(),
		LastIndex:     s.raft.LastIndex(),
		CommitIndex:   s.raft.CommitIndex(),
		AppliedIndex:  s.raft.AppliedIndex(),
		LeaderID:      string(id),
		LeaderAddress: string(addr),
	}
	// After a restart raft counts from its snapshot until it commits again,
	// but the state database keeps what it applied: report that.
	if f := s.fsm.AppliedIndex(); f > st.AppliedIndex {
		st.AppliedIndex = f
	}
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return st, fmt.Errorf("raft configuration: %w", err)
	}
	for _, srv := range fut.Configuration().Servers {
		st.Servers = append(st.Servers, Server{ID: string(srv.ID), Address: string(srv.Address), Suffrage: srv.Suffrage.String()})
	}
	return st, nil
}

// Stats reads the node's state for the metrics: raft's figures, the
// newest snapshot on disk, and the last contact with each peer (on the
// leader, the last bytes each follower sent; on a follower, the leader's
// last message). name gives a server's name for its id.
func (s *Store) Stats(name func(id string) string) metrics.RaftStats {
	_, leaderID := s.raft.LeaderWithID()
	st := metrics.RaftStats{
		State:         s.raft.State().String(),
		Term:          s.raft.CurrentTerm(),
		HasLeader:     leaderID != "",
		LeaderChanges: s.leaderChanges.Load(),
		LastIndex:     s.raft.LastIndex(),
		CommitIndex:   s.raft.CommitIndex(),
		AppliedIndex:  max(s.raft.AppliedIndex(), s.fsm.AppliedIndex()),
	}
	if first, err := s.logs.FirstIndex(); err == nil {
		st.FirstIndex = first
	}
	if list, err := s.snaps.List(); err == nil && len(list) > 0 {
		st.HasSnapshot, st.SnapshotIndex, st.SnapshotBytes = true, list[0].Index, list[0].Size
	}
	now := time.Now()
	peer := func(id string, at time.Time) {
		if !at.IsZero() {
			st.Peers = append(st.Peers, metrics.PeerContact{ID: id, Name: name(id), Since: now.Sub(at)})
		}
	}
	conf := s.raft.GetConfiguration().Configuration() // a cached copy, no round trip
	contacts := s.members.contacts()
	isLeader := s.raft.State() == raft.Leader
	for _, srv := range conf.Servers {
		if srv.Suffrage == raft.Voter {
			st.Voters++
		}
		id := string(srv.ID)
		switch {
		case id == s.id:
		case isLeader:
			peer(id, contacts[id])
		case id == string(leaderID):
			peer(id, s.raft.LastContact())
		}
	}
	return st
}

// Snapshot asks raft to take a snapshot now.
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// Close stops raft and closes the transport and the log. The caller closes
// the FSM afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.raft.DeregisterObserver(s.observer)
		close(s.membersDone)
		<-s.membersExited
		<-s.observerExited
		<-s.watchExited
	})
	err := s.raft.Shutdown().Error()
	if cerr := s.transport.Close(); err == nil {
		err = cerr
	}
	if cerr := s.logs.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ io.Closer = (*Store)(nil)

// Recover rewrites the raft configuration of a stopped server's data dir to
// exactly servers (id → raft address), for a cluster that lost its quorum:
// run it on every surviving server with the same list, then start them. It
// replays the log into the state machine and takes a snapshot, as
// hashicorp/raft's RecoverCluster does.
func Recover(dir, localID string, servers map[string]string, f *fsm.FSM, log *slog.Logger) error {
	if !HasState(dir) {
		return fmt.Errorf("%s holds no raft state to recover", dir)
	}
	hl := newHCLog(log)
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log (is the server still running?): %w", err)
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 3, hl)
	if err != nil {
		return err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(localID)
	rc.Logger = hl
	var conf raft.Configuration
	for id, addr := range servers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(servers[localID]))
	return raft.RecoverCluster(rc, f, logs, logs, snaps, trans, conf)
}
