// Package control is a program's local control socket: HTTP over a unix
// socket in its data dir (control.sock, mode 0600, so only its owner and
// root may use it), for the commands an operator runs on the host
// (`config reload`, `status`) without credentials or TLS.
package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SocketName is the socket's file name in the data dir.
const SocketName = "control.sock"

// Paths served on the socket.
const (
	PathReload = "/reload"
	PathReadyz = "/readyz"
	PathHealth = "/healthz"
)

// Server serves a handler on the socket until Close.
type Server struct {
	path string
	srv  *http.Server
	ln   net.Listener
	wg   sync.WaitGroup
}

// Listen serves h on dir/control.sock. A socket left by a process that
// ended is replaced; one that answers belongs to a running program, and
// Listen refuses it.
func Listen(dir string, h http.Handler, log *slog.Logger) (*Server, error) {
	path := filepath.Join(dir, SocketName)
	if len(path) >= 104 { // sun_path: 108 bytes on Linux, 104 on the BSDs
		return nil, fmt.Errorf("control socket %s: the path is too long for a unix socket (%d bytes); use a shorter data dir", path, len(path))
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s answers: another process runs on this data dir", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{path: path, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("control socket stopped", "path", path, "err", err)
		}
	})
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Call makes a request to the socket of the program whose data dir is dir
// and returns the answer's status and body.
func Call(ctx context.Context, dir, method, path string) (int, []byte, error) {
	sock := filepath.Join(dir, SocketName)
	hc := &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://local"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "no such file"):
			return 0, nil, fmt.Errorf("no control socket at %s: is the program running with this data dir?", sock)
		case errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "permission denied"):
			return 0, nil, fmt.Errorf("control socket %s: permission denied: run as the program's user or root", sock)
		case strings.Contains(err.Error(), "connection refused"):
			return 0, nil, fmt.Errorf("control socket %s: connection refused: the program is not running (the socket is left over)", sock)
		}
		return 0, nil, fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
