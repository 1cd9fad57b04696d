package relay

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/containercodes/cc/internal/logging"
)

// echoServer answers each connection with its prefix and what it read,
// once the client half-closed.
func echoServer(t *testing.T, prefix string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "%s:%s", prefix, b)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func addrOf(s *Set, id string) string {
	ps := s.Ports(id)
	if len(ps) != 1 {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", ps[0].HostPort)
}

func TestRelay(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	s := New("127.0.0.1", logging.Test(t))
	defer s.Close()
	k := Key{ContainerID: "c1", Port: 80}
	if err := s.Sync(map[Key]string{k: a}); err != nil {
		t.Fatal(err)
	}
	addr := addrOf(s, "c1")
	if addr == "" {
		t.Fatalf("ports %v", s.Ports("c1"))
	}
	if got := roundTrip(t, addr, "hello"); got != "a:hello" {
		t.Fatalf("through the relay: %q", got)
	}

	// A kept relay keeps its port and takes the new target.
	if err := s.Sync(map[Key]string{k: b, {ContainerID: "c2", Port: 81}: a}); err != nil {
		t.Fatal(err)
	}
	if got := addrOf(s, "c1"); got != addr {
		t.Fatalf("relay moved from %s to %s", addr, got)
	}
	if got := roundTrip(t, addr, "again"); got != "b:again" {
		t.Fatalf("after the target changed: %q", got)
	}

	// A connection in flight finishes after its relay is closed.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "late")
	if err := s.Sync(map[Key]string{{ContainerID: "c2", Port: 81}: a}); err != nil {
		t.Fatal(err)
	}
	if len(s.Ports("c1")) != 0 {
		t.Fatal("closed relay still listed")
	}
	c.(*net.TCPConn).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || string(b) != "b:late" {
		t.Fatalf("in-flight connection: %q, %v", b, err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("closed relay still accepts")
	}
	if got := roundTrip(t, addrOf(s, "c2"), "x"); !strings.HasPrefix(got, "a:") {
		t.Fatalf("other relay: %q", got)
	}
}

func TestRelayTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	s := New("127.0.0.1", logging.Test(t))
	defer s.Close()
	if err := s.Sync(map[Key]string{{ContainerID: "c", Port: 1}: dead}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addrOf(s, "c"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The relay closes the connection (a reset or an end of file).
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("a dead target answered %q", b)
	}
}
