package control

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A reload over the socket returns what the program did; the socket is
// private to its owner; a second program on the same dir is refused; a
// socket left by a dead one is replaced.
func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	calls := 0
	mux := http.NewServeMux()
	mux.Handle("POST "+PathReload, ReloadHandler(func() ReloadResult {
		calls++
		if calls == 1 {
			return ReloadResult{File: "f.toml", Applied: []string{`log.level: "info" -> "debug"`}, Restart: []string{"api_addr: a -> b"}}
		}
		return ReloadResult{File: "f.toml", Problems: []string{"line 3: log.level: bad"}}
	}))
	s, err := Listen(dir, mux, log)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Reload(ctx, dir)
	if err != nil || !res.OK() || len(res.Applied) != 1 || len(res.Restart) != 1 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	var b strings.Builder
	res.Print(&b)
	if !strings.Contains(b.String(), "Applied now:") || !strings.Contains(b.String(), "only after a restart") {
		t.Fatalf("print: %s", b.String())
	}
	if res, err := Reload(ctx, dir); err != nil || res.OK() || res.Problems[0] != "line 3: log.level: bad" {
		t.Fatalf("refused reload: %+v %v", res, err)
	}
	if _, err := Listen(dir, mux, log); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("a second listener: %v", err)
	}
	s.Close()
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := Reload(ctx, dir); err == nil || !strings.Contains(err.Error(), "is the program running") {
		t.Fatalf("reload without a program: %v", err)
	}

	// A socket file nobody listens on (a crash) is replaced.
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s, err = Listen(dir, mux, log)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	s.Close()
}
