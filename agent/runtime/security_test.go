package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containercodes/cc/internal/secprofile"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// secprofile's default set is containerd's.
func TestDefaultCapsAreContainerds(t *testing.T) {
	s, err := oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "x"), nil, &containers.Container{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(s.Process.Capabilities.Bounding)
	want := slices.Clone(secprofile.DefaultCaps)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("containerd's default capabilities %v, secprofile.DefaultCaps %v", got, want)
	}
}

func TestFilterOpts(t *testing.T) {
	apply := func(task Task) *oci.Spec {
		t.Helper()
		opts, err := filterOpts(task)
		if err != nil {
			t.Fatal(err)
		}
		s := &oci.Spec{Process: &specs.Process{NoNewPrivileges: true, Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
		for _, o := range opts {
			if err := o(context.Background(), nil, nil, s); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	s := apply(Task{ID: "a", Spec: &ccv1.ContainerSpec{}})
	if !s.Process.NoNewPrivileges || s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("default: no_new_privileges %v, seccomp %+v", s.Process.NoNewPrivileges, s.Linux.Seccomp)
	}
	s = apply(Task{ID: "a", Spec: &ccv1.ContainerSpec{Security: &ccv1.SecurityProfile{AllowNewPrivileges: true, Seccomp: ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED}}})
	if s.Process.NoNewPrivileges || s.Linux.Seccomp != nil {
		t.Errorf("unconfined: no_new_privileges %v, seccomp %+v", s.Process.NoNewPrivileges, s.Linux.Seccomp)
	}
	// A job sandbox ignores the profile.
	s = apply(Task{ID: "a", Spec: &ccv1.ContainerSpec{Sandbox: &ccv1.JobSandbox{JobId: "j"}, Security: &ccv1.SecurityProfile{AllowNewPrivileges: true, Privileged: true}}})
	if !s.Process.NoNewPrivileges || s.Linux.Seccomp == nil {
		t.Errorf("sandbox: no_new_privileges %v, seccomp %+v", s.Process.NoNewPrivileges, s.Linux.Seccomp)
	}
	s = apply(Task{ID: "a", Spec: &ccv1.ContainerSpec{Security: &ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM,
		SeccompProfile: []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`)}}})
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Errorf("custom: %+v", s.Linux.Seccomp)
	}
	if _, err := filterOpts(Task{ID: "a", Spec: &ccv1.ContainerSpec{Security: &ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM, SeccompProfile: []byte(`{`)}}}); err == nil {
		t.Error("a broken custom profile was taken")
	}
}

// run starts s, waits for it to exit and returns its exit code and output.
func run(t *testing.T, r *Runtime, s *ccv1.ContainerSpec) (code int32, out string) {
	t.Helper()
	id := start(t, r, s)
	o := waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_EXITED)
	stdout, stderr := logs(t, r, id, 0)
	return o.ExitCode, stdout + stderr
}

func TestCapabilitiesAndFilters(t *testing.T) {
	r, _ := newTestRuntime(t)
	withSec := func(p *ccv1.SecurityProfile, script string) *ccv1.ContainerSpec {
		s := spec("/bin/busybox", "sh", "-c", script)
		s.Security = p
		return s
	}
	const ping = "ping -c 1 -W 2 127.0.0.1"
	if code, out := run(t, r, withSec(nil, ping)); code != 0 {
		t.Errorf("ping with the default set: exit %d: %s", code, out)
	}
	code, out := run(t, r, withSec(&ccv1.SecurityProfile{CapDrop: []string{"NET_RAW"}}, ping))
	if code == 0 || !strings.Contains(strings.ToLower(out), "permission denied") {
		t.Errorf("ping without NET_RAW: exit %d: %q, want permission denied", code, out)
	}

	const mnt = "mkdir -p /m && mount -t tmpfs t /m && echo mounted"
	if code, out := run(t, r, withSec(nil, mnt)); code == 0 {
		t.Errorf("mount with the default set: exit 0: %s", out)
	}
	if code, out := run(t, r, withSec(&ccv1.SecurityProfile{CapAdd: []string{"sys_admin"}}, mnt)); code != 0 || !strings.Contains(out, "mounted") {
		t.Errorf("mount with SYS_ADMIN: exit %d: %s", code, out)
	}

	const mtu = "ip link set lo mtu 1400 && echo changed"
	if code, out := run(t, r, withSec(nil, mtu)); code == 0 {
		t.Errorf("ip link set with the default set: exit 0: %s", out)
	}
	if code, out := run(t, r, withSec(&ccv1.SecurityProfile{CapAdd: []string{"CAP_NET_ADMIN"}}, mtu)); code != 0 || !strings.Contains(out, "changed") {
		t.Errorf("ip link set with NET_ADMIN: exit %d: %s", code, out)
	}

	status := "grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/self/status"
	if _, out := run(t, r, withSec(&ccv1.SecurityProfile{CapDrop: []string{"ALL"}, AllowNewPrivileges: true, Seccomp: ccv1.SeccompMode_SECCOMP_MODE_UNCONFINED}, status)); !strings.Contains(out, "CapBnd:\t0000000000000000") ||
		!strings.Contains(out, "NoNewPrivs:\t0") || !strings.Contains(out, "Seccomp:\t0") {
		t.Errorf("ALL dropped, new privileges, unconfined: %q", out)
	}
	if _, out := run(t, r, withSec(&ccv1.SecurityProfile{Privileged: true}, status+"; ls /dev | wc -l")); !strings.Contains(out, "Seccomp:\t0") || strings.Contains(out, "CapBnd:\t00000000a80425fb") {
		t.Errorf("privileged: %q", out)
	}
	custom := &ccv1.SecurityProfile{Seccomp: ccv1.SeccompMode_SECCOMP_MODE_CUSTOM,
		SeccompProfile: []byte(`{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`)}
	if code, out := run(t, r, withSec(custom, "mkdir /x && echo made")); code == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("custom profile refusing mkdir: exit %d: %q", code, out)
	}
}

// uid 0 in a private user namespace owns nothing on the host: the files it
// writes in its writable layer belong to its range.
func TestPrivateUserNamespace(t *testing.T) {
	r, _ := newTestRuntime(t)
	for _, disk := range []int64{0, 32 << 20} {
		s := spec("/bin/busybox", "sh", "-c", "id -u > /written; head -n1 /proc/self/uid_map > /uidmap; sleep 1000")
		s.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
		s.Security = &ccv1.SecurityProfile{Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE}
		if disk > 0 {
			s.Resources = &ccv1.ContainerResources{DiskBytes: disk}
		}
		id := start(t, r, s)
		waitState(t, r, id, ccv1.ContainerState_CONTAINER_STATE_RUNNING)
		upper := upperDir(t, r, id)
		var b []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if b, err = os.ReadFile(filepath.Join(upper, "uidmap")); err == nil && len(b) > 0 {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		_, host, _ := uidMap(t, strings.TrimSpace(string(b)))
		if w, _ := os.ReadFile(filepath.Join(upper, "written")); strings.TrimSpace(string(w)) != "0" {
			t.Errorf("the container's uid %q, want 0", w)
		}
		st, err := os.Lstat(filepath.Join(upper, "written"))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid == 0 || uint64(sys.Uid) != host || sys.Uid < DefaultUsernsBase {
			t.Errorf("disk %d: a file root wrote in the container is owned by host uid %d, want its range's %d", disk, sys.Uid, host)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := r.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

// upperDir is the host directory of a container's writable layer.
func upperDir(t *testing.T, r *Runtime, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.withNS(context.Background()), 30*time.Second)
	defer cancel()
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := r.client.SnapshotService(info.Snapshotter).Mounts(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := overlaySnapshotDir(mounts)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "fs")
}
