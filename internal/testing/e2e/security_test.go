package e2e

import (
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Through the whole stack (API, scheduler, session, agent, containerd): a
// disk limit makes writes past it fail with ENOSPC, a dropped capability
// is gone, and a private user namespace maps root away.
func TestDiskLimitAndSecurityProfile(t *testing.T) {
	testcluster.RequireContainerd(t)
	srv := testcluster.Start(t)
	cl := srv.Client()
	srv.StartAgent("node-a")
	loadDemoImage(t, cl)

	disk := busybox("/bin/busybox", "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=100; echo dd=$?")
	disk.Resources = &ccv1.ContainerResources{DiskBytes: 32 << 20}
	c := create(t, cl, "disk", "", disk)
	waitState(t, cl, c.Id, "exited", exited)
	if out := logsOf(t, cl, c.Id); !strings.Contains(out, "No space left on device") || strings.Contains(out, "dd=0") {
		t.Errorf("writing 100 MiB on a 32 MiB disk: %q", out)
	}
	remove(t, cl, c.Id)

	ping := busybox("/bin/busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1")
	ping.Security = &ccv1.SecurityProfile{CapDrop: []string{"NET_RAW"}}
	c = create(t, cl, "noraw", "", ping)
	c = waitState(t, cl, c.Id, "exited", exited)
	if out := logsOf(t, cl, c.Id); c.Status.ExitCode == 0 || !strings.Contains(strings.ToLower(out), "permission denied") {
		t.Errorf("ping without NET_RAW: exit %d, %q", c.Status.ExitCode, out)
	}
	remove(t, cl, c.Id)

	userns := busybox("/bin/busybox", "sh", "-c", "id -u; cat /proc/self/uid_map")
	userns.Security = &ccv1.SecurityProfile{Userns: ccv1.UsernsMode_USERNS_MODE_PRIVATE}
	c = create(t, cl, "userns", "", userns)
	c = waitState(t, cl, c.Id, "exited", exited)
	out := logsOf(t, cl, c.Id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if c.Status.ExitCode != 0 || len(lines) != 2 || lines[0] != "0" || strings.Fields(lines[1])[1] == "0" {
		t.Errorf("--userns private: exit %d, %q: want uid 0 mapped to a host id other than 0", c.Status.ExitCode, out)
	}
	remove(t, cl, c.Id)
}
