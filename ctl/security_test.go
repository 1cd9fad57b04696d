package ctl

import (
	"errors"
	"strings"
	"testing"

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
