// Package fsm is the control plane's replicated state machine: it applies the
// typed commands of the raft log to a bbolt database, one bucket per kind,
// and snapshots and restores that database whole. It has no goroutines and no
// network; raft drives it.
package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/metrics"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Errors a command or a read can return. The API maps them to status codes.
var (
	ErrNotFound           = errors.New("not found")
	ErrExists             = errors.New("already exists")
	ErrInvalid            = errors.New("invalid command")
	ErrUnknownCommand     = errors.New("unknown command type")
	ErrUnsupportedVersion = errors.New("unsupported command version")
	ErrNotInitialized     = errors.New("cluster not initialized")
)

// Buckets, one per kind.
var (
	bucketMeta    = []byte("meta")
	bucketCluster = []byte("cluster")
	bucketTokens  = []byte("tokens")
	bucketNodes   = []byte("nodes")
	// containers holds ContainerRecords by id; container_names maps a
	// name to its id so that names stay unique.
	bucketContainers     = []byte("containers")
	bucketContainerNames = []byte("container_names")
	bucketImages         = []byte("images")
	bucketServers        = []byte("servers")

	keyAppliedIndex = []byte("applied_index")
	keyCluster      = []byte("cluster")
)

var allBuckets = [][]byte{bucketMeta, bucketCluster, bucketTokens, bucketNodes, bucketContainers, bucketContainerNames, bucketImages, bucketServers,
	bucketServices, bucketServiceNames, bucketNodeTasks, bucketServiceTasks, bucketNodeNames,
	bucketJobs, bucketJobSeq, bucketJobQSeq, bucketJobState, bucketJobQueue, bucketJobKeys, bucketJobExpiry, bucketJobWebhooks, bucketJobUpdated,
	bucketQueues, bucketInputs, bucketRoutes, bucketSites, bucketCerts, bucketACMEStorage, bucketACMELocks, bucketACMEChallenge, bucketAudit, bucketVolumes}

// Result is what applying one log entry returns to the proposer.
type Result struct {
	Index uint64
	Err   error
}

// FSM is the state machine. Its database is persistent: on restart it holds
// every entry applied before, and entries at or below its applied index are
// skipped when raft replays them.
type FSM struct {
	path string
	log  *slog.Logger

	mu sync.RWMutex // guards db against the swap in Restore
	db *bolt.DB

	applied atomic.Uint64
	// appliedAt is when the last batch was applied (Unix nanoseconds).
	appliedAt atomic.Int64
	metrics   atomic.Pointer[metrics.Metrics]

	watchMu        sync.Mutex
	watch          chan struct{}                     // closed and replaced after every applied batch
	nodeFeeds      map[string]map[*NodeFeed]struct{} // node id → its sessions' feeds
	containerFeeds map[*ContainerFeed]struct{}
	changeFeeds    map[*ChangeFeed]struct{}
	jobWatch       chan struct{}            // closed and replaced after a batch that changed a job
	onAudit        func([]*ccv1.AuditEvent) // the audit records of each batch, after commit

	tracer trace.Tracer // nil: no apply spans (SetTracing)

	// noSync: commits are not synced to disk (prepareUnsynced).
	noSync bool
}

// Open opens (or creates) the state database at path.
func Open(path string, log *slog.Logger) (*FSM, error) {
	f := &FSM{path: path, log: log, watch: make(chan struct{}), nodeFeeds: map[string]map[*NodeFeed]struct{}{}, containerFeeds: map[*ContainerFeed]struct{}{}, changeFeeds: map[*ChangeFeed]struct{}{}, jobWatch: make(chan struct{})}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FSM) open() error {
	noSync, err := f.prepareUnsynced()
	if err != nil {
		return err
	}
	f.noSync = noSync
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second,
		// Map generously up front so that a write never waits for a
		// snapshot's long read transaction to let the map grow.
		InitialMmapSize: 256 << 20,
		// The freelist is rebuilt from the pages at open instead of
		// written at every commit: one page write less per applied batch.
		// Each commit still syncs its pages and its meta page.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// See prepareUnsynced: the raft log is the durable record.
		NoSync: noSync,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("open state %s: locked by another process (is a control plane already running on this data dir?)", f.path)
		}
		return fmt.Errorf("open state %s: %w", f.path, err)
	}
	var applied uint64
	var schemaFrom uint32
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		if schemaFrom, err = migrate(tx, f.path); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		applied = readIndex(tx)
		if needsIndexRebuild(tx) {
			return rebuildIndexes(tx)
		}
		return nil
	})
	if err != nil {
		db.Close()
		var se *SchemaError
		if errors.As(err, &se) {
			return err
		}
		return fmt.Errorf("prepare state %s: %w", f.path, err)
	}
	if schemaFrom != SchemaVersion {
		f.log.Info("state database migrated", "file", f.path, "from_schema", schemaFrom, "to_schema", SchemaVersion)
	}
	f.db = db
	f.applied.Store(applied)
	return nil
}

