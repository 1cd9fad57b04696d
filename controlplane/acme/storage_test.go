package acme

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// direct applies commands to a state machine in order, as raft would.
type direct struct {
	mu  sync.Mutex
	f   *fsm.FSM
	idx uint64
	now time.Time
}

func newDirect(t *testing.T) *direct {
	f, err := fsm.Open(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &direct{f: f, now: time.Unix(1_800_000_000, 0)}
}

func (d *direct) propose(_ context.Context, typ statev1.CommandType, p proto.Message) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := fsm.Encode(typ, p, d.now)
	if err != nil {
		return 0, err
	}
	d.idx++
	res := d.f.Apply(&raft.Log{Index: d.idx, Term: 1, Type: raft.LogCommand, Data: data}).(fsm.Result)
	return d.idx, res.Err
}

func TestStorage(t *testing.T) {
	d := newDirect(t)
	s := &Storage{FSM: d.f, Propose: d.propose, Holder: "s1-aa", Now: func() time.Time { return d.now }}
	ctx := context.Background()
	if _, err := s.Load(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load missing: %v", err)
	}
	for _, k := range []string{"certificates/ca/a.test/a.test.crt", "certificates/ca/a.test/a.test.key", "acme/ca/account.json"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Load(ctx, "acme/ca/account.json"); err != nil || string(v) != "acme/ca/account.json" {
		t.Fatalf("load: %q %v", v, err)
	}
	if ki, err := s.Stat(ctx, "certificates/ca"); err != nil || ki.IsTerminal {
		t.Fatalf("stat dir: %v %v", ki, err)
	}
	if ki, err := s.Stat(ctx, "certificates/ca/a.test/a.test.crt"); err != nil || !ki.IsTerminal || ki.Size == 0 {
		t.Fatalf("stat file: %v %v", ki, err)
	}
	if keys, err := s.List(ctx, "certificates", true); err != nil || len(keys) != 2 {
		t.Fatalf("list: %v %v", keys, err)
	}
	if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.test/a.test.key") {
		t.Fatal("deleted key exists")
	}
	if err := s.Delete(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestLocks(t *testing.T) {
	d := newDirect(t)
	now := func() time.Time { return d.now }
	s1 := &Storage{FSM: d.f, Propose: d.propose, Holder: "s1-aa", Now: now}
	ctx := context.Background()
	if err := s1.Lock(ctx, "issue_cert_a.test"); err != nil {
		t.Fatal(err)
	}
	// A second Lock of the same term waits for the first: the lock is
	// not re-entrant within a server.
	wctx, cancel := context.WithTimeout(ctx, 1200*time.Millisecond)
	err := s1.Lock(wctx, "issue_cert_a.test")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock in the same term: %v", err)
	}
	// A new leader (another holder) takes over a lock the deposed one left.
	s2 := &Storage{FSM: d.f, Propose: d.propose, Holder: "s2-bb", Now: now}
	if err := s2.Lock(ctx, "issue_cert_a.test"); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if h, _, _ := d.f.ACMELockHolder("issue_cert_a.test"); h != "s2-bb/1" {
		t.Fatalf("holder %q", h)
	}
	if err := s2.RenewLockLease(ctx, "issue_cert_a.test", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s2.Unlock(ctx, "issue_cert_a.test"); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := d.f.ACMELockHolder("issue_cert_a.test"); h != "" {
		t.Fatalf("after unlock: %q", h)
	}
}

func TestWanted(t *testing.T) {
	auto := &ccv1.EdgeTLSOptions{Cert: "auto"}
	got := Wanted([]*ccv1.Route{
		{Spec: &ccv1.RouteSpec{Hosts: []string{"b.test", "a.test"}, Tls: auto}},
		{Spec: &ccv1.RouteSpec{Hosts: []string{"manual.test"}, Tls: &ccv1.EdgeTLSOptions{Cert: "site"}}},
		{Spec: &ccv1.RouteSpec{Hosts: []string{"plain.test"}}},
	}, []*ccv1.Site{{Spec: &ccv1.SiteSpec{Hosts: []string{"a.test", "docs.test"}, Tls: auto}}})
	if want := "a.test b.test docs.test"; join(got) != want {
		t.Fatalf("wanted %q, want %q", join(got), want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
