package fsm

import (
	"crypto/subtle"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// useToken checks a join token at issue time and counts one use of it.
func useToken(tx *bolt.Tx, at time.Time, id string, secretHash []byte, role ccv1.Role) error {
	tokens := tx.Bucket(bucketTokens)
	var tok statev1.TokenRecord
	found := &tok
	if err := get(tokens, id, &tok); err != nil {
		found = nil
	}
	if err := CheckJoinToken(found, secretHash, role, at); err != nil {
		return err
	}
	tok.Uses++
	return put(tokens, tok.Id, &tok)
}

// CheckJoinToken says whether a join token may be used at a time: tok is
// its stored record (nil when there is none), secretHash the hash of the
// secret presented, compared in constant time. The state machine checks it
// when it applies a join; the API checks it against its local state before
// it signs or proposes anything. The error wraps ErrTokenInvalid.
func CheckJoinToken(tok *statev1.TokenRecord, secretHash []byte, role ccv1.Role, at time.Time) error {
	if tok == nil || subtle.ConstantTimeCompare(tok.SecretSha256, secretHash) != 1 {
		return fmt.Errorf("%w: unknown token", ErrTokenInvalid)
	}
	switch {
	case ccv1.Role(tok.Role) != role:
		return fmt.Errorf("%w: not a %s join token (create one with `ccctl token create --role %s`)", ErrTokenInvalid, roleWord(role), roleWord(role))
	case tok.Revoked:
		return fmt.Errorf("%w: the token was revoked", ErrTokenInvalid)
	case tok.ExpiresAt != nil && !at.Before(tok.ExpiresAt.AsTime()):
		return fmt.Errorf("%w: the token expired at %s", ErrTokenInvalid, tok.ExpiresAt.AsTime().UTC().Format(time.RFC3339))
	case tok.MaxUses > 0 && tok.Uses >= tok.MaxUses:
		return fmt.Errorf("%w: the token was already used %d times, its limit", ErrTokenInvalid, tok.Uses)
	}
	return nil
}

func roleWord(r ccv1.Role) string {
	if r == ccv1.Role_ROLE_SERVER {
		return "server"
	}
	return "agent"
}

// applyPutServer records a server. With a token it is a join: the token is
// checked and used, and an id that was removed may not come back. A record
// with no pin of the server's key keeps the stored one.
func applyPutServer(tx *txn, at time.Time, msg proto.Message) error {
	m := msg.(*statev1.PutServer)
	srv := m.GetServer()
	if srv == nil || srv.Id == "" || srv.RaftAddress == "" {
		return fmt.Errorf("%w: a server needs an id and a raft address", ErrInvalid)
	}
	b := tx.Bucket(bucketServers)
	var old statev1.ServerRecord
	exists := get(b, srv.Id, &old) == nil
	if exists && old.Removed {
		return fmt.Errorf("server %s was removed from the cluster and may not rejoin with that identity: wipe its data dir and join again: %w", srv.Id, ErrExists)
	}
	if m.TokenId != "" {
		if exists {
			return fmt.Errorf("server %s %w", srv.Id, ErrExists)
		}
		if err := useToken(tx.Tx, at, m.TokenId, m.SecretSha256, ccv1.Role_ROLE_SERVER); err != nil {
			return err
		}
	}
	rec := proto.Clone(srv).(*statev1.ServerRecord)
	rec.Removed = false
	if exists {
		rec.CreatedAt = old.CreatedAt
		// A record written without a pin (by a server of an older
		// version) keeps the one it had.
		if len(rec.PublicKeySha256) == 0 {
			rec.PublicKeySha256 = old.PublicKeySha256
		}
	} else {
		rec.CreatedAt = ts(at)
	}
	tx.touched.all() // sessions send the new server list
	return put(b, rec.Id, rec)
}

func applyRemoveServer(tx *txn, _ time.Time, msg proto.Message) error {
	id := msg.(*statev1.RemoveServer).GetId()
	b := tx.Bucket(bucketServers)
	var rec statev1.ServerRecord
	if err := get(b, id, &rec); err != nil {
		return fmt.Errorf("server %s: %w", id, err)
	}
	rec.Removed = true
	tx.touched.all()
	return put(b, id, &rec)
}

// Servers returns every server record, in id order.
func (f *FSM) Servers() ([]*statev1.ServerRecord, error) {
	return list(f, bucketServers, func() *statev1.ServerRecord { return &statev1.ServerRecord{} })
}

// Server returns one server record.
func (f *FSM) Server(id string) (*statev1.ServerRecord, error) {
	return one(f, bucketServers, "server", id, &statev1.ServerRecord{})
}