// Close closes the database.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	if f.noSync {
		// Everything applied is on disk now: the next start, even after
		// a reboot, keeps the database.
		if err := f.db.Sync(); err != nil {
			f.db.Close()
			f.db = nil
			return fmt.Errorf("sync state: %w", err)
		}
	}
	err := f.db.Close()
	f.db = nil
	if err == nil && f.noSync {
		err = removeSynced(f.path + openMarkerSuffix)
	}
	return err
}

// openMarkerSuffix names the file beside the state database that says it is
// open with commits not yet synced, and since which boot of the host.
const openMarkerSuffix = ".open"

// bootID identifies the running boot of the host; "" where it cannot be
// told (then every commit is synced).
var bootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// prepareUnsynced decides whether the state database is written without an
// fsync at each commit, as etcd writes its backend: the raft log is the
// durable record (every entry is synced to a majority's log before it is
// applied), and the state is rebuilt from the latest raft snapshot and the
// log after it when its unsynced writes may be lost. That is only when the
// host itself restarted while the database was open: a crash or a kill of
// the process leaves its writes in the kernel's page cache, which reaches
// the disk all the same. So a marker beside the database holds the boot id
// while it is open; Close syncs the database and removes the marker. At the
// next open, a marker of another boot means the host went down with the
// database open: the database is set aside (state.db.unsynced) and the
// state starts empty, to be restored from the snapshot (raftstore.CatchUp)
// and the log (replayed by raft). A commit of the state machine then costs
// a write and no fsync; a write through the API still waits for the raft
// log's fsync on a majority.
func (f *FSM) prepareUnsynced() (bool, error) {
	boot := bootID()
	if boot == "" {
		return false, nil
	}
	marker := f.path + openMarkerSuffix
	if prev, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(prev)) != boot {
		if _, err := os.Stat(f.path); err == nil {
			aside := f.path + ".unsynced"
			if err := os.Rename(f.path, aside); err != nil {
				return false, fmt.Errorf("set aside state %s written before the host restarted: %w", f.path, err)
			}
			f.log.Warn("the host restarted while the state database held writes not yet on disk: it was set aside, and the state is rebuilt from the latest raft snapshot and the raft log",
				"set_aside", aside)
		}
	}
	if err := writeSynced(marker, strings.NewReader(boot+"\n")); err != nil {
		return false, fmt.Errorf("state marker %s: %w", marker, err)
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return false, fmt.Errorf("state marker %s: %w", marker, err)
	}
	return true, nil
}

