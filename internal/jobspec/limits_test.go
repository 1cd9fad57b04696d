package jobspec_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

const gib = 1 << 30

func res(memBytes, cpuMillis, pids int64) *ccv1.JobSpec {
	return &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{MemoryBytes: memBytes, CpuMillis: cpuMillis, Pids: pids}}
}

// refused checks that Normalize refuses spec with an *InvalidError that
// holds every text.
func refused(t *testing.T, spec *ccv1.JobSpec, caps jobspec.Caps, texts ...string) {
	t.Helper()
	got, err := jobspec.Normalize(spec, caps)
	var inv *jobspec.InvalidError
	if !errors.As(err, &inv) || got != nil {
		t.Fatalf("Normalize = %v, %v; want an *InvalidError", got, err)
	}
	for _, text := range texts {
		if !strings.Contains(err.Error(), text) {
			t.Fatalf("error %q, want it to hold %q", err, text)
		}
	}
}

func TestNormalizeCapsLimits(t *testing.T) {
	node := func(cpu, mem int64) *ccv1.Node {
		return &ccv1.Node{Resources: &ccv1.Resources{CpuMillis: cpu, MemoryBytes: mem}}
	}
	nodes := []*ccv1.Node{node(8000, 16*gib), node(16000, 8*gib)}
	set := func(mem, cpu, pids int64) *ccv1.LimitSettings {
		return &ccv1.LimitSettings{MaxMemoryBytes: proto.Int64(mem), MaxCpuMillis: proto.Int64(cpu), MaxPids: proto.Int64(pids)}
	}
	tests := []struct {
		name  string
		spec  *ccv1.JobSpec
		caps  jobspec.Caps
		texts []string
	}{
		{"pids over the hard cap, no settings", res(0, 0, 1_000_000), jobspec.Caps{},
			[]string{"pids 1000000 is above the cluster's cap of 32768 (ccctl cluster settings --max-pids"}},
		{"pids 2^40", res(0, 0, 1<<40), jobspec.Caps{}, []string{"cap of 32768"}},
		{"pids over the setting", res(0, 0, 2000), jobspec.CapsOf(set(0, 0, 1000), nil), []string{"pids 2000 is above the cluster's cap of 1000"}},
		{"memory over the setting", res(4<<40, 0, 0), jobspec.CapsOf(set(64*gib, 0, 0), nil),
			[]string{"memory 4TiB is above the cluster's cap of 64GiB (ccctl cluster settings --max-memory)"}},
		{"memory over the largest node", res(4<<40, 0, 0), jobspec.CapsOf(nil, nodes),
			[]string{"memory 4TiB is above the cluster's cap of 16GiB, what its largest node has", "--max-memory"}},
		{"memory over the node, under the setting", res(32*gib, 0, 0), jobspec.CapsOf(set(64*gib, 0, 0), nodes),
			[]string{"cap of 16GiB, what its largest node has"}},
		{"cpus over the largest node", res(0, 1_000_000, 0), jobspec.CapsOf(nil, nodes),
			[]string{"cpus 1000 is above the cluster's cap of 16, what its largest node has", "--max-cpus"}},
		{"cpus over the setting", res(0, 4000, 0), jobspec.CapsOf(set(0, 2500, 0), nodes),
			[]string{"cpus 4 is above the cluster's cap of 2.5 (ccctl cluster settings --max-cpus)"}},
		{"all three", res(4<<40, 1_000_000, 1<<40), jobspec.CapsOf(nil, nodes), []string{"memory 4TiB", "cpus 1000", "pids 1099511627776"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refused(t, tt.spec, tt.caps, tt.texts...) })
	}

	// At the caps is fine, and a default above a cap is lowered to it.
	caps := jobspec.CapsOf(set(256<<20, 500, 100), nodes)
	got, err := jobspec.Normalize(res(0, 0, 0), caps)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Resources; r.MemoryBytes != 256<<20 || r.CpuMillis != 500 || r.Pids != 100 {
		t.Fatalf("defaults under caps: %v", r)
	}
	if _, err := jobspec.Normalize(res(16*gib, 16000, 32768), jobspec.CapsOf(nil, nodes)); err != nil {
		t.Fatalf("at the caps: %v", err)
	}
}

