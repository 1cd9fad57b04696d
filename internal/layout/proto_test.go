package layout

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// baseline is the buf image `make proto-check` checks the protos against.
const baseline = "proto/baseline/cc.binpb"

// The protos do not break against the committed baseline, and buf breaking
// does catch a break of the raft log format: a copy of the module with one
// field of proto/cc/state/v1 renumbered fails. It needs buf (on PATH, or in
// .tools/bin from `make tools`).
func TestProtoBreakingAgainstBaseline(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	buf, err := exec.LookPath("buf")
	if err != nil {
		buf = filepath.Join(root, ".tools", "bin", "buf")
		if _, err := os.Stat(buf); err != nil {
			t.Skip("buf is not on PATH nor in .tools/bin (make tools)")
		}
	}

	dir := t.TempDir()
	copyFile(t, filepath.Join(root, "buf.yaml"), filepath.Join(dir, "buf.yaml"))
	copyFile(t, filepath.Join(root, baseline), filepath.Join(dir, baseline))
	err = filepath.WalkDir(filepath.Join(root, "proto"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".proto") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		copyFile(t, path, filepath.Join(dir, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	breaking := func() (string, error) {
		cmd := exec.Command(buf, "breaking", "--against", baseline)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := breaking(); err != nil {
		t.Fatalf("buf breaking against %s: %v\n%s\nmake proto-check fails too; see its message", baseline, err, out)
	}

	// Renumber the first field of a message in state.proto.
	state := filepath.Join(dir, "proto", "cc", "state", "v1", "state.proto")
	src, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`(?m)^(\s+[\w.]+ \w+ = )(\d+);`)
	loc := field.FindSubmatchIndex(src)
	if loc == nil {
		t.Fatal("no message field found in state.proto")
	}
	broken := append(append(bytes.Clone(src[:loc[4]]), "536870000"...), src[loc[5]:]...)
	if err := os.WriteFile(state, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := breaking()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(out, "cc/state/v1/state.proto") {
		t.Fatalf("buf breaking after renumbering %q: %v\n%s\nwant a failure naming state.proto", src[loc[0]:loc[1]], err, out)
	}
	t.Logf("renumbering %q: %s", src[loc[0]:loc[1]], strings.TrimSpace(out))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
