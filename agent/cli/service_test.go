package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/sysunit"
)

// install writes the join address and token to a private environment
// file and a unit that systemd-analyze accepts; its help explains itself.
func TestInstallUnit(t *testing.T) {
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	units, env, data := filepath.Join(dir, "units"), filepath.Join(dir, "etc", "agent.env"), filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfg, []byte("edge_http_addr = \":8080\"\nlabel = [\"zone=a\"]\n"), 0o644)
	var out bytes.Buffer
	args := []string{"cc-agent", "install", "--join", "10.0.0.5:7443", "--token", "CCTKN-1-abc-def", "--config", cfg, "--data-dir", data, "--env-file", env, "--unit-dir", units, "--bin", bin}
	if code := Main(args, &out, &out); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out.String())
	}
	unit := filepath.Join(units, "cc-agent.service")
	body, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=" + bin + " --data-dir " + data + " --config " + cfg, "After=network-online.target containerd.service", "Wants=network-online.target containerd.service",
		"EnvironmentFile=-" + env, "Restart=on-failure", "LimitNOFILE="} {
		if !strings.Contains(string(body), want) {
			t.Errorf("unit lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "CCTKN") || strings.Contains(string(body), "ProtectSystem=") {
		t.Errorf("the unit holds the token or a private mount namespace:\n%s", body)
	}
	if err := sysunit.Verify(unit); err != nil {
		t.Error(err)
	}
	e, err := os.ReadFile(env)
	if fi, _ := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(string(e), "CC_JOIN_TOKEN=CCTKN-1-abc-def") || !strings.Contains(string(e), "CC_JOIN=10.0.0.5:7443") {
		t.Fatalf("env file: %s %v", e, err)
	}

	// A bad config file is refused with its line.
	os.WriteFile(cfg, []byte("edge_http_addr = \":8080\"\ncpus = \"many\"\n"), 0o644)
	out.Reset()
	if code := Main(args, &out, &out); code == 0 || !strings.Contains(out.String(), "line 2: cpus") {
		t.Fatalf("install with a bad config: exit %d\n%s", code, out.String())
	}
	// No token for a node that has not joined: refused.
	out.Reset()
	if code := Main([]string{"cc-agent", "install", "--data-dir", data, "--unit-dir", units, "--bin", bin}, &out, &out); code == 0 || !strings.Contains(out.String(), "--join ADDR --token TOKEN") {
		t.Fatalf("install without a token: exit %d\n%s", code, out.String())
	}

	out.Reset()
	if code := Main([]string{"cc-agent", "install", "--help"}, &out, &out); code != 0 {
		t.Fatal(out.String())
	}
	for _, want := range []string{"systemd unit", "--join", "--token", "--now", "containerd", "Without systemd"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("install --help lacks %q:\n%s", want, out.String())
		}
	}
}
