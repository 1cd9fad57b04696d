package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containercodes/cc/agent/runtime/internal/logger"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

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
	if _, err := os.Stat(filepath.Join(r.logDir(id), logger.DrainFIFO)); err != nil {
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
		n += len(rec.Data())
	}
	if n != size {
		t.Fatalf("packed logs hold %d bytes of output, want %d", n, size)
	}
}
