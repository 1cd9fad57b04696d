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
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/containercodes/cc/controlplane/fsm"
)

// ErrNotLeader is returned for a write on a server that is not the leader.
var ErrNotLeader = errors.New("this server is not the raft leader")

// Config is what a raft node needs.
type Config struct {
	ID        string // raft server id, stable for the life of the server
	Dir       string // where the log, stable store and snapshots live
	Bind      string // host:port to listen on for raft
	Advertise string // host:port peers dial; empty = derived from Bind
	// ServerTLS and ClientTLS secure the transport; both are required.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// Bootstrap makes this server the first voter of a new cluster when the
	// directory holds no raft state yet.
	Bootstrap bool
	Logger    *slog.Logger

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
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
	// startIndex is the last log index when the node started: the state
	// is current once raft has applied up to it.
	startIndex uint64
}

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

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
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

	stream, err := newTLSStream(cfg.Bind, cfg.Advertise, cfg.ServerTLS, cfg.ClientTLS)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft listen on %s: %w", cfg.Bind, err)
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
	r, err := raft.NewRaft(rc, f, logs, logs, snaps, transport)
	if err != nil {
		transport.Close()
		logs.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return &Store{raft: r, fsm: f, transport: transport, logs: logs, snaps: snaps, log: cfg.Logger, id: cfg.ID, startIndex: r.LastIndex()}, nil
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
	applied = s.raft.AppliedIndex()
	return applied, s.startIndex, applied >= s.startIndex
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

// Apply proposes a command (from fsm.Encode) and waits until it is applied.
// The error is ErrNotLeader, a raft failure, or the command's own refusal.
func (s *Store) Apply(ctx context.Context, cmd []byte) (fsm.Result, error) {
	if s.raft.State() != raft.Leader {
		// During an election (at start, or after a leader is lost) a write
		// waits for the outcome instead of failing at once.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.WaitLeader(wctx)
		cancel()
		if err != nil || s.raft.State() != raft.Leader {
			return fsm.Result{}, ErrNotLeader
		}
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return fsm.Result{}, context.DeadlineExceeded
		}
	}
	fut := s.raft.Apply(cmd, timeout)
	if err := fut.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return fsm.Result{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fsm.Result{}, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := fut.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("raft apply: unexpected response %T", fut.Response())
	}
	return res, res.Err
}

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
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return st, fmt.Errorf("raft configuration: %w", err)
	}
	for _, srv := range fut.Configuration().Servers {
		st.Servers = append(st.Servers, Server{ID: string(srv.ID), Address: string(srv.Address), Suffrage: srv.Suffrage.String()})
	}
	return st, nil
}

// Snapshot asks raft to take a snapshot now.
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// Close stops raft and closes the transport and the log. The caller closes
// the FSM afterwards.
func (s *Store) Close() error {
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
