package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bind mount's host path must be under an allowed prefix, segment-wise
// and after symbolic links are resolved; with no prefix, none is allowed.
func TestAllowedBind(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "srv")
	for _, d := range []string{"srv/app", "srvx", "secret"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "secret"), filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{cfg: Config{BindMountAllow: []string{allowed + "/"}}}
	for _, ok := range []string{allowed, filepath.Join(allowed, "app")} {
		if _, err := r.allowedBind(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{filepath.Join(root, "srvx"), filepath.Join(allowed, "escape"), root, "relative"} {
		if _, err := r.allowedBind(bad); err == nil || !strings.Contains(err.Error(), "--bind-mount-allow") && !strings.Contains(err.Error(), "no such file") {
			t.Errorf("%s allowed (err %v)", bad, err)
		}
	}
	none := &Runtime{}
	if _, err := none.allowedBind(allowed); err == nil || !strings.Contains(err.Error(), "allows no bind mounts") {
		t.Errorf("with no prefix: %v", err)
	}
}
