package jobspec

import (
	"fmt"
	"strconv"
	"strings"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Bounds of every job and container spec, whatever the cluster settings.
const (
	// PidsHardCap is the most processes one job or container may have:
	// the default of the cluster's pids cap, and the most it may be set to.
	PidsHardCap int64 = 32768
	// MinMemoryBytes is the least memory limit a spec may set.
	MinMemoryBytes int64 = 4 << 20
	// MaxCPUMillis is the most CPU a spec may ask for (1000 cores).
	MaxCPUMillis int64 = 1_000_000

	// MaxEnv is the most env entries; MaxEnvEntryBytes the longest one.
	MaxEnv           = 256
	MaxEnvEntryBytes = 32 << 10
	// MaxArgs is the most command arguments; MaxArgsBytes their total size.
	MaxArgs      = 256
	MaxArgsBytes = 128 << 10
	// MaxLabels is the most labels of a job; MaxLabelKeyLen and
	// MaxLabelValueLen the longest key and value.
	MaxLabels        = 64
	MaxLabelKeyLen   = 128
	MaxLabelValueLen = 256
	// MinPriority and MaxPriority bound a job's priority.
	MinPriority = -1000
	MaxPriority = 1000
	// MaxWorkdirLen is the longest working directory.
	MaxWorkdirLen = 4096
)

// Caps are the most one job or container may ask for: the cluster's
// limit settings, and what its largest node has. The zero Caps cap only
// pids, at PidsHardCap.
type Caps struct {
	// MemoryBytes and CPUMillis are the settings' caps; 0: none set.
	MemoryBytes, CPUMillis int64
	// Pids is the settings' pids cap; 0: PidsHardCap.
	Pids int64
	// DiskBytes is the settings' cap of a container's disk limit; 0: none.
	DiskBytes int64
	// NodeMemoryBytes and NodeCPUMillis are what the largest node has;
	// 0: no node has said.
	NodeMemoryBytes, NodeCPUMillis int64
}

// CapsOf reads the caps from the cluster's limit settings and its nodes.
func CapsOf(st *ccv1.LimitSettings, nodes []*ccv1.Node) Caps {
	c := Caps{MemoryBytes: st.GetMaxMemoryBytes(), CPUMillis: st.GetMaxCpuMillis(), Pids: st.GetMaxPids(), DiskBytes: st.GetMaxDiskBytes()}
	for _, n := range nodes {
		c.NodeMemoryBytes = max(c.NodeMemoryBytes, n.GetResources().GetMemoryBytes())
		c.NodeCPUMillis = max(c.NodeCPUMillis, n.GetResources().GetCpuMillis())
	}
	return c
}

// memory and cpu are the caps in force: the lower of the setting and the
// largest node; 0: none.
func (c Caps) memory() int64 { return lowest(c.MemoryBytes, c.NodeMemoryBytes) }
func (c Caps) cpu() int64    { return lowest(c.CPUMillis, c.NodeCPUMillis) }

// lowest is the least of the positive values; 0 when none is.
func lowest(a, b int64) int64 {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

// capped is a default lowered to a cap (0: none), and never below floor.
func capped(def, limit, floor int64) int64 {
	if limit > 0 && def > limit {
		def = limit
	}
	return max(def, floor)
}

// short cuts a long value for an error message.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// pids is the pids cap in force.
func (c Caps) pids() int64 {
	if c.Pids <= 0 || c.Pids > PidsHardCap {
		return PidsHardCap
	}
	return c.Pids
}

// Check says which of the resources are above a cap, each naming the cap
// and how to change it. A zero limit (none, or the default) is not
// checked.
func (c Caps) Check(r *ccv1.ContainerResources) []string {
	var probs []string
	over := func(what, flag string, value, setCap, nodeCap int64, format func(int64) string) {
		asked := format(value)
		switch {
		case setCap > 0 && value > setCap && (nodeCap == 0 || setCap <= nodeCap):
			probs = append(probs, fmt.Sprintf("%s %s is above the cluster's cap of %s (ccctl cluster settings %s)", what, asked, format(setCap), flag))
		case nodeCap > 0 && value > nodeCap:
			probs = append(probs, fmt.Sprintf("%s %s is above the cluster's cap of %s, what its largest node has: no node could run it (see ccctl node ls; ccctl cluster settings %s sets a lower cap)", what, asked, format(nodeCap), flag))
		}
	}
	if m := r.GetMemoryBytes(); m > 0 {
		over("memory", "--max-memory", m, c.MemoryBytes, c.NodeMemoryBytes, FormatBytes)
	}
	if m := r.GetCpuMillis(); m > 0 {
		over("cpus", "--max-cpus", m, c.CPUMillis, c.NodeCPUMillis, FormatCPU)
	}
	if p := r.GetPids(); p > c.pids() {
		probs = append(probs, fmt.Sprintf("pids %d is above the cluster's cap of %d (ccctl cluster settings --max-pids, at most %d)", p, c.pids(), PidsHardCap))
	}
	if d := r.GetDiskBytes(); d > 0 {
		over("disk", "--max-disk", d, c.DiskBytes, 0, FormatBytes)
	}
	return probs
}

// FormatBytes writes a size the way ccctl reads it back: "4TiB", "512MiB",
// "1.5GiB", "100B".
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	v := float64(n)
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + units[i]
}

// FormatCPU writes thousandths of a core as cores: "16", "0.5", "1.25".
func FormatCPU(millis int64) string {
	return strconv.FormatFloat(float64(millis)/1000, 'f', -1, 64)
}

// CheckCommand says what is wrong with the size of a command and its
// environment: too many entries, or too large.
func CheckCommand(command, env []string) []string {
	var probs []string
	if len(command) > MaxArgs {
		probs = append(probs, fmt.Sprintf("command: %d arguments, at most %d", len(command), MaxArgs))
	}
	total := 0
	for _, a := range command {
		total += len(a)
	}
	if total > MaxArgsBytes {
		probs = append(probs, fmt.Sprintf("command: %d bytes of arguments, at most %d (%s)", total, MaxArgsBytes, FormatBytes(MaxArgsBytes)))
	}
	if len(env) > MaxEnv {
		probs = append(probs, fmt.Sprintf("env: %d entries, at most %d", len(env), MaxEnv))
	}
	for _, e := range env {
		if len(e) > MaxEnvEntryBytes {
			k, _, _ := strings.Cut(e, "=")
			if len(k) > 64 {
				k = k[:64] + "…"
			}
			probs = append(probs, fmt.Sprintf("env %s: %d bytes, at most %d (%s) an entry", k, len(e), MaxEnvEntryBytes, FormatBytes(MaxEnvEntryBytes)))
		}
	}
	return probs
}

// IsRoot says whether a job's user is uid 0 or gid 0 (root on the host:
// a job sandbox has no user namespace of its own).
func IsRoot(user string) bool {
	uid, gid, hasGID := strings.Cut(user, ":")
	zero := func(s string) bool {
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		return err == nil && v == 0 || s == "root"
	}
	return zero(uid) || hasGID && zero(gid)
}

// RefuseRoot refuses a job that runs as root, for a token that is not an
// admin's.
func RefuseRoot(s *ccv1.JobSpec) error {
	if !IsRoot(s.GetUser()) {
		return nil
	}
	return &InvalidError{Problems: []string{fmt.Sprintf("user %q: uid and gid 0 are root on the host, and only an admin token may run a job as root; leave user unset (65534:65534, nobody) or give a non-zero uid:gid such as 1000:1000", s.GetUser())}}
}
