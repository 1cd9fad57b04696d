package uie2e

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/containercodes/cc/internal/netns"
)

// browserNetwork is a network namespace of the test's own for chromium.
// Chromium watches the addresses of every interface it can see and fails
// the requests in flight whenever one changes (net::ERR_NETWORK_CHANGED);
// on this host that happens about a second after any container starts on
// a bridge, its interfaces getting IPv6 link-local addresses, and tests
// (these and other packages') start many. In a namespace of its own the
// browser sees only its loopback, where forwarders carry its connections
// to the API ports on the host's loopback, at the same addresses.
type browserNetwork struct {
	name string
	path string
}

// newBrowserNetwork makes the namespace (removed with the test) with its
// loopback up; nil, with a log line, when it cannot (not root, no ip):
// the browser then shares the host's network.
func newBrowserNetwork(t *testing.T) *browserNetwork {
	t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil || os.Getuid() != 0 {
		t.Logf("the browser shares the host's network (a namespace of its own needs root and ip): requests may fail with net::ERR_NETWORK_CHANGED when containers start")
		return nil
	}
	b := make([]byte, 4)
	rand.Read(b)
	n := &browserNetwork{name: "cc-ui-" + hex.EncodeToString(b)}
	n.path = "/run/netns/" + n.name
	if out, err := exec.Command(ip, "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Logf("the browser shares the host's network: ip netns add: %v: %s", err, out)
		return nil
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "delete", n.name).Run() })
	if out, err := exec.Command(ip, "-n", n.name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("browser network: loopback up: %v: %s", err, out)
	}
	return n
}

// forward listens on addr (host:port) inside the namespace and carries
// each connection to addr on the host, until the test ends. A connection
// the host refuses (a server stopped) is closed at once, as the browser
// would see a refusal.
func (n *browserNetwork) forward(t *testing.T, addr string) {
	t.Helper()
	ln, err := listenIn(n.path, addr)
	if err != nil {
		t.Fatalf("browser network: listen on %s in %s: %v", addr, n.name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer h.Close()
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(h, c)
				go pipe(c, h)
				<-done
				<-done
			}()
		}
	}()
}

// exec makes chromium start inside the namespace (ip netns exec keeps the
// DevTools pipes chromedp hands it) and die with the test binary, as
// chromedp's own start does.
func (n *browserNetwork) exec() chromedp.ExecAllocatorOption {
	return chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
		ip, _ := exec.LookPath("ip")
		cmd.Args = append([]string{"ip", "netns", "exec", n.name, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = ip
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	})
}

// listenIn listens on addr with a socket made in the network namespace at
// nsPath.
func listenIn(nsPath, addr string) (net.Listener, error) {
	var ln net.Listener
	err := netns.Do(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil && ln != nil {
		ln.Close()
		ln = nil
	}
	return ln, err
}