func TestNormalizeBoundsSizes(t *testing.T) {
	many := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	labels := map[string]string{}
	for i := range 65 {
		labels[strings.Repeat("k", i+1)] = "v"
	}
	tests := []struct {
		name string
		spec *ccv1.JobSpec
		text string
	}{
		{"env entries", &ccv1.JobSpec{Image: "busybox", Env: many(257, "A=1")}, "env: 257 entries, at most 256"},
		{"env entry size", &ccv1.JobSpec{Image: "busybox", Env: []string{"BIG=" + strings.Repeat("x", 32<<10)}}, "env BIG: 32772 bytes, at most 32768 (32KiB) an entry"},
		{"args", &ccv1.JobSpec{Image: "busybox", Command: many(257, "x")}, "command: 257 arguments, at most 256"},
		{"args size", &ccv1.JobSpec{Image: "busybox", Command: many(2, strings.Repeat("x", 65<<10))}, "command: 133120 bytes of arguments, at most 131072 (128KiB)"},
		{"labels", &ccv1.JobSpec{Image: "busybox", Labels: labels}, "labels: 65, at most 64"},
		{"label value", &ccv1.JobSpec{Image: "busybox", Labels: map[string]string{"k": strings.Repeat("v", 257)}}, "a value at most 256"},
		{"priority high", &ccv1.JobSpec{Image: "busybox", Priority: 1001}, "priority 1001: between -1000 and 1000"},
		{"priority low", &ccv1.JobSpec{Image: "busybox", Priority: -1 << 31}, "priority -2147483648: between -1000 and 1000"},
		{"workdir", &ccv1.JobSpec{Image: "busybox", Workdir: "/" + strings.Repeat("d", 4096)}, "workdir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refused(t, tt.spec, jobspec.Caps{}, tt.text) })
	}
	ok := &ccv1.JobSpec{Image: "busybox", Env: many(256, "A=1"), Command: many(256, "x"), Priority: -1000}
	if _, err := jobspec.Normalize(ok, jobspec.Caps{}); err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
}

// A job reserves what it may use: its limits, whatever reservation it
// asks for, in the stored spec and in its attempts' container spec, also
// for a record stored with a smaller reservation.
func TestJobReservesItsLimits(t *testing.T) {
	in := &ccv1.JobSpec{Image: "busybox", Resources: &ccv1.ContainerResources{MemoryBytes: 4 * gib, MemoryReservationBytes: 1, CpuMillis: 2000, CpuReservationMillis: 1}}
	got, err := jobspec.Normalize(in, jobspec.Caps{})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Resources; r.MemoryReservationBytes != 4*gib || r.CpuReservationMillis != 2000 {
		t.Fatalf("stored reservations: %v", r)
	}
	a := jobspec.AttemptSpec(&ccv1.Job{Id: "j", Spec: in})
	if r := a.Resources; r.MemoryReservationBytes != 4*gib || r.CpuReservationMillis != 2000 || r.MemoryBytes != 4*gib {
		t.Fatalf("attempt reservations: %v", r)
	}
	if in.Resources.MemoryReservationBytes != 1 {
		t.Fatal("AttemptSpec changed the job's spec")
	}
}

func TestRefuseRoot(t *testing.T) {
	for user, root := range map[string]bool{
		"0": true, "0:0": true, "00": true, "1000:0": true, "0:1000": true, "root": true,
		"": false, "1000": false, "1000:1000": false, "65534:65534": false,
	} {
		err := jobspec.RefuseRoot(&ccv1.JobSpec{User: user})
		if (err != nil) != root {
			t.Errorf("RefuseRoot(%q) = %v, want refused %v", user, err, root)
		}
		if err != nil && !strings.Contains(err.Error(), "only an admin token may run a job as root") {
			t.Errorf("RefuseRoot(%q) says %q", user, err)
		}
	}
	// "root" is refused for everyone: a job's user is numeric.
	refused(t, &ccv1.JobSpec{Image: "busybox", User: "root"}, jobspec.Caps{}, `user "root": give a numeric uid`)
}