// removeSynced removes a file and syncs its directory.
func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// AppliedIndex is the index of the last raft entry applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply applies one entry. Raft calls ApplyBatch instead; Apply serves the
// raft.FSM interface and tests.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one bbolt transaction. Each entry
// gets a Result; a command that fails leaves the state as it was before it.
// A failure of the database itself is fatal: the state machine cannot go on
// without diverging from its peers.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		panic("fsm: apply on a closed state database")
	}
	applied := f.applied.Load()
	last := applied
	touched := newTouch()
	jobsChanged := false
	var audited []*ccv1.AuditEvent
	var jobEvents []metrics.JobEvent
	m := f.metrics.Load()
	err := f.db.Update(func(btx *bolt.Tx) error {
		tx := &txn{Tx: btx, touched: touched, tracer: f.tracer, observe: m != nil}
		defer func() { jobsChanged, audited, jobEvents = tx.jobsChanged, tx.audited, tx.jobEvents }()
		for i, l := range logs {
			if l.Index <= applied {
				out[i] = Result{Index: l.Index}
				continue
			}
			res := Result{Index: l.Index}
			tx.index = l.Index
			if l.Type == raft.LogCommand {
				start := time.Now()
				var t statev1.CommandType
				t, res.Err = applyCommand(tx, l.Data)
				if m != nil {
					m.CommandApplied(t, time.Since(start))
					if !l.AppendedAt.IsZero() {
						m.RaftCommitted(time.Since(l.AppendedAt))
					}
				}
				if res.Err != nil {
					f.log.Debug("command refused", "index", l.Index, "err", res.Err)
				}
			}
			out[i] = res
			last = l.Index
		}
		if last == applied {
			return nil
		}
		return writeIndex(btx, last)
	})
	if err != nil {
		panic(fmt.Sprintf("fsm: state database write failed at index %d: %v", last, err))
	}
	f.applied.Store(last)
	m.JobsChanged(jobEvents)
	if last != applied {
		f.appliedAt.Store(time.Now().UnixNano())
		f.notify()
		f.notifyNodes(touched)
		f.notifyContainers(&touched.tasks)
		f.notifyChanges(&touched.api)
		if jobsChanged {
			f.notifyJobs()
		}
	}
	if len(audited) > 0 {
		f.watchMu.Lock()
		fn := f.onAudit
		f.watchMu.Unlock()
		if fn != nil {
			fn(audited)
		}
	}
	return out
}

// Watch returns a channel that is closed when the state next changes.
func (f *FSM) Watch() <-chan struct{} {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	return f.watch
}

func (f *FSM) notifyJobs() {
	f.watchMu.Lock()
	close(f.jobWatch)
	f.jobWatch = make(chan struct{})
	f.watchMu.Unlock()
}

func (f *FSM) notify() {
	f.watchMu.Lock()
	close(f.watch)
	f.watch = make(chan struct{})
	f.watchMu.Unlock()
}

// View runs fn in a read transaction of the current database.
func (f *FSM) View(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return errors.New("state database is closed")
	}
	return f.db.View(fn)
}

// Snapshot captures the state as of now: a read transaction that Persist
// writes out as a consistent copy of the database.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, errors.New("snapshot: state database is closed")
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct{ tx *bolt.Tx }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	// End the read transaction as soon as it is written out: not every
	// caller calls Release (raft's RecoverCluster does not), and an open
	// read transaction would keep the database from closing.
	defer s.tx.Rollback()
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() { _ = s.tx.Rollback() }

// Restore replaces the whole state with a snapshot: the stream is written to
// a file beside the database, checked, and swapped in.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	if err := writeSynced(tmp, rc); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkDatabase(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: snapshot is not a valid state database: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("restore: close state: %w", err)
		}
		f.db = nil
	}
	swapErr := os.Rename(tmp, f.path)
	if swapErr == nil {
		swapErr = syncDir(filepath.Dir(f.path))
	}
	// Reopen whatever file is in place now: the restored one, or the old
	// one when the swap failed. Without a database the FSM cannot go on.
	if err := f.open(); err != nil {
		panic(fmt.Sprintf("fsm: reopen state after restore: %v (swap: %v)", err, swapErr))
	}
	if swapErr != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", swapErr)
	}
	f.log.Info("state restored from snapshot", "applied_index", f.applied.Load())
	f.notify()
	f.notifyAllNodes()
	f.notifyContainers(&ContainerChanges{All: true})
	f.notifyChanges(&Changes{All: true})
	f.notifyJobs()
	return nil
}

func writeSynced(path string, r io.Reader) error {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(file, r); err != nil {
		file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

func checkDatabase(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("no meta bucket")
		}
		// A newer binary's snapshot is refused before it replaces the
		// state, which this binary could not open again.
		return checkSchema(tx, "")
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readIndex(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyAppliedIndex)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func writeIndex(tx *bolt.Tx, idx uint64) error {
	return tx.Bucket(bucketMeta).Put(keyAppliedIndex, binary.BigEndian.AppendUint64(nil, idx))
}

func put(b *bolt.Bucket, key string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func get(b *bolt.Bucket, key string, m proto.Message) error {
	data := b.Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	return proto.Unmarshal(data, m)
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
