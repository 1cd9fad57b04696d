// Package relay runs a node's port relays: for each routed task, a TCP
// listener on the node's address (a port the kernel chooses) whose
// connections are spliced to the task's bridge address, so that edges on
// other nodes reach the task. A relay survives configuration changes that
// keep it (its target may move when the task restarts); closing one closes
// its listener and lets the connections in flight finish.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Key names a relay: a task and its container port.
type Key struct {
	ContainerID string
	Port        uint32
}

// dialTimeout bounds the connection to a task.
const dialTimeout = 5 * time.Second

// Set is the relays of a node.
type Set struct {
	host string
	log  *slog.Logger

	mu     sync.Mutex
	relays map[Key]*relay
	conns  map[net.Conn]struct{} // every spliced connection, closed by Close
	closed bool
	wg     sync.WaitGroup // accept loops and connections
}

type relay struct {
	ln       net.Listener
	hostPort uint32
	mu       sync.Mutex
	target   string
}

func (r *relay) getTarget() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target
}

// New returns an empty set whose relays listen on host (an IP address; ""
// listens on every address).
func New(host string, log *slog.Logger) *Set {
	return &Set{host: host, log: log, relays: map[Key]*relay{}, conns: map[net.Conn]struct{}{}}
}

// Sync makes the running relays exactly want (key → the task's ip:port):
// new keys get a listener, kept keys keep theirs (and take a new target),
// others are closed. An empty target keeps a relay as it is (its task is
// between runs) and opens none. An error names the relays that could not listen; the
// others run.
func (s *Set) Sync(want map[Key]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("relay set closed")
	}
	for k, r := range s.relays {
		if _, ok := want[k]; !ok {
			r.ln.Close() // its accept loop ends; connections in flight finish
			delete(s.relays, k)
			s.log.Info("relay closed", "container_id", k.ContainerID, "port", k.Port, "host_port", r.hostPort)
		}
	}
	var errs []error
	for k, target := range want {
		if r := s.relays[k]; r != nil {
			if target != "" {
				r.mu.Lock()
				r.target = target
				r.mu.Unlock()
			}
			continue
		}
		if target == "" {
			continue // no address to relay to yet
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(s.host, "0"))
		if err != nil {
			errs = append(errs, fmt.Errorf("relay to %s port %d: %w", k.ContainerID, k.Port, err))
			continue
		}
		r := &relay{ln: ln, hostPort: uint32(ln.Addr().(*net.TCPAddr).Port), target: target}
		s.relays[k] = r
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.accept(r)
		}()
		s.log.Info("relay open", "container_id", k.ContainerID, "port", k.Port, "address", ln.Addr().String(), "target", target)
	}
	return errors.Join(errs...)
}

// Ports are the relays of a container, by container port.
func (s *Set) Ports(containerID string) []*ccv1.PortRelay {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*ccv1.PortRelay
	for k, r := range s.relays {
		if k.ContainerID == containerID {
			out = append(out, &ccv1.PortRelay{ContainerPort: k.Port, HostPort: r.hostPort})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerPort < out[j].ContainerPort })
	return out
}

// Close closes every relay and every connection through them, and waits
// for them to end.
func (s *Set) Close() {
	s.mu.Lock()
	s.closed = true
	for k, r := range s.relays {
		r.ln.Close()
		delete(s.relays, k)
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Set) accept(r *relay) {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.splice(c, r.getTarget())
		}()
	}
}

func (s *Set) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Set) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// splice copies both ways between the client and the task, passing a
// half-close on, until both directions ended.
func (s *Set) splice(client net.Conn, target string) {
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", target)
	cancel()
	if err != nil {
		s.log.Debug("relay cannot reach its task", "target", target, "err", err)
		return
	}
	if !s.track(up) {
		up.Close()
		return
	}
	defer s.untrack(up)
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(up, client)
	}()
	copyHalf(client, up)
	<-done
}

// copyHalf copies src to dst, then closes dst for writing (or whole, when
// it cannot half-close) so the other side sees the end. A failed copy (a
// reset, not an end of file) closes both, so the other direction ends too.
func copyHalf(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}
