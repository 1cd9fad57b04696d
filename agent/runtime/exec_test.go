package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// pids lists the processes of a container's task.
func pids(t *testing.T, r *Runtime, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.withNS(context.Background()), 30*time.Second)
	defer cancel()
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := task.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(ps)
}

// fifosLeft lists what Exec left in its FIFO directory.
func fifosLeft(t *testing.T, r *Runtime) []string {
	t.Helper()
	entries, err := os.ReadDir(r.fifoDir())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestExec(t *testing.T) {
	r, _ := newTestRuntime(t)
	s := spec("/bin/busybox", "sleep", "300")
	s.Env = []string{"GREETING=hello"}
	s.Workdir = "/tmp"
	s.User = "65534"
	id := start(t, r, s)
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tests := []struct {
		argv     []string
		wantCode int
		wantOut  string
	}{
		{argv: []string{"/bin/busybox", "true"}, wantCode: 0},
		{argv: []string{"/bin/busybox", "false"}, wantCode: 1},
		// The container's environment, working directory and user; both
		// streams.
		{argv: []string{"/bin/sh", "-c", `echo "$GREETING $(pwd) $(id -u)"; echo oops >&2; exit 3`}, wantCode: 3, wantOut: "hello /tmp 65534\noops\n"},
	}
	for _, tt := range tests {
		code, out, err := r.Exec(ctx, id, tt.argv, 10*time.Second)
		// stdout and stderr come through two pipes: their lines may
		// interleave either way.
		if err != nil || code != tt.wantCode || sortedLines(string(out)) != sortedLines(tt.wantOut) {
			t.Errorf("Exec %q = %d, %q, %v; want %d, %q", tt.argv, code, out, err, tt.wantCode, tt.wantOut)
		}
	}

	// The output is bounded; the process is not blocked by the excess.
	code, out, err := r.Exec(ctx, id, []string{"/bin/busybox", "head", "-c", "100000", "/dev/zero"}, 10*time.Second)
	if err != nil || code != 0 || len(out) != ExecOutputLimit {
		t.Errorf("Exec with 100000 bytes of output = %d, %d bytes, %v; want 0, %d bytes", code, len(out), err, ExecOutputLimit)
	}

	// A program that is not there.
	if code, out, err := r.Exec(ctx, id, []string{"/no/such/program"}, 10*time.Second); err == nil {
		t.Errorf("Exec of a missing program = %d, %q, nil", code, out)
	}

	if n := pids(t, r, id); n != 1 {
		t.Errorf("%d processes in the container after the execs, want 1", n)
	}
	if left := fifosLeft(t, r); len(left) != 0 {
		t.Errorf("FIFOs left behind: %v", left)
	}

	// A container that is not running.
	if err := r.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Exec(ctx, id, []string{"/bin/busybox", "true"}, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Exec in a stopped container: %v, want ErrNotRunning", err)
	}
	if _, _, err := r.Exec(ctx, "missing", []string{"/bin/busybox", "true"}, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Exec in a missing container: %v, want ErrNotRunning", err)
	}
}

func TestExecTimeout(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/busybox", "sleep", "300"))
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, out, err := r.Exec(ctx, id, []string{"/bin/sh", "-c", "echo started; exec /bin/busybox sleep 10"}, time.Second)
	if !errors.Is(err, ErrExecTimeout) || code != -1 || string(out) != "started\n" {
		t.Errorf("Exec = %d, %q, %v; want -1, started, ErrExecTimeout", code, out, err)
	}
	if n := pids(t, r, id); n != 1 {
		t.Errorf("%d processes in the container after the timeout, want 1", n)
	}
	if left := fifosLeft(t, r); len(left) != 0 {
		t.Errorf("FIFOs left behind: %v", left)
	}

	// The caller's context ending kills the process too.
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Exec(cctx, id, []string{"/bin/busybox", "sleep", "10"}, time.Minute)
		done <- err
	}()
	for deadline := time.Now().Add(20 * time.Second); pids(t, r, id) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the exec'd process never showed up")
		}
	}
	ccancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a cancelled context: %v", err)
	}
	if n := pids(t, r, id); n != 1 {
		t.Errorf("%d processes in the container after the cancel, want 1", n)
	}
	if left := fifosLeft(t, r); len(left) != 0 {
		t.Errorf("FIFOs left behind: %v", left)
	}
}

// TestDialNetworkNone reaches a server on a loopback-only container's
// 127.0.0.1, which the host cannot reach.
func TestDialNetworkNone(t *testing.T) {
	r, _ := newTestRuntime(t)
	id := start(t, r, spec("/bin/sh", "-c", "echo hi > /tmp/index.html; exec /bin/busybox httpd -f -p 127.0.0.1:8080 -h /tmp"))
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var body string
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err = getIn(ctx, r, id, "127.0.0.1:8080", "/index.html"); err == nil {
			break
		}
	}
	if err != nil || body != "hi\n" {
		t.Fatalf("GET in the container: %q, %v", body, err)
	}
	if _, err := getIn(ctx, r, id, "localhost:8080", "/"); err == nil {
		t.Error("Dial accepted a host name")
	}
	if _, err := getIn(ctx, r, "missing", "127.0.0.1:8080", "/"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Dial into a missing container: %v", err)
	}
}

// getIn GETs path over a connection dialled in the container.
func getIn(ctx context.Context, r *Runtime, id, addr, path string) (string, error) {
	conn, err := r.Dial(ctx, id, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	return string(b), err
}

// sortedLines is text with its lines in sorted order.
func sortedLines(text string) string {
	lines := strings.SplitAfter(text, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "")
}
