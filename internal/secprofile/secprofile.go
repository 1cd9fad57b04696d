// Package secprofile is a container's security profile's one home: the
// default capability set, the capability names, the effective profile of
// a spec (what the agent applies and `ccctl inspect` shows), the checks of
// a profile and the parsing of seccomp profiles (OCI or Docker JSON).
package secprofile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultCaps is the capability set of a container that changes none:
// containerd's default (the agent's test checks they agree).
var DefaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// KnownCaps are the Linux capabilities, in number order: what ALL means.
var KnownCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// All is the capability name that stands for every capability.
const All = "ALL"

// MaxSeccompProfileBytes bounds a seccomp profile's JSON.
const MaxSeccompProfileBytes = 256 << 10

// NormalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN", and "all" into ALL. An unknown name is an error.
func NormalizeCap(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == All {
		return All, nil
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(KnownCaps, n) {
		return "", fmt.Errorf("capability %q: unknown; use a name like NET_ADMIN (see capabilities(7)) or ALL", name)
	}
	return n, nil
}

// Caps is the effective capability set of a profile: the default set,
// less cap_drop, plus cap_add (every capability when privileged). ALL
// in cap_drop empties the set before the adds; ALL in cap_add gives
// every capability. Unknown names are skipped (Check refuses them).
func Caps(p *ccv1.SecurityProfile) []string {
	if p.GetPrivileged() {
		return slices.Clone(KnownCaps)
	}
	set := map[string]bool{}
	for _, c := range DefaultCaps {
		set[c] = true
	}
	for _, d := range p.GetCapDrop() {
		n, err := NormalizeCap(d)
		if err != nil {
			continue
		}
		if n == All {
			clear(set)
			continue
		}
		delete(set, n)
	}
	for _, a := range p.GetCapAdd() {
		n, err := NormalizeCap(a)
		if err != nil {
			continue
		}
		if n == All {
			for _, c := range KnownCaps {
				set[c] = true
			}
			continue
		}
		set[n] = true
	}
	out := []string{}
	for _, c := range KnownCaps { // in number order
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

// Effective is the profile a container runs with, as `ccctl inspect`
// shows it.
type Effective struct {
	Capabilities []string `json:"capabilities"`
	// Seccomp is "default", "unconfined" or "custom".
	Seccomp         string `json:"seccomp"`
	NoNewPrivileges bool   `json:"no_new_privileges"`
	// Userns is "host" or "private".
	Userns     string `json:"userns"`
	Privileged bool   `json:"privileged"`
}

// EffectiveOf is the effective profile of a plain container's spec
// (a job sandbox's is fixed: see the agent's sandbox).
func EffectiveOf(p *ccv1.SecurityProfile) Effective {
	e := Effective{
		Capabilities:    Caps(p),
		Seccomp:         "default",
		NoNewPrivileges: !p.GetAllowNewPrivileges() && !p.GetPrivileged(),
		Userns:          "host",
		Privileged:      p.GetPrivileged(),
	}
	switch {
	case p.GetPrivileged() || p.GetSeccomp() == ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED:
		e.Seccomp = "unconfined"
	case p.GetSeccomp() == ccv1.SeccompMode_SECCOMP_MODE_CUSTOM:
		e.Seccomp = "custom"
	}
	if p.GetUserns() == ccv1.UsernsMode_USERNS_MODE_PRIVATE {
		e.Userns = "private"
	}
	return e
}

// NeedsPrivilege reports whether a profile asks for what only an admin
// may have, and only where the cluster allows it: privileged, or no
// seccomp filter. It returns what asks for it.
func NeedsPrivilege(p *ccv1.SecurityProfile) (string, bool) {
	switch {
	case p.GetPrivileged():
		return "--privileged", true
	case p.GetSeccomp() == ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED:
		return "--security-opt seccomp=unconfined", true
	}
	return "", false
}

// Check lists what is wrong with a profile: unknown capabilities, a
// seccomp mode without or with a stray profile, an invalid profile, a
// private user namespace with privileged.
func Check(p *ccv1.SecurityProfile) []string {
	if p == nil {
		return nil
	}
	var probs []string
	for _, c := range append(slices.Clone(p.GetCapAdd()), p.GetCapDrop()...) {
		if _, err := NormalizeCap(c); err != nil {
			probs = append(probs, err.Error())
		}
	}
	switch p.GetSeccomp() {
	case ccv1.SeccompMode_SECCOMP_MODE_CUSTOM:
		if _, err := ParseSeccomp(p.GetSeccompProfile()); err != nil {
			probs = append(probs, err.Error())
		}
	case ccv1.SeccompMode_SECCOMP_MODE_UNSPECIFIED, ccv1.SeccompMode_SECCOMP_MODE_DEFAULT, ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED:
		if len(p.GetSeccompProfile()) > 0 {
			probs = append(probs, "seccomp: a profile is given but the mode is not custom; use seccomp=PROFILE.json")
		}
	default:
		probs = append(probs, fmt.Sprintf("seccomp: unknown mode %d; use default, unconfined or a profile", p.GetSeccomp()))
	}
	switch p.GetUserns() {
	case ccv1.UsernsMode_USERNS_MODE_UNSPECIFIED, ccv1.UsernsMode_USERNS_MODE_HOST:
	case ccv1.UsernsMode_USERNS_MODE_PRIVATE:
		if p.GetPrivileged() {
			probs = append(probs, "userns: --privileged needs the host's user namespace; drop --userns private or --privileged")
		}
	default:
		probs = append(probs, fmt.Sprintf("userns: unknown mode %d; use host or private", p.GetUserns()))
	}
	return probs
}

// seccompActions are the actions a profile may name (SCMP_ACT_NOTIFY
// needs a listener the agent does not run).
var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog,
}

var seccompOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

// seccompFile is a profile in the OCI format or Docker's (archMap, name).
type seccompFile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures"`
	ArchMap          []seccompArchMap         `json:"archMap"`
	Flags            []specs.LinuxSeccompFlag `json:"flags"`
	ListenerPath     string                   `json:"listenerPath"`
	ListenerMetadata string                   `json:"listenerMetadata"`
	Syscalls         []seccompRule            `json:"syscalls"`
}

type seccompArchMap struct {
	Architecture     specs.Arch   `json:"architecture"`
	SubArchitectures []specs.Arch `json:"subArchitectures"`
}

type seccompRule struct {
	Names    []string                 `json:"names"`
	Name     string                   `json:"name"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args"`
	Comment  string                   `json:"comment"`
	Includes json.RawMessage          `json:"includes"`
	Excludes json.RawMessage          `json:"excludes"`
}

// ParseSeccomp reads a seccomp profile: the JSON of the OCI runtime
// spec's linux.seccomp, or Docker's profile format (archMap; rules with
// includes or excludes are refused: resolve them first). The error says
// what is wrong.
func ParseSeccomp(b []byte) (*specs.LinuxSeccomp, error) {
	if len(b) == 0 {
		return nil, errors.New("seccomp profile: empty; give a JSON profile (OCI or Docker format)")
	}
	if len(b) > MaxSeccompProfileBytes {
		return nil, fmt.Errorf("seccomp profile: %d bytes, at most %d", len(b), MaxSeccompProfileBytes)
	}
	var f seccompFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("seccomp profile: not a profile in JSON (OCI or Docker format): %w", err)
	}
	if dec.More() {
		return nil, errors.New("seccomp profile: more than one JSON value")
	}
	if !slices.Contains(seccompActions, f.DefaultAction) {
		return nil, fmt.Errorf("seccomp profile: defaultAction %q: use one of %s", f.DefaultAction, actionNames())
	}
	if f.ListenerPath != "" || f.ListenerMetadata != "" {
		return nil, errors.New("seccomp profile: listenerPath is not supported (the agent runs no seccomp agent)")
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:   f.DefaultAction,
		DefaultErrnoRet: f.DefaultErrnoRet,
		Architectures:   slices.Clone(f.Architectures),
		Flags:           f.Flags,
	}
	for _, a := range f.ArchMap {
		out.Architectures = append(out.Architectures, a.Architecture)
		out.Architectures = append(out.Architectures, a.SubArchitectures...)
	}
	for _, a := range out.Architectures {
		if !strings.HasPrefix(string(a), "SCMP_ARCH_") {
			return nil, fmt.Errorf("seccomp profile: architecture %q: use names like SCMP_ARCH_X86_64", a)
		}
	}
	for i, r := range f.Syscalls {
		if len(bytes.TrimSpace(r.Includes)) > 2 || len(bytes.TrimSpace(r.Excludes)) > 2 {
			return nil, fmt.Errorf("seccomp profile: syscalls[%d] has includes or excludes, which are not supported; resolve them into plain rules", i)
		}
		names := slices.Clone(r.Names)
		if r.Name != "" {
			names = append(names, r.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("seccomp profile: syscalls[%d] names no system call", i)
		}
		if !slices.Contains(seccompActions, r.Action) {
			return nil, fmt.Errorf("seccomp profile: syscalls[%d] action %q: use one of %s", i, r.Action, actionNames())
		}
		for _, a := range r.Args {
			if !slices.Contains(seccompOps, a.Op) {
				return nil, fmt.Errorf("seccomp profile: syscalls[%d] argument operator %q: use SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE or SCMP_CMP_MASKED_EQ", i, a.Op)
			}
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
	}
	return out, nil
}

func actionNames() string {
	var s []string
	for _, a := range seccompActions {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}
