package ctl

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/secprofile"
	"github.com/containercodes/cc/internal/testing/testcluster"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestApplySecurityOpt(t *testing.T) {
	files := map[string][]byte{"p.json": []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), "bad.json": []byte(`{"defaultAction":1}`)}
	read := func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, errors.New("no such file")
	}
	p := &ccv1.SecurityProfile{}
	for _, o := range []string{"seccomp=p.json", "no-new-privileges=false"} {
		if err := applySecurityOpt(p, o, read); err != nil {
			t.Fatal(err)
		}
	}
	if p.Seccomp != ccv1.SeccompMode_SECCOMP_MODE_CUSTOM || string(p.SeccompProfile) != string(files["p.json"]) || !p.AllowNewPrivileges {
		t.Errorf("profile %v", p)
	}
	for _, o := range []string{"seccomp:unconfined", "no-new-privileges"} {
		if err := applySecurityOpt(p, o, read); err != nil {
			t.Fatal(err)
		}
	}
	if p.Seccomp != ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED || p.SeccompProfile != nil || p.AllowNewPrivileges {
		t.Errorf("profile %v", p)
	}
	for o, want := range map[string]string{
		"seccomp=bad.json":        "not a profile in JSON",
		"seccomp=missing.json":    "no such file",
		"no-new-privileges=maybe": "use true or false",
		"apparmor=x":              "use seccomp=",
	} {
		if err := applySecurityOpt(&ccv1.SecurityProfile{}, o, read); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", o, err, want)
		}
	}
}

func TestEffectiveSecurityOfJobAttempt(t *testing.T) {
	e := effectiveSecurity(&ccv1.ContainerSpec{Sandbox: &ccv1.JobSandbox{JobId: "j"}, Security: &ccv1.SecurityProfile{Privileged: true}})
	if e.Privileged || len(e.Capabilities) != 0 || !e.NoNewPrivileges || e.Userns != "private" {
		t.Errorf("job attempt: %+v", e)
	}
}

// Against a real server: `run --privileged` is refused until the cluster
// allows it; the profile flags reach the spec and inspect shows the
// effective profile.
func TestRunSecurityFlags(t *testing.T) {
	srv := testcluster.Start(t)
	t.Setenv("CC_CONFIG", filepath.Join(t.TempDir(), "config.json"))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, srv.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--addr", srv.Addr(), "--token", srv.Token, "--ca-cert", caFile}
	if r := runCtl(admin, "run", "--privileged", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "--allow-privileged=true") {
		t.Fatalf("run --privileged with the setting off: %+v", r)
	}
	if r := runCtl(admin, "cluster", "settings", "--allow-privileged=true"); r.code != 0 || !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "Allow privileged: true") {
		t.Fatalf("cluster settings --allow-privileged=true: %+v", r)
	}
	// Allowed now: what stops it is that no node has joined.
	if r := runCtl(admin, "run", "--privileged", "busybox", "true"); strings.Contains(r.stderr, "privileged") {
		t.Fatalf("run --privileged with the setting on: %+v", r)
	}
	if r := runCtl(admin, "run", "--cap-add", "WIZARDRY", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "unknown") {
		t.Errorf("run --cap-add WIZARDRY: %+v", r)
	}
}

// inspect adds the effective profile to the container's JSON.
func TestPrintInspect(t *testing.T) {
	var out strings.Builder
	app := &cli.App{Writer: &out}
	c := cli.NewContext(app, flag.NewFlagSet("x", flag.ContinueOnError), nil)
	ct := &ccv1.Container{Id: "abc", Name: "box", Spec: &ccv1.ContainerSpec{Image: "busybox",
		Resources: &ccv1.ContainerResources{DiskBytes: 1 << 30},
		Security:  &ccv1.SecurityProfile{CapDrop: []string{"NET_RAW"}, CapAdd: []string{"CAP_NET_ADMIN"}, Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE, AllowNewPrivileges: true}}}
	if err := printInspect(c, ct); err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID   string `json:"id"`
		Spec struct {
			Resources struct {
				DiskBytes string `json:"disk_bytes"`
			} `json:"resources"`
		} `json:"spec"`
		Effective secprofile.Effective `json:"effective_security"`
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("inspect: %v: %s", err, out.String())
	}
	e := got.Effective
	if got.ID != "abc" || got.Spec.Resources.DiskBytes != "1073741824" || e.Userns != "private" || e.NoNewPrivileges || e.Seccomp != "default" ||
		!slices.Contains(e.Capabilities, "CAP_NET_ADMIN") || slices.Contains(e.Capabilities, "CAP_NET_RAW") {
		t.Errorf("inspect: %+v\n%s", got, out.String())
	}
}

// securityContext parses args with the security flags of service update.
func securityContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	for _, f := range securityFlags(true) {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(&cli.App{}, fs, nil)
}

// service update changes the stored profile: an added capability leaves
// the dropped list, --disk 0 removes the limit, --privileged=false clears.
func TestApplySecurityFlagsUpdate(t *testing.T) {
	spec := &ccv1.ContainerSpec{Resources: &ccv1.ContainerResources{DiskBytes: 1 << 30},
		Security: &ccv1.SecurityProfile{CapDrop: []string{"CAP_NET_RAW", "CAP_KILL"}, Privileged: true}}
	c := securityContext(t, "--cap-add", "net_raw", "--cap-drop", "SYS_CHROOT,chown", "--disk", "0", "--privileged=false", "--userns", "private")
	if err := applySecurityFlags(c, spec); err != nil {
		t.Fatal(err)
	}
	p := spec.Security
	if spec.Resources != nil || p.Privileged || p.Userns != ccv1.UsernsMode_USERNS_MODE_PRIVATE ||
		!slices.Equal(p.CapAdd, []string{"CAP_NET_RAW"}) || !slices.Equal(p.CapDrop, []string{"CAP_KILL", "CAP_SYS_CHROOT", "CAP_CHOWN"}) {
		t.Errorf("spec %v", spec)
	}
	for args, want := range map[string][]string{
		"--disk 1m":           {"--disk", "1m"},
		"use host or private": {"--userns", "guest"},
		"unknown":             {"--cap-drop", "NOPE"},
	} {
		if err := applySecurityFlags(securityContext(t, want...), &ccv1.ContainerSpec{}); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args, "--disk 1m")) {
			t.Errorf("%v: %v", want, err)
		}
	}
}
