package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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

// SIGHUP's reload applies the [rate_limit] section of the file, logs what
// changed, and keeps the limits in force when the file is wrong.
func TestReloadRateLimits(t *testing.T) {
	srv := testcluster.Start(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(t.TempDir(), "cc.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("data_dir = \"/var/lib/cc\"\n[rate_limit]\nviewer_per_second = 7.0\nviewer_burst = 9\n")
	reload(path, srv.Srv, log)
	if rl := srv.Srv.RateLimit(); rl.ViewerPerSecond != 7 || rl.ViewerBurst != 9 || rl.AdminPerSecond != 2000 {
		t.Fatalf("after reload: %+v", rl)
	}
	if out := logs.String(); !strings.Contains(out, "rate_limit.viewer_per_second: 500 -> 7") || !strings.Contains(out, "rate_limit.viewer_burst: 1000 -> 9") {
		t.Fatalf("log does not say what changed:\n%s", out)
	}

	write("[rate_limit]\nviewer_per_second = -1.0\n")
	reload(path, srv.Srv, log)
	if rl := srv.Srv.RateLimit(); rl.ViewerPerSecond != 7 {
		t.Fatalf("a bad file changed the limits: %+v", rl)
	}
	if out := logs.String(); !strings.Contains(out, "rate limits not reloaded") || !strings.Contains(out, "rate_limit.viewer_per_second") {
		t.Fatalf("log does not say why:\n%s", out)
	}
	write("[rate_limit\n")
	reload(path, srv.Srv, log)
	if out := logs.String(); !strings.Contains(out, "config file not reloaded") {
		t.Fatalf("log does not report the syntax error:\n%s", out)
	}
}
