package fsm

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Schema versions. The state database carries the version of its layout
// (buckets, keys, encodings a plain proto decode cannot bridge) under
// meta/schema_version. Open moves an older database to SchemaVersion in
// the same transaction that prepares it, so a failed migration leaves the
// file as it was; it refuses a newer one, which only a newer binary can
// read. Fields added to records need no migration: proto decodes old
// records, and buf breaking keeps the encodings compatible.
//
// To change the layout: raise SchemaVersion, append the step from the
// previous version to migrations, and commit a fixture of the release
// before the change under testdata/ (TestWriteStateFixture writes one;
// TestStateFixtures opens them all).

// SchemaVersion is the layout this binary reads and writes.
const SchemaVersion = 1

var keySchemaVersion = []byte("schema_version")

// migration moves a database from one schema version to the next, inside
// Open's transaction.
type migration struct {
	what string // for the log
	run  func(tx *bolt.Tx) error
}

// migrations[v] moves a database from schema v to v+1.
var migrations = [SchemaVersion]migration{
	// Databases written before versions were kept have every bucket of
	// schema 1 or lack some, which Open creates; the step is the stamp.
	0: {what: "stamp the schema version", run: func(*bolt.Tx) error { return nil }},
}

// SchemaError is Open's (and a restore's) refusal of a database written by
// a newer binary.
type SchemaError struct {
	Path  string // the file, when known
	Found uint32 // the database's schema version
}

func (e *SchemaError) Error() string {
	where := "the state database"
	if e.Path != "" {
		where = "the state database " + e.Path
	}
	return fmt.Sprintf("%s has schema version %d, newer than the %d this cc-controlplane knows: it was written by a newer release. "+
		"Run that release (or a newer one) again, or restore a backup taken before the upgrade (docs/upgrade.md, \"Going back\")",
		where, e.Found, SchemaVersion)
}

// readSchema returns the database's schema version: 0 when it has none
// (written before versions were kept).
func readSchema(tx *bolt.Tx) uint32 {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return 0
	}
	v := b.Get(keySchemaVersion)
	if len(v) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func writeSchema(tx *bolt.Tx, v uint32) error {
	return tx.Bucket(bucketMeta).Put(keySchemaVersion, binary.BigEndian.AppendUint32(nil, v))
}

// checkSchema refuses a database of a newer schema than this binary's.
func checkSchema(tx *bolt.Tx, path string) error {
	if v := readSchema(tx); v > SchemaVersion {
		return &SchemaError{Path: path, Found: v}
	}
	return nil
}

// migrate brings the database of tx to SchemaVersion and returns the
// version it had. A new database (no meta bucket yet) is stamped with
// SchemaVersion. The caller's transaction makes the steps one change.
func migrate(tx *bolt.Tx, path string) (from uint32, err error) {
	if tx.Bucket(bucketMeta) == nil {
		if _, err := tx.CreateBucket(bucketMeta); err != nil {
			return 0, err
		}
		return SchemaVersion, writeSchema(tx, SchemaVersion)
	}
	from = readSchema(tx)
	if err := checkSchema(tx, path); err != nil {
		return from, err
	}
	for v := from; v < SchemaVersion; v++ {
		if err := migrations[v].run(tx); err != nil {
			return from, fmt.Errorf("migrate the state database from schema %d to %d (%s): %w; the file is unchanged", v, v+1, migrations[v].what, err)
		}
	}
	if from == SchemaVersion {
		return from, nil
	}
	return from, writeSchema(tx, SchemaVersion)
}
