package ctl

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/testing/testcluster"
)

// Against a real server: `ccctl version` shows ccctl's version and the
// server's; `ccctl status` shows the server's readiness checks.
func TestVersionAndStatusChecks(t *testing.T) {
	srv := testcluster.Start(t)
	t.Setenv("CC_CONFIG", filepath.Join(t.TempDir(), "config.json"))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--addr", srv.Addr(), "--token", srv.Token, "--ca-cert", caFile}

	r := runCtl(admin, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "Client: "+buildinfo.Version) || !strings.Contains(r.stdout, srv.Config.Name) {
		t.Fatalf("version: %+v", r)
	}
	r = runCtl(admin, "version", "-o", "json")
	var v versionOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Client != buildinfo.Version || len(v.Servers) != 1 || v.Servers[0].Version != buildinfo.Version {
		t.Fatalf("version -o json: %+v", r)
	}
	// No server: the client's version, and the error.
	r = runCtl([]string{"--addr", "127.0.0.1:1", "--token", srv.Token, "--ca-cert", caFile, "--timeout", "2s"}, "version")
	if r.code == 0 || !strings.Contains(r.stdout, "Client: ") || r.stderr == "" {
		t.Fatalf("version without a server: %+v", r)
	}

	r = runCtl(admin, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "raft ok, leader ok, caught_up ok, disk ok, tls ok") || !strings.Contains(r.stdout, "READY") {
		t.Fatalf("status: %+v", r)
	}
	if r := runCtl(admin, "server", "ls"); r.code != 0 || !strings.Contains(r.stdout, "VERSION") || !strings.Contains(r.stdout, buildinfo.Version) {
		t.Fatalf("server ls: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	r := runCtl(nil, "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "complete -o bashdefault -o default -F _ccctl_complete ccctl") {
		t.Fatalf("bash: %+v", r)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(r.stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v %s", err, out)
		}
	}
	if r := runCtl(nil, "completion", "zsh"); r.code != 0 || !strings.Contains(r.stdout, "compdef _ccctl_complete ccctl") {
		t.Fatalf("zsh: %+v", r)
	}
	if r := runCtl(nil, "completion", "fish"); r.code != 0 || !strings.Contains(r.stdout, "complete -c ccctl") || !strings.Contains(r.stdout, "submit") {
		t.Fatalf("fish: %+v", r)
	}
	if r := runCtl(nil, "completion", "tcsh"); r.code == 0 || !strings.Contains(r.stderr, "bash, zsh and fish") {
		t.Fatalf("tcsh: %+v", r)
	}
	// What the scripts ask: the words after those typed. urfave/cli reads
	// the word before the request from os.Args.
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	os.Args = []string{"ccctl", "job", "--generate-bash-completion"}
	if r := runCtl(nil, "job", "--generate-bash-completion"); r.code != 0 || !strings.Contains(r.stdout, "submit\n") || !strings.Contains(r.stdout, "wait\n") {
		t.Fatalf("job completions: %+v", r)
	}
	os.Args = []string{"ccctl", "job", "submit", "--qu", "--generate-bash-completion"}
	if r := runCtl(nil, "job", "submit", "--qu", "--generate-bash-completion"); r.code != 0 || !strings.Contains(r.stdout, "--queue") {
		t.Fatalf("flag completions: %+v", r)
	}
}
