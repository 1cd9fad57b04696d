package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/health/healthstate"
)

// fakeContainers answers Exec with fixed values and dials addr on a test
// server instead of the container's loopback.
type fakeContainers struct {
	code int
	out  string
	err  error

	server string // host:port the dial goes to
	dials  atomic.Int32
}

func (f *fakeContainers) Exec(ctx context.Context, id string, argv []string, timeout time.Duration) (int, []byte, error) {
	return f.code, []byte(f.out), f.err
}

func (f *fakeContainers) Dial(ctx context.Context, id, address string) (net.Conn, error) {
	f.dials.Add(1)
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.server)
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name    string
		fake    *fakeContainers
		ok      bool
		wantOut string
	}{
		{name: "exit 0", fake: &fakeContainers{code: 0, out: "fine"}, ok: true},
		{name: "exit 1", fake: &fakeContainers{code: 1, out: "disk full\n"}, wantOut: "exit code 1: disk full"},
		{name: "exit 2, no output", fake: &fakeContainers{code: 2}, wantOut: "exit code 2"},
		{name: "error", fake: &fakeContainers{code: -1, out: "partial", err: errors.New("exec timed out")}, wantOut: "exec timed out: partial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, out := NewChecker(tt.fake).Check(context.Background(), "c1", healthstate.Check{Exec: []string{"x"}, Timeout: time.Second})
			if ok != tt.ok || out != tt.wantOut {
				t.Errorf("Check = %v, %q; want %v, %q", ok, out, tt.ok, tt.wantOut)
			}
		})
	}
}

func TestHTTPCheck(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, "fine")
		case "/missing":
			http.Error(w, "no such page", http.StatusNotFound)
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/broken", http.StatusFound)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close: a /slow handler may still wait
	const port = 8080
	tests := []struct {
		path    string
		ok      bool
		wantOut string // contained in the output
	}{
		{path: "/ok", ok: true},
		{path: "/missing", wantOut: "GET http://127.0.0.1:8080/missing: HTTP 404 Not Found: no such page"},
		// A redirect to another host is the answer: 3xx passes, the other
		// host is not contacted.
		{path: "/away", ok: true},
		// A redirect on the same host and port is followed.
		{path: "/here", wantOut: "HTTP 500 Internal Server Error: boom"},
		{path: "/loop", wantOut: "more than 10 redirects"},
		{path: "/slow", wantOut: "no answer within 200ms"},
		// Still a path on 127.0.0.1 (the dialer refuses any other address).
		{path: "//other.example/ok", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fake := &fakeContainers{server: srv.Listener.Addr().String()}
			ok, out := NewChecker(fake).Check(context.Background(), "c1", healthstate.Check{HTTPPath: tt.path, HTTPPort: port, Timeout: 200 * time.Millisecond})
			if ok != tt.ok || !strings.Contains(out, tt.wantOut) || (tt.ok && out != "") {
				t.Errorf("Check = %v, %q; want %v, %q", ok, out, tt.ok, tt.wantOut)
			}
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	ok, out := NewChecker(&fakeContainers{server: closed}).Check(context.Background(), "c1", healthstate.Check{HTTPPath: "/", HTTPPort: port, Timeout: time.Second})
	if ok || !strings.Contains(out, "refused") {
		t.Errorf("Check against a closed port = %v, %q", ok, out)
	}
}
