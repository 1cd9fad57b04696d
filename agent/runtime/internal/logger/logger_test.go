package logger

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func readRecords(t *testing.T, path string) []*Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, &r)
	}
	return out
}

// TestPumpStreams: the logger's loop writes both streams as records; once
// the writers are done, a drain request is answered only with everything
// they wrote in the log; when the streams end the loop ends, and a drain
// request then says the logs are complete. Without the FIFOs (a logger of
// an earlier agent) logsDrained cannot tell.
func TestPumpStreams(t *testing.T) {
	dir := t.TempDir()
	if Drained(context.Background(), dir) {
		t.Fatal("drained without a logger's FIFOs")
	}
	w, err := NewWriter(dir, 64<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	drain, err := openDrainFIFO(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The raw descriptors, as the logger gets them from the shim.
	outFd, err := dupFd(outR)
	if err != nil {
		t.Fatal(err)
	}
	errFd, err := dupFd(errR)
	if err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pumpStreams(w, []int{outFd, errFd}, drain, dir, make(chan os.Signal), time.Second)
	}()

	// More than a pipe holds, on both streams.
	line := strings.Repeat("x", 999) + "\n"
	const lines = 500
	var wg sync.WaitGroup
	for _, f := range []*os.File{outW, errW} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range lines {
				if _, err := f.WriteString(line); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if !Drained(context.Background(), dir) {
		t.Fatal("no answer to the drain request")
	}
	got := map[string]int{}
	for _, r := range readRecords(t, filepath.Join(dir, FileName)) {
		got[r.Stream] += len(r.Data())
	}
	if want := lines * len(line); got["stdout"] != want || got["stderr"] != want {
		t.Fatalf("after the drain: %v bytes, want %d of each stream", got, want)
	}

	outW.Close()
	errW.Close()
	<-done
	unix.Close(drain) // as RunLogger does when the loop ends
	if !Drained(context.Background(), dir) {
		t.Fatal("the logger ended, yet its logs are not called complete")
	}
}

func dupFd(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(u uintptr) { fd, derr = dupCloexec(int(u)) }); err != nil {
		return -1, err
	}
	return fd, derr
}

func dupCloexec(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

func TestLoggerArgs(t *testing.T) {
	a := Args{Dir: "/var/lib/cc/logs/a b&c", MaxBytes: 123, MaxFiles: 4}
	got, err := parseArgs([]string{a.Query()})
	if err != nil || got != a {
		t.Errorf("query round trip: %+v, %v", got, err)
	}
	got, err = parseArgs([]string{"--dir", "/x", "--max-bytes", "9"})
	if err != nil || got != (Args{Dir: "/x", MaxBytes: 9, MaxFiles: DefaultMaxFiles}) {
		t.Errorf("flags: %+v, %v", got, err)
	}
	if _, err := parseArgs(nil); err == nil {
		t.Error("no dir accepted")
	}
}

// TestPumpStreamsEndsAfterSignal: after SIGTERM the loop keeps writing
// what comes for its grace, then ends even though the pipes stay open (a
// quiet loop has no timeout: the signal wakes it).
func TestPumpStreamsEndsAfterSignal(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var fds []int
	for range 2 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
		fds = append(fds, p[0])
		if len(fds) == 1 {
			if _, err := unix.Write(p[1], []byte("before\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pumpStreams(w, fds, -1, dir, sigs, 50*time.Millisecond)
	}()
	sigs <- unix.SIGTERM
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the loop did not end after SIGTERM and its grace")
	}
	var got []string
	for _, r := range readRecords(t, filepath.Join(dir, FileName)) {
		got = append(got, r.Stream+":"+string(r.Data()))
	}
	if strings.Join(got, "") != "stdout:before\n" {
		t.Errorf("records %q, want the output written before the signal", got)
	}
}
