package fsm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/containercodes/cc/internal/logging"
)

// Every committed fixture (the state of a release, written by
// TestWriteStateFixture) opens with this binary: it is migrated to
// SchemaVersion, and every record reads, through the reads the API uses.
// Its raft snapshot passes raft's own checks and restores into an empty
// state with the same records.
func TestStateFixtures(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "state-v*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures under testdata: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var manifest struct {
				Records map[string]int `json:"records"`
			}
			data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &manifest); err != nil {
				t.Fatal(err)
			}

			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, gunzip(t, filepath.Join(dir, "state.db.gz")), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path, logging.Test(t))
			if err != nil {
				t.Fatalf("open the fixture: %v", err)
			}
			checkFixture(t, f, manifest.Records)
			f.Close()
			// Opened again, nothing is left to migrate.
			if f, err = Open(path, logging.Test(t)); err != nil {
				t.Fatal(err)
			}
			f.Close()

			// The raft snapshot, read through raft's file store (which
			// checks its CRC), restored into a new state.
			snaps := filepath.Join(t.TempDir(), "snapshots")
			meta, err := os.ReadFile(filepath.Join(dir, "snapshot", "meta.json"))
			if err != nil {
				t.Fatal(err)
			}
			var sm raft.SnapshotMeta
			if err := json.Unmarshal(meta, &sm); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(snaps, sm.ID), 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(snaps, sm.ID, "meta.json"), meta, 0o600)
			os.WriteFile(filepath.Join(snaps, sm.ID, "state.bin"), gunzip(t, filepath.Join(dir, "snapshot", "state.bin.gz")), 0o600)
			store, err := raft.NewFileSnapshotStoreWithLogger(filepath.Dir(snaps), 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, rc, err := store.Open(sm.ID)
			if err != nil {
				t.Fatalf("raft opens the snapshot: %v", err)
			}
			f2, err := Open(filepath.Join(t.TempDir(), "state.db"), logging.Test(t))
			if err != nil {
				t.Fatal(err)
			}
			defer f2.Close()
			if err := f2.Restore(rc); err != nil {
				t.Fatalf("restore the snapshot: %v", err)
			}
			if f2.AppliedIndex() != sm.Index {
				t.Fatalf("restored applied index %d, snapshot index %d", f2.AppliedIndex(), sm.Index)
			}
			checkFixture(t, f2, manifest.Records)
		})
	}
}

