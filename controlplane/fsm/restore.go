package fsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// Backups: a backup is a bbolt copy of the state database, the same bytes a
// raft snapshot holds. WriteSnapshot (or BeginSnapshot) writes one from a
// read transaction, so it is consistent without stopping writes;
// PrepareRestore turns one into the state database of a new cluster.

// membershipBuckets hold records of the old cluster's membership, which a
// restored cluster (new servers, new raft log) must not inherit.
var membershipBuckets = [][]byte{[]byte("servers")}

// SnapshotTx is a consistent view of the state, open until Close.
type SnapshotTx struct {
	tx    *bolt.Tx
	index uint64
}

// BeginSnapshot opens a read transaction for a backup. The caller must Close
// it: while it is open, bbolt cannot reuse the pages it sees.
func (f *FSM) BeginSnapshot() (*SnapshotTx, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errors.New("snapshot: state database is closed")
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return &SnapshotTx{tx: tx, index: readIndex(tx)}, nil
}

// Index is the raft index of the last entry applied in this view.
func (s *SnapshotTx) Index() uint64 { return s.index }

// Size is the size in bytes WriteTo writes.
func (s *SnapshotTx) Size() int64 { return s.tx.Size() }

// WriteTo writes the database as of the view: a complete bbolt file.
func (s *SnapshotTx) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Close ends the read transaction.
func (s *SnapshotTx) Close() error { return s.tx.Rollback() }

// WriteSnapshot writes a consistent copy of the state database to w and
// returns the applied index of the copy.
func (f *FSM) WriteSnapshot(w io.Writer) (index uint64, err error) {
	s, err := f.BeginSnapshot()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if _, err := s.WriteTo(w); err != nil {
		return s.Index(), fmt.Errorf("write snapshot: %w", err)
	}
	return s.Index(), nil
}

// SnapshotInfo describes a backup file.
type SnapshotInfo struct {
	Index      uint64 // raft index of the cluster the backup was taken at
	Schema     uint32 // schema version of the state database (0: before versions were kept)
	ClusterID  string
	Tokens     int
	Nodes      int
	Containers int
	Images     int
}

// InspectSnapshot checks that path is a backup of this state machine (a
// bbolt database with a meta bucket and a cluster record) and describes it.
// It does not change the file.
func InspectSnapshot(path string) (SnapshotInfo, error) {
	var info SnapshotInfo
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return info, fmt.Errorf("%s is not a state snapshot: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var err error
		info, err = inspect(tx)
		return err
	})
	if err != nil {
		return info, fmt.Errorf("%s is not a usable state snapshot: %w", path, err)
	}
	return info, nil
}

func inspect(tx *bolt.Tx) (SnapshotInfo, error) {
	var info SnapshotInfo
	if tx.Bucket(bucketMeta) == nil {
		return info, errors.New("no meta bucket")
	}
	if err := checkSchema(tx, ""); err != nil {
		return info, err
	}
	info.Schema = readSchema(tx)
	cb := tx.Bucket(bucketCluster)
	if cb == nil {
		return info, errors.New("no cluster bucket")
	}
	var cl statev1.ClusterRecord
	data := cb.Get(keyCluster)
	if data == nil {
		return info, errors.New("no cluster record (taken before the cluster was bootstrapped?)")
	}
	if err := proto.Unmarshal(data, &cl); err != nil {
		return info, fmt.Errorf("cluster record: %w", err)
	}
	if cl.ClusterId == "" || len(cl.CaCertPem) == 0 || len(cl.CaKeyPem) == 0 {
		return info, errors.New("cluster record lacks its id or CA")
	}
	if tx.Bucket(bucketTokens) == nil {
		return info, errors.New("no tokens bucket")
	}
	info.Index = readIndex(tx)
	info.ClusterID = cl.ClusterId
	count := func(name []byte) int {
		if b := tx.Bucket(name); b != nil {
			return b.Stats().KeyN
		}
		return 0
	}
	info.Tokens = count(bucketTokens)
	info.Nodes = count(bucketNodes)
	info.Containers = count(bucketContainers)
	info.Images = count(bucketImages)
	return info, nil
}

// PrepareRestore makes dstStatePath, which must not exist, the state
// database of a new cluster from the backup src: a checked copy whose
// applied index is 0 (the new raft log starts at 1, and no entry of it may
// be skipped) and which holds no records of the old cluster's servers.
// Everything else, the cluster id and CA, tokens, nodes, containers and
// images, is kept.
func PrepareRestore(src, dstStatePath string) error {
	_, err := prepareRestore(src, dstStatePath)
	return err
}

// PrepareRestoreInfo is PrepareRestore that also describes the backup; its
// Index is the backup's, before the reset.
func PrepareRestoreInfo(src, dstStatePath string) (SnapshotInfo, error) {
	return prepareRestore(src, dstStatePath)
}

func prepareRestore(src, dst string) (info SnapshotInfo, err error) {
	if _, err := os.Lstat(dst); err == nil {
		return info, fmt.Errorf("%s already exists: restore into an empty data dir", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return info, err
	}
	in, err := os.Open(src)
	if err != nil {
		return info, err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return info, err
	} else if !fi.Mode().IsRegular() {
		return info, fmt.Errorf("%s is not a regular file", src)
	}
	tmp := dst + ".restore"
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := writeSynced(tmp, in); err != nil {
		return info, fmt.Errorf("copy %s: %w", src, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return info, fmt.Errorf("%s is not a state snapshot: %w", src, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		if info, err = inspect(tx); err != nil {
			return err
		}
		// Buckets that a snapshot of an older version lacks are created
		// by Open; create them here too, so the copy is complete.
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		for _, name := range membershipBuckets {
			if tx.Bucket(name) == nil {
				continue
			}
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("clear %s: %w", name, err)
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("clear %s: %w", name, err)
			}
		}
		return writeIndex(tx, 0)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return info, fmt.Errorf("%s is not a usable state snapshot: %w", src, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return info, err
	}
	return info, syncDir(filepath.Dir(dst))
}
