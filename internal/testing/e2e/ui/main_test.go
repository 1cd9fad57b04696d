package uie2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestMain marks the start of a run in results.txt (in the artifacts dir;
// runs append, so that make test's two runs of this package both show).
func TestMain(m *testing.M) {
	dir := os.Getenv("CC_ARTIFACTS")
	if dir != "" {
		dir = filepath.Join(dir, "ui")
	} else if root, err := testcluster.ModuleRoot(); err == nil {
		dir = filepath.Join(root, "test-artifacts", "ui")
	}
	if dir != "" && os.MkdirAll(dir, 0o755) == nil {
		if f, err := os.OpenFile(filepath.Join(dir, "results.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "\n# run of %s at %s\n", strings.Join(os.Args[1:], " "), time.Now().UTC().Format(time.RFC3339))
			f.Close()
		}
	}
	os.Exit(m.Run())
}