// checkFixture reads every record of a fixture's state and compares the
// counts with its manifest.
func checkFixture(t *testing.T, f *FSM, want map[string]int) {
	t.Helper()
	f.View(func(tx *bolt.Tx) error {
		if v := readSchema(tx); v != SchemaVersion {
			t.Errorf("schema version %d after open, want %d", v, SchemaVersion)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n, ok := want[string(name)]
			if string(name) == "meta" {
				n++ // the schema version
			}
			if ok && b.Stats().KeyN != n {
				t.Errorf("bucket %s holds %d keys, the fixture %d", name, b.Stats().KeyN, n)
			}
			return nil
		})
	})
	count := func(what string, n int, err error, bucket string) {
		t.Helper()
		if err != nil {
			t.Errorf("read %s: %v", what, err)
			return
		}
		if n != want[bucket] {
			t.Errorf("read %d %s, the fixture holds %d", n, what, want[bucket])
		}
	}
	cl, err := f.Cluster()
	if err != nil || cl.ClusterId == "" || len(cl.CaKeyPem) == 0 {
		t.Errorf("cluster record: %v %v", cl, err)
	}
	if _, err := f.Settings(); err != nil {
		t.Errorf("settings: %v", err)
	}
	tokens, err := f.Tokens()
	count("tokens", len(tokens), err, "tokens")
	for _, tok := range tokens {
		if _, err := f.Token(tok.Id); err != nil {
			t.Errorf("token %s: %v", tok.Id, err)
		}
	}
	nodes, err := f.Nodes()
	count("nodes", len(nodes), err, "nodes")
	cs, err := f.Containers()
	count("containers", len(cs), err, "containers")
	for _, c := range cs {
		if id, err := f.ContainerIDByName(c.Container.Name); err != nil || id != c.Container.Id {
			t.Errorf("container %s by name: %q %v", c.Container.Name, id, err)
		}
	}
	images, err := f.Images()
	count("images", len(images), err, "images")
	servers, err := f.Servers()
	count("servers", len(servers), err, "servers")
	services, err := f.Services()
	count("services", len(services), err, "services")
	for _, s := range services {
		if id, err := f.ServiceIDByName(s.Name); err != nil || id != s.Id {
			t.Errorf("service %s by name: %q %v", s.Name, id, err)
		}
	}
	jobs, _, err := f.ListJobs(JobFilter{}, 1000, 0)
	count("jobs", len(jobs), err, "jobs")
	for _, j := range jobs {
		if _, err := f.Job(j.Id); err != nil {
			t.Errorf("job %s: %v", j.Id, err)
		}
	}
	routes, err := f.Routes()
	count("routes", len(routes), err, "routes")
	sites, err := f.Sites()
	count("sites", len(sites), err, "sites")
	certs, err := f.Certs()
	count("certs", len(certs), err, "certs")
	ch, err := f.Challenges()
	count("ACME challenges", len(ch), err, "acme_challenges")
	events, _, err := f.Audit(AuditFilter{}, 0, 100000)
	count("audit events", len(events), err, "audit")
	if _, err := f.ReadState(); err != nil {
		t.Errorf("the orchestrator's read: %v", err)
	}
	if _, err := f.ReadDispatch(256); err != nil {
		t.Errorf("the dispatcher's read: %v", err)
	}
	if _, err := f.BlobsInUse(); err != nil {
		t.Errorf("blobs in use: %v", err)
	}
	f.View(func(tx *bolt.Tx) error {
		n := 0
		tx.Bucket(bucketQueues).ForEach(func(k, _ []byte) error {
			n++
			if _, err := f.Queue(string(k)); err != nil {
				t.Errorf("queue %s: %v", k, err)
			}
			return nil
		})
		tx.Bucket(bucketInputs).ForEach(func(k, _ []byte) error {
			n++
			if _, err := f.Input(string(k)); err != nil {
				t.Errorf("input %s: %v", k, err)
			}
			return nil
		})
		if n != want["queues"]+want["inputs"] {
			t.Errorf("read %d queues and inputs, the fixture %d", n, want["queues"]+want["inputs"])
		}
		return nil
	})
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A database of a newer schema is refused with what to do, and left as
// it was; an older one is migrated in Open's transaction.
func TestSchemaVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := Open(path, logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	f.View(func(tx *bolt.Tx) error {
		if v := readSchema(tx); v != SchemaVersion {
			t.Errorf("a new database has schema %d, want %d", v, SchemaVersion)
		}
		return nil
	})
	f.Close()

	setSchema := func(v uint32) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { return writeSchema(tx, v) }); err != nil {
			t.Fatal(err)
		}
	}
	setSchema(SchemaVersion + 1)
	before, _ := os.ReadFile(path)
	_, err = Open(path, logging.Test(t))
	var se *SchemaError
	if !errors.As(err, &se) || se.Found != SchemaVersion+1 || !strings.Contains(err.Error(), "newer release") || !strings.Contains(err.Error(), "docs/upgrade.md") {
		t.Fatalf("open of a newer schema: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused database was changed")
	}
	if _, err := InspectSnapshot(path); !errors.As(err, &se) {
		t.Fatalf("inspect a newer schema: %v", err)
	}
	// A snapshot of a newer schema is refused before it replaces the state.
	g, err := Open(filepath.Join(t.TempDir(), "state.db"), logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Restore(io.NopCloser(bytes.NewReader(before))); !errors.As(err, &se) {
		t.Fatalf("restore of a newer schema: %v", err)
	}
	if _, err := g.Tokens(); err != nil {
		t.Fatalf("the state after a refused restore: %v", err)
	}

	// A failing step leaves the file as it was.
	setSchema(0)
	saved := migrations[0]
	t.Cleanup(func() { migrations[0] = saved })
	migrations[0] = migration{what: "test", run: func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte("half"), []byte("done")); err != nil {
			return err
		}
		return errors.New("boom")
	}}
	if _, err := Open(path, logging.Test(t)); err == nil || !strings.Contains(err.Error(), "from schema 0 to 1") || !strings.Contains(err.Error(), "unchanged") {
		t.Fatalf("failed migration: %v", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		if readSchema(tx) != 0 || tx.Bucket(bucketMeta).Get([]byte("half")) != nil {
			t.Error("a failed migration left a partial change")
		}
		return nil
	})
	db.Close()
	migrations[0] = saved
	f, err = Open(path, logging.Test(t))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
