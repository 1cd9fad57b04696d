package sysunit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

func TestQuoteArgs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"/usr/bin/x", "--data-dir", "/var/lib/x"}, "/usr/bin/x --data-dir /var/lib/x"},
		{[]string{"/usr/bin/x", "--config", "/etc/my dir/x.toml"}, `/usr/bin/x --config "/etc/my dir/x.toml"`},
		{[]string{"/x", "a$b", "50%", `q"\`}, `/x a$$b 50%% "q\"\\"`},
	} {
		if got := quoteArgs(tc.in); got != tc.want {
			t.Errorf("quoteArgs(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// On a host where systemd is not the init, install writes the unit and
// says how to start the program; --now fails after writing it, saying
// why; start needs systemd and says so.
func TestInstallWithoutSystemd(t *testing.T) {
	saved := booted
	t.Cleanup(func() { booted = saved })
	booted = func() bool { return false }
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog := Program{
		Name: "cc-test",
		Prepare: func(c *ucli.Context, bin string) (Unit, []string, error) {
			return Unit{Name: "cc-test", Description: "test", ExecStart: []string{bin, "--data-dir", "/var/lib/cc-test"}}, []string{"a note"}, nil
		},
		DataDir: func(*ucli.Context) (string, error) { return dir, nil },
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		app := &ucli.App{Name: "cc-test", Writer: &out, ErrWriter: &out, Commands: Commands(prog, nil)}
		err := app.Run(append([]string{"cc-test"}, args...))
		return out.String(), err
	}
	out, err := run("install", "--unit-dir", dir, "--bin", bin)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	unit := filepath.Join(dir, "cc-test.service")
	for _, want := range []string{"Wrote " + unit, "a note", "systemd is not running on this host", "systemctl daemon-reload && systemctl enable --now cc-test", bin + " --data-dir /var/lib/cc-test"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	if err := Verify(unit); err != nil {
		t.Error(err)
	}
	os.Remove(unit)
	out, err = run("install", "--now", "--unit-dir", dir, "--bin", bin)
	if err == nil || !strings.Contains(err.Error(), "--now: systemd is not running on this host") || !strings.Contains(err.Error(), "the unit is written") {
		t.Fatalf("install --now: %v\n%s", err, out)
	}
	if _, err := os.Stat(unit); err != nil {
		t.Fatalf("install --now did not write the unit: %v", err)
	}
	if _, err := run("start"); err == nil || !strings.Contains(err.Error(), "systemd is not running") {
		t.Fatalf("start: %v", err)
	}
	out, err = run("uninstall", "--unit-dir", dir)
	if err != nil || !strings.Contains(out, "Removed "+unit) {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	if _, err := run("install", "--unit-dir", dir, "--bin", filepath.Join(dir, "nothing")); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Fatalf("install of a missing binary: %v", err)
	}
}
