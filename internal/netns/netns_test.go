package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDo: a listener made in a new namespace is not reachable from the
// test's own, and the goroutine that called Do is back in its namespace.
func TestDo(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (a network namespace of the test's own)")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := fmt.Sprintf("cc-netns-test-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "delete", name).Run() })
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback up: %v: %s", err, out)
	}
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := Do("/run/netns/"+name, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatalf("a listener made in %s answered on the test's own loopback", name)
	}
	// From inside, it answers.
	if err := Do("/run/netns/"+name, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("dial inside the namespace: %v", err)
	}
	if after, _ := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())); after != before {
		t.Fatalf("this thread is in %s after Do, was in %s", after, before)
	}
	if err := Do("/run/netns/no-such-namespace", func() error { return nil }); err == nil {
		t.Fatal("Do in a namespace that does not exist: no error")
	}
}
