package secprofile

import (
	"slices"
	"strings"
	"testing"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestCaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *ccv1.SecurityProfile
		has  []string
		lack []string
		n    int
	}{
		{"default", nil, []string{"CAP_NET_RAW", "CAP_CHOWN"}, []string{"CAP_SYS_ADMIN"}, len(DefaultCaps)},
		{"drop", &ccv1.SecurityProfile{CapDrop: []string{"net_raw"}}, []string{"CAP_CHOWN"}, []string{"CAP_NET_RAW"}, len(DefaultCaps) - 1},
		{"add", &ccv1.SecurityProfile{CapAdd: []string{"CAP_SYS_ADMIN", "NET_ADMIN"}}, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_KILL"}, nil, len(DefaultCaps) + 2},
		{"drop all, add one", &ccv1.SecurityProfile{CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}, []string{"CAP_NET_BIND_SERVICE"}, []string{"CAP_CHOWN"}, 1},
		{"add all", &ccv1.SecurityProfile{CapAdd: []string{"all"}}, []string{"CAP_SYS_ADMIN", "CAP_BPF"}, nil, len(KnownCaps)},
		{"privileged", &ccv1.SecurityProfile{Privileged: true, CapDrop: []string{"ALL"}}, []string{"CAP_SYS_ADMIN"}, nil, len(KnownCaps)},
	} {
		got := Caps(tc.p)
		if len(got) != tc.n {
			t.Errorf("%s: %d capabilities %v, want %d", tc.name, len(got), got, tc.n)
		}
		for _, c := range tc.has {
			if !slices.Contains(got, c) {
				t.Errorf("%s: %v lacks %s", tc.name, got, c)
			}
		}
		for _, c := range tc.lack {
			if slices.Contains(got, c) {
				t.Errorf("%s: %v has %s", tc.name, got, c)
			}
		}
	}
	if _, err := NormalizeCap("NET_WIZARD"); err == nil {
		t.Error("an unknown capability was taken")
	}
}

func TestEffectiveAndPrivilege(t *testing.T) {
	e := EffectiveOf(nil)
	if e.Seccomp != "default" || !e.NoNewPrivileges || e.Userns != "host" || e.Privileged {
		t.Errorf("default: %+v", e)
	}
	e = EffectiveOf(&ccv1.SecurityProfile{Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE, AllowNewPrivileges: true, Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM})
	if e.Seccomp != "custom" || e.NoNewPrivileges || e.Userns != "private" {
		t.Errorf("custom: %+v", e)
	}
	e = EffectiveOf(&ccv1.SecurityProfile{Privileged: true})
	if e.Seccomp != "unconfined" || e.NoNewPrivileges || !e.Privileged || len(e.Capabilities) != len(KnownCaps) {
		t.Errorf("privileged: %+v", e)
	}
	if _, ok := NeedsPrivilege(&ccv1.SecurityProfile{CapAdd: []string{"ALL"}}); ok {
		t.Error("cap-add ALL needs the privileged setting")
	}
	for _, p := range []*ccv1.SecurityProfile{{Privileged: true}, {Seccomp: ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED}} {
		if _, ok := NeedsPrivilege(p); !ok {
			t.Errorf("%v does not need privilege", p)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		p    *ccv1.SecurityProfile
		want string
	}{
		{&ccv1.SecurityProfile{CapDrop: []string{"bogus"}}, `capability "bogus": unknown`},
		{&ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM}, "seccomp profile: empty"},
		{&ccv1.SecurityProfile{SeccompProfile: []byte("{}")}, "the mode is not custom"},
		{&ccv1.SecurityProfile{Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE, Privileged: true}, "--privileged needs the host's user namespace"},
		{&ccv1.SecurityProfile{Userns: 9}, "userns: unknown mode"},
	} {
		probs := Check(tc.p)
		if len(probs) == 0 || !strings.Contains(strings.Join(probs, "; "), tc.want) {
			t.Errorf("%v: %v, want %q", tc.p, probs, tc.want)
		}
	}
	if probs := Check(&ccv1.SecurityProfile{CapAdd: []string{"NET_ADMIN"}, Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE}); len(probs) > 0 {
		t.Errorf("a good profile: %v", probs)
	}
}

func TestParseSeccomp(t *testing.T) {
	docker := `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
	  "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
	  "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","comment":"io"},
	              {"name":"personality","action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}],"includes":{},"excludes":{}}]}`
	p, err := ParseSeccomp([]byte(docker))
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" || len(p.Architectures) != 3 || len(p.Syscalls) != 2 || p.Syscalls[1].Names[0] != "personality" || len(p.Syscalls[1].Args) != 1 {
		t.Errorf("parsed %+v", p)
	}
	for in, want := range map[string]string{
		``:                                     "empty",
		`[]`:                                   "not a profile in JSON",
		`{"defaultAction":"SCMP_ACT_ALLOW"}{}`: "more than one JSON value",
		`{"defaultAction":"SCMP_ACT_ALLOW","bogus":1}`:                                                                                    "unknown field",
		`{"defaultAction":"SCMP_ACT_NOTIFY"}`:                                                                                             "defaultAction",
		`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["x86"]}`:                                                                      "architecture",
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}`:                                                     "names no system call",
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`: "includes or excludes",
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"LIKE"}]}]}`:      "operator",
	} {
		if _, err := ParseSeccomp([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
