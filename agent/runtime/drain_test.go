package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestPumpStreams: the logger's loop writes both streams as records; once
// the writers are done, a drain request is answered only with everything
// they wrote in the log; when the streams end the loop ends, and a drain
// request then says the logs are complete. Without the FIFOs (a logger of
// an earlier agent) logsDrained cannot tell.
func TestPumpStreams(t *testing.T) {
	dir := t.TempDir()
	if logsDrained(context.Background(), dir) {
		t.Fatal("drained without a logger's FIFOs")
	}
	w, err := newLogWriter(dir, 64<<20, 1)
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
	if !logsDrained(context.Background(), dir) {
		t.Fatal("no answer to the drain request")
	}
	recs, err := readAllRecords(logFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range recs {
		got[r.Stream] += len(r.data())
	}
	if want := lines * len(line); got["stdout"] != want || got["stderr"] != want {
		t.Fatalf("after the drain: %v bytes, want %d of each stream", got, want)
	}

	outW.Close()
	errW.Close()
	<-done
	unix.Close(drain) // as RunLogger does when the loop ends
	if !logsDrained(context.Background(), dir) {
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

// TestPackLogsRightAfterExit: the logs of a job that wrote more than a
// pipe holds just before it exited are complete when packed as soon as its
// exit is seen, through the drain request to its logger.
func TestPackLogsRightAfterExit(t *testing.T) {
	r, _ := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 300 << 10
	id := startTask(t, r, Task{Spec: sandboxSpec("/bin/busybox", "head", "-c", strconv.Itoa(size), "/dev/zero")})
	waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	if _, err := os.Stat(filepath.Join(r.logDir(id), drainFIFO)); err != nil {
		t.Fatalf("the logger made no drain FIFO: %v", err)
	}
	p, err := r.PackLogs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec logRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		n += len(rec.data())
	}
	if n != size {
		t.Fatalf("packed logs hold %d bytes of output, want %d", n, size)
	}
}
