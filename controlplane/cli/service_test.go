package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/sysunit"
)

// install writes a config file and a unit that systemd-analyze accepts;
// its help explains itself.
func TestInstallUnit(t *testing.T) {
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg, units, data := filepath.Join(dir, "etc", "controlplane.toml"), filepath.Join(dir, "units"), filepath.Join(dir, "data")
	code := Main([]string{"cc-controlplane", "install", "--bootstrap", "--config", cfg, "--data-dir", data, "--unit-dir", units, "--bin", bin}, &out, &out)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out.String())
	}
	unit := filepath.Join(units, "cc-controlplane.service")
	body, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=" + bin + " --config " + cfg, "ReadWritePaths=" + data, "Restart=on-failure", "LimitNOFILE=", "ProtectSystem=strict", "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("unit lacks %q:\n%s", want, body)
		}
	}
	if err := sysunit.Verify(unit); err != nil {
		t.Error(err)
	}
	c, err := config.Load(cfg)
	if err != nil || c.DataDir != data || !c.Bootstrap {
		t.Fatalf("the written config: %+v %v", c, err)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Fatalf("data dir: %v", err)
	}

	// A second install keeps the file and says the flags are not used.
	out.Reset()
	if code := Main([]string{"cc-controlplane", "install", "--config", cfg, "--data-dir", "/elsewhere", "--unit-dir", units, "--bin", bin}, &out, &out); code != 0 || !strings.Contains(out.String(), "--data-dir is not used") {
		t.Fatalf("second install: exit %d\n%s", code, out.String())
	}
	// Neither --bootstrap nor --join for a new file: refused.
	out.Reset()
	if code := Main([]string{"cc-controlplane", "install", "--config", filepath.Join(dir, "new.toml"), "--unit-dir", units, "--bin", bin}, &out, &out); code == 0 || !strings.Contains(out.String(), "--bootstrap") {
		t.Fatalf("install without bootstrap or join: exit %d\n%s", code, out.String())
	}

	out.Reset()
	if code := Main([]string{"cc-controlplane", "install", "--help"}, &out, &out); code != 0 {
		t.Fatal(out.String())
	}
	for _, want := range []string{"systemd unit", "--now", "--bootstrap", "--join", "Without systemd", "cc-controlplane status"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("install --help lacks %q:\n%s", want, out.String())
		}
	}
}
