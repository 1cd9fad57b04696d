package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// LockTTL is how long an ACME lock holds without being renewed: a leader
// that dies holding one frees it after this long.
const LockTTL = time.Minute

// lockRetry is the wait before trying a held lock again.
const lockRetry = 500 * time.Millisecond

// Storage is the ACME library's storage and locks, kept in the cluster
// state: a write is a raft command, a read is the local state machine
// (the leader's, which has applied every write it made). It implements
// certmagic.Storage and certmagic.LockLeaseRenewer.
//
// Locks: a lock is held by one Lock call, named Holder/n. The manager runs
// on the leader only, with a new Holder each term, so a lock whose holder
// is not of this Holder was left by a deposed leader (or an earlier term)
// that can no longer write: Lock takes it over at once rather than wait for
// it to expire. That is how a failover neither loses an order's lock nor
// waits out its lease.
type Storage struct {
	FSM     *fsm.FSM
	Propose func(ctx context.Context, t statev1.CommandType, payload proto.Message) (uint64, error)
	// Holder names this server and term in locks.
	Holder string
	Now    func() time.Time

	mu   sync.Mutex
	n    int
	held map[string]string // lock name → the holder that has it
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

func (s *Storage) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Lock implements certmagic.Locker: it waits while another server holds
// the lock unexpired.
func (s *Storage) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	s.n++
	me := fmt.Sprintf("%s/%d", s.Holder, s.n)
	s.mu.Unlock()
	for {
		_, err := s.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ACME_LOCK, &statev1.ACMELock{
			Name: name, Holder: me, ExpiresAt: timestamppb.New(s.now().Add(LockTTL))})
		if err == nil {
			s.mu.Lock()
			if s.held == nil {
				s.held = map[string]string{}
			}
			s.held[name] = me
			s.mu.Unlock()
			return nil
		}
		if !errors.Is(err, fsm.ErrConflict) {
			return err
		}
		if old, _, herr := s.FSM.ACMELockHolder(name); herr == nil && old != "" && !strings.HasPrefix(old, s.Holder+"/") {
			// Left by a deposed leader or an earlier term: take it over.
			if _, err := s.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ACME_UNLOCK, &statev1.ACMEUnlock{Name: name, Holder: old}); err == nil {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ACME lock %s: %w", name, ctx.Err())
		case <-time.After(lockRetry):
		}
	}
}

// RenewLockLease implements certmagic.LockLeaseRenewer.
func (s *Storage) RenewLockLease(ctx context.Context, name string, d time.Duration) error {
	s.mu.Lock()
	me := s.held[name]
	s.mu.Unlock()
	if me == "" {
		return fmt.Errorf("ACME lock %s: not held here", name)
	}
	_, err := s.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ACME_LOCK, &statev1.ACMELock{
		Name: name, Holder: me, ExpiresAt: timestamppb.New(s.now().Add(max(d, LockTTL)))})
	return err
}

// Unlock implements certmagic.Locker.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	me := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if me == "" {
		return nil
	}
	_, err := s.Propose(context.WithoutCancel(ctx), statev1.CommandType_COMMAND_TYPE_ACME_UNLOCK, &statev1.ACMEUnlock{Name: name, Holder: me})
	return err
}

// Store implements certmagic.Storage.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	_, err := s.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ACME_STORE, &statev1.ACMEStore{Key: key, Value: value})
	return err
}

// Load implements certmagic.Storage.
func (s *Storage) Load(_ context.Context, key string) ([]byte, error) {
	rec, err := s.FSM.ACMELoad(key)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	return rec.Value, nil
}

// Delete implements certmagic.Storage.
func (s *Storage) Delete(ctx context.Context, key string) error {
	_, err := s.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ACME_DELETE, &statev1.ACMEDelete{Key: key})
	if errors.Is(err, fsm.ErrNotFound) {
		return fs.ErrNotExist
	}
	return err
}

// Exists implements certmagic.Storage.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (s *Storage) List(_ context.Context, prefix string, recursive bool) ([]string, error) {
	keys, err := s.FSM.ACMEList(prefix, recursive)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	return keys, nil
}

// Stat implements certmagic.Storage: a key with a value is terminal, a
// prefix of other keys is a directory.
func (s *Storage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	rec, err := s.FSM.ACMELoad(key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: rec.GetModifiedAt().AsTime(), Size: int64(len(rec.Value)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fsm.ErrNotFound) {
		return certmagic.KeyInfo{}, err
	}
	if keys, err := s.FSM.ACMEList(key, false); err == nil && len(keys) > 0 {
		return certmagic.KeyInfo{Key: key}, nil
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
