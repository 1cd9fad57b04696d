package uie2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
)

// TestMain starts each run with an empty results.txt in the artifacts dir
// (the screenshots are overwritten by name).
func TestMain(m *testing.M) {
	dir := os.Getenv("CC_ARTIFACTS")
	if dir != "" {
		dir = filepath.Join(dir, "ui")
	} else if root, err := testcluster.ModuleRoot(); err == nil {
		dir = filepath.Join(root, "test-artifacts", "ui")
	}
	if dir != "" {
		os.Remove(filepath.Join(dir, "results.txt"))
	}
	os.Exit(m.Run())
}
