package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/testing/testcluster"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A reload applies the sections that reload (here the log level and the
// rate limits), says what changed and which changed keys wait for a
// restart, and refuses a wrong file whole, with its lines, keeping the
// configuration in force.
func TestReload(t *testing.T) {
	srv := testcluster.Start(t)
	var logs syncBuffer
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))
	path := filepath.Join(t.TempDir(), "cc.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	flags := func(c *config.Config) {
		c.DataDir = srv.Config.DataDir
		c.APIAddr, c.RaftAddr = srv.Config.APIAddr, srv.Config.RaftAddr
	}
	write("[log]\nlevel = \"info\"\n")
	start, err := loadFile(path, flags)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{path: path, load: func() (config.Config, error) { return loadFile(path, flags) }, srv: srv.Srv, level: level, log: log, cur: start}

	write("node_down_after = \"30s\"\n[log]\nlevel = \"debug\"\n[rate_limit]\nviewer_per_second = 7.0\nviewer_burst = 9\n")
	res := r.reload()
	if !res.OK() || level.Level() != slog.LevelDebug {
		t.Fatalf("reload: %+v, level %v", res, level.Level())
	}
	if rl := srv.Srv.RateLimit(); rl.ViewerPerSecond != 7 || rl.ViewerBurst != 9 || rl.AdminPerSecond != 2000 {
		t.Fatalf("after reload: %+v", rl)
	}
	applied := strings.Join(res.Applied, "\n")
	for _, want := range []string{`log.level: "info" -> "debug"`, "rate_limit.viewer_per_second: 500 -> 7", "rate_limit.viewer_burst: 1000 -> 9"} {
		if !strings.Contains(applied, want) {
			t.Errorf("applied %q lacks %q", applied, want)
		}
	}
	if len(res.Restart) != 1 || res.Restart[0] != "node_down_after: 10s -> 30s" {
		t.Errorf("restart: %q", res.Restart)
	}
	if out := logs.String(); !strings.Contains(out, "config reloaded") || !strings.Contains(out, "only after a restart") || !strings.Contains(out, "node_down_after") {
		t.Fatalf("log does not say what changed:\n%s", out)
	}
	// The same file again: nothing to apply, the restart still pending.
	if res := r.reload(); len(res.Applied) != 0 || len(res.Restart) != 1 {
		t.Fatalf("second reload: %+v", res)
	}

	// A wrong value: refused with its line; nothing changes.
	write("[log]\nlevel = \"warn\"\n[rate_limit]\nviewer_per_second = -1.0\n")
	res = r.reload()
	if res.OK() || len(res.Problems) != 1 || !strings.HasPrefix(res.Problems[0], "line 4: rate_limit.viewer_per_second") {
		t.Fatalf("bad value: %+v", res)
	}
	if rl := srv.Srv.RateLimit(); rl.ViewerPerSecond != 7 || level.Level() != slog.LevelDebug {
		t.Fatalf("a refused file changed the configuration: %+v %v", rl, level.Level())
	}
	if out := logs.String(); !strings.Contains(out, "config file refused") || !strings.Contains(out, "line 4: rate_limit.viewer_per_second") {
		t.Fatalf("log does not say why:\n%s", out)
	}
	// A syntax error.
	write("[log]\nlevel = \"warn\n")
	if res := r.reload(); res.OK() || !strings.HasPrefix(res.Problems[0], "line 2:") {
		t.Fatalf("syntax error: %+v", res)
	}
	if level.Level() != slog.LevelDebug {
		t.Fatal("a refused file changed the log level")
	}
}
