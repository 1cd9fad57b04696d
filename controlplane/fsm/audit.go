package fsm

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The audit trail: a command that carries an audit context (one proposed by
// an API call) gets an audit record, keyed by its raft index, written in
// the same transaction as the command, whether the command was applied or
// refused. Handlers check before they write, so a refused command leaves
// nothing of its own behind, and its record is written all the same.

var (
	// bucketAudit holds ccv1.AuditEvents by big-endian raft index.
	bucketAudit = []byte("audit")
	// keyAuditCount (in meta) counts the records of bucketAudit.
	keyAuditCount = []byte("audit_count")
)

// Audit retention defaults (cluster settings audit.max_age and
// audit.max_events, when unset).
const (
	DefaultAuditMaxAge    = 90 * 24 * time.Hour
	DefaultAuditMaxEvents = 100000
	// auditPruneBatch bounds the records one write drops, so that a
	// lowered retention is caught up over a few writes, not in one long
	// transaction.
	auditPruneBatch = 1000
)

// Audit outcomes.
const (
	AuditOK    = "ok"
	AuditError = "error"
)

func auditKey(index uint64) []byte { return binary.BigEndian.AppendUint64(nil, index) }

// recordAudit writes the audit record of the command being applied (its
// outcome from applyErr) and drops what retention no longer keeps.
func recordAudit(tx *txn, cmd *statev1.Command, applyErr error) error {
	a := cmd.Audit
	ev := &ccv1.AuditEvent{
		Index:    tx.index,
		Time:     cmd.IssuedAt,
		TokenId:  a.TokenId,
		Role:     ccv1.Role(a.Role),
		NodeId:   a.NodeId,
		ServerId: a.ServerId,
		Method:   a.Method,
		Target:   a.Target,
		Source:   a.Source,
		Server:   a.Server,
		Outcome:  AuditOK,
	}
	if applyErr != nil {
		ev.Outcome, ev.Error = AuditError, applyErr.Error()
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	b := appendBucket(tx.Tx, bucketAudit)
	existed := b.Get(auditKey(tx.index)) != nil
	if err := b.Put(auditKey(tx.index), data); err != nil {
		return err
	}
	n := auditCount(tx.Tx)
	if !existed {
		n++
	}
	n, err = pruneAudit(tx.Tx, cmd.IssuedAt.AsTime(), n)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keyAuditCount, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return err
	}
	tx.audited = append(tx.audited, ev)
	return nil
}

func auditCount(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyAuditCount)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// auditRetention is the stored retention, defaults filled in.
func auditRetention(tx *bolt.Tx) (time.Duration, uint64) {
	age, max := DefaultAuditMaxAge, uint64(DefaultAuditMaxEvents)
	st := &ccv1.Settings{}
	if err := get(tx.Bucket(bucketCluster), string(keySettings), st); err == nil && st.Audit != nil {
		if d := st.Audit.GetMaxAge().AsDuration(); st.Audit.MaxAge != nil && d > 0 {
			age = d
		}
		if st.Audit.GetMaxEvents() > 0 {
			max = uint64(st.Audit.GetMaxEvents())
		}
	}
	return age, max
}

// pruneAudit drops the oldest records while there are more than the
// retention keeps or they are older than it, deterministically (the time
// is the command's issue time), and returns the count left.
func pruneAudit(tx *bolt.Tx, at time.Time, n uint64) (uint64, error) {
	maxAge, maxEvents := auditRetention(tx)
	cutoff := at.Add(-maxAge)
	b := tx.Bucket(bucketAudit)
	var drop [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(drop) < auditPruneBatch; k, v = c.Next() {
		if n-uint64(len(drop)) <= maxEvents {
			ev := &ccv1.AuditEvent{}
			if err := proto.Unmarshal(v, ev); err == nil && !ev.GetTime().AsTime().Before(cutoff) {
				break
			}
		}
		drop = append(drop, append([]byte(nil), k...))
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return n, err
		}
	}
	if uint64(len(drop)) > n {
		return 0, nil
	}
	return n - uint64(len(drop)), nil
}

// validAudit refuses negative retention.
func validAudit(a *ccv1.AuditSettings) error {
	if a == nil {
		return nil
	}
	if a.MaxAge != nil && (a.MaxAge.CheckValid() != nil || a.MaxAge.AsDuration() < 0) {
		return fmt.Errorf("%w: audit max_age must be a positive duration", ErrInvalid)
	}
	if a.GetMaxEvents() < 0 {
		return fmt.Errorf("%w: audit max_events must not be negative", ErrInvalid)
	}
	return nil
}

// mergeAudit applies an update of the audit settings: an unset field keeps
// the stored value, 0 puts the default back.
func mergeAudit(old, upd *ccv1.AuditSettings) *ccv1.AuditSettings {
	out := &ccv1.AuditSettings{}
	if old != nil {
		out = proto.Clone(old).(*ccv1.AuditSettings)
	}
	if upd.MaxAge != nil {
		out.MaxAge = nil
		if upd.MaxAge.AsDuration() > 0 {
			out.MaxAge = durationpb.New(upd.MaxAge.AsDuration())
		}
	}
	if upd.MaxEvents != nil {
		out.MaxEvents = nil
		if *upd.MaxEvents > 0 {
			out.MaxEvents = proto.Int64(*upd.MaxEvents)
		}
	}
	if out.MaxAge == nil && out.MaxEvents == nil {
		return nil
	}
	return out
}

// AuditFilter selects audit events. The zero value selects every one.
type AuditFilter struct {
	// Since keeps events at or after it (zero: no bound).
	Since time.Time
	// Principal keeps events of this token, node or server id.
	Principal string
	// Method keeps events of this method: the full name, "Service/Method"
	// or "Method", without regard to case.
	Method string
}

// Match reports whether ev passes the filter.
func (f AuditFilter) Match(ev *ccv1.AuditEvent) bool {
	if !f.Since.IsZero() && ev.GetTime().AsTime().Before(f.Since) {
		return false
	}
	if f.Principal != "" && f.Principal != ev.TokenId && f.Principal != ev.NodeId && f.Principal != ev.ServerId {
		return false
	}
	return f.Method == "" || MethodMatches(ev.Method, f.Method)
}

// MethodMatches reports whether the full gRPC method full ("/cc.v1.JobService/SubmitJob")
// is the one a user named: the full name, "JobService/SubmitJob",
// "cc.v1.JobService/SubmitJob" or "SubmitJob", without regard to case.
func MethodMatches(full, name string) bool {
	full, name = strings.ToLower(full), strings.ToLower(strings.TrimPrefix(name, "/"))
	full = strings.TrimPrefix(full, "/")
	if full == name {
		return true
	}
	svc, method, _ := strings.Cut(full, "/")
	if method == name {
		return true
	}
	short := svc[strings.LastIndex(svc, ".")+1:] + "/" + method
	return short == name
}

// Audit returns up to limit events that pass the filter, newest first,
// from before the raft index before (0: from the newest). next is the
// index to pass as before for the page after, or 0 when there is none.
func (f *FSM) Audit(filter AuditFilter, before uint64, limit int) (events []*ccv1.AuditEvent, next uint64, err error) {
	err = f.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(auditKey(before))
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			ev := &ccv1.AuditEvent{}
			if err := proto.Unmarshal(v, ev); err != nil {
				return fmt.Errorf("audit/%x: %w", k, err)
			}
			if !filter.Since.IsZero() && ev.GetTime().AsTime().Before(filter.Since) {
				return nil // older ones are older still
			}
			if !filter.Match(ev) {
				continue
			}
			if len(events) == limit {
				next = events[len(events)-1].Index
				return nil
			}
			events = append(events, ev)
		}
		return nil
	})
	return events, next, err
}

// AuditAfter returns up to limit events after the raft index after that
// pass the filter, oldest first, and the index to continue from.
func (f *FSM) AuditAfter(filter AuditFilter, after uint64, limit int) (events []*ccv1.AuditEvent, last uint64, err error) {
	last = after
	err = f.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(auditKey(after + 1)); k != nil && len(events) < limit; k, v = c.Next() {
			last = binary.BigEndian.Uint64(k)
			ev := &ccv1.AuditEvent{}
			if err := proto.Unmarshal(v, ev); err != nil {
				return fmt.Errorf("audit/%x: %w", k, err)
			}
			if filter.Match(ev) {
				events = append(events, ev)
			}
		}
		return nil
	})
	return events, last, err
}

// LastAuditIndex is the raft index of the newest audit record (0: none).
func (f *FSM) LastAuditIndex() (uint64, error) {
	var idx uint64
	err := f.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketAudit).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// OnAudit sets a function called, after each applied batch is committed,
// with the audit records the batch wrote (for a local audit file). It is
// called from raft's apply goroutine and must not block long.
func (f *FSM) OnAudit(fn func([]*ccv1.AuditEvent)) {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	f.onAudit = fn
}
