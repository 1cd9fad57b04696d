package raftstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
)

// ErrNotMember is the error of a raft connection whose peer is not a
// current member of the cluster.
var ErrNotMember = errors.New("the peer is not a member of this raft cluster")

// members decides, once per raft connection (in its TLS handshake), whether
// the peer server may hold one. The CA proves only that a certificate was
// once issued to a server; membership is what the cluster says now:
//
//   - a server whose record is marked removed is refused, always (a removed
//     server may not rejoin with its identity);
//   - a certificate for another key than the one the server's record pins
//     is refused: every server holds the CA key, so a removed server could
//     sign itself a certificate with a member's id, but not with its key
//     (a record with no pin, of an older cluster, accepts any key and says
//     so once in the log);
//   - a server with a record, or in the raft configuration, is accepted
//     (the leader records a joining server and adds it to the
//     configuration before the joiner is dialed or dials);
//   - a node that knows no configuration yet (a server that is joining,
//     before the leader's first entries) accepts any server of the CA:
//     it has no members to compare with, and its state comes from the
//     leader that dials it.
//
// Everything else is refused.
//
// Connections that passed are tracked by peer id, and sweep closes those of
// a peer that has stopped being a member since (a removed server, or one
// holding its files, may not keep using a connection it opened before).
type members struct {
	fsm  *fsm.FSM
	raft atomic.Pointer[raft.Raft] // set once raft runs
	log  *slog.Logger

	mu    sync.Mutex
	conns map[string]map[*trackedConn]bool // peer id → its open connections
	// heard is when each peer's closed connections last received bytes.
	heard map[string]int64

	unpinned sync.Map // server id → struct{}: logged as accepted without a pin
}

// trackedConn is a raft connection's network connection, forgotten by its
// members when closed.
type trackedConn struct {
	net.Conn
	m    *members
	once sync.Once
	id   atomic.Pointer[string] // the peer's server id once it passed
	leaf *x509.Certificate      // the peer's certificate, set before id
	// read is when the connection last received bytes (Unix nanoseconds).
	read atomic.Int64
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Store(time.Now().UnixNano())
	}
	return n, err
}

// contacts returns when each peer was last heard from on a raft
// connection, open or closed since.
func (m *members) contacts() map[string]time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := make(map[string]int64, len(m.heard)+len(m.conns))
	for id, ns := range m.heard {
		last[id] = ns
	}
	for id, cs := range m.conns {
		for c := range cs {
			last[id] = max(last[id], c.read.Load())
		}
	}
	out := make(map[string]time.Time, len(last))
	for id, ns := range last {
		if ns > 0 {
			out[id] = time.Unix(0, ns)
		}
	}
	return out
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		if id := c.id.Load(); id != nil {
			c.m.forget(*id, c)
		}
	})
	return c.Conn.Close()
}

// track records that c belongs to the member id, who presented leaf.
func (m *members) track(id string, leaf *x509.Certificate, c *trackedConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		m.conns = map[string]map[*trackedConn]bool{}
	}
	if m.conns[id] == nil {
		m.conns[id] = map[*trackedConn]bool{}
	}
	m.conns[id][c] = true
	c.leaf = leaf
	c.id.Store(&id)
}

func (m *members) forget(id string, c *trackedConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ns := c.read.Load(); ns > 0 {
		if m.heard == nil {
			m.heard = map[string]int64{}
		}
		m.heard[id] = max(m.heard[id], ns)
	}
	delete(m.conns[id], c)
	if len(m.conns[id]) == 0 {
		delete(m.conns, id)
	}
}

// sweep closes the connections of every peer that is no longer a member,
// and returns how many it closed.
func (m *members) sweep() int {
	m.mu.Lock()
	ids := make([]string, 0, len(m.conns))
	for id := range m.conns {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	closed := 0
	for _, id := range ids {
		m.mu.Lock()
		var cs []*trackedConn
		for c := range m.conns[id] {
			cs = append(cs, c)
		}
		m.mu.Unlock()
		var refused []*trackedConn
		var last error
		for _, c := range cs {
			if err := m.check(id, c.leaf); err != nil && errors.Is(err, ErrNotMember) {
				refused = append(refused, c)
				last = err
			}
		}
		for _, c := range refused {
			c.Close()
		}
		closed += len(refused)
		if len(refused) > 0 {
			m.log.Warn("raft connections closed: the peer is no longer a member", "peer_id", id, "connections", len(refused), "err", last)
		}
	}
	return closed
}

// watch sweeps after each change of the state (a server marked removed)
// and every interval (a change of the raft configuration alone), at most
// once per interval, until done is closed.
func (m *members) watch(done <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		changed := m.fsm.Watch()
		select {
		case <-done:
			return
		case <-changed:
		case <-t.C:
		}
		m.sweep()
		select {
		case <-done:
			return
		case <-time.After(every):
		}
	}
}

// listener wraps ln so that accepted connections can be tracked.
func (m *members) listener(ln net.Listener) net.Listener {
	return &trackingListener{Listener: ln, m: m}
}

type trackingListener struct {
	net.Listener
	m *members
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, m: l.m}, nil
}

// check says why the server id, presenting leaf, may not hold a raft
// connection, or nil.
func (m *members) check(id string, leaf *x509.Certificate) error {
	if id == "" {
		return fmt.Errorf("%w: its certificate names no server", ErrNotMember)
	}
	rec, err := m.fsm.Server(id)
	switch {
	case err == nil && rec.Removed:
		return fmt.Errorf("%w: server %s was removed from the cluster", ErrNotMember, id)
	case err == nil && len(rec.PublicKeySha256) == 0:
		if _, logged := m.unpinned.LoadOrStore(id, struct{}{}); !logged {
			m.log.Warn("raft connection accepted without a key check: the server's record pins no key yet (it records one when it restarts)", "peer_id", id)
		}
		return nil
	case err == nil && leaf != nil && !pki.KeyMatches(rec.PublicKeySha256, leaf):
		return fmt.Errorf("%w: server %s presented a certificate for another key than the one its record pins (signed by the cluster CA, not held by that server)", ErrNotMember, id)
	case err == nil:
		return nil
	case !errors.Is(err, fsm.ErrNotFound):
		return fmt.Errorf("server %s: membership unknown: %w", id, err)
	}
	r := m.raft.Load()
	if r == nil {
		// The transport serves before raft has loaded its configuration
		// (raft.NewRaft takes the transport): only the state speaks.
		return nil
	}
	conf := r.GetConfiguration().Configuration() // a cached copy, no round trip
	if len(conf.Servers) == 0 {
		return nil
	}
	for _, s := range conf.Servers {
		if string(s.ID) == id {
			return nil
		}
	}
	return fmt.Errorf("%w: server %s is in neither the raft configuration nor the server records", ErrNotMember, id)
}

// verify is a tls.Config.VerifyConnection that runs prev (the configured
// one: chain and role) and then the membership check, logging a refusal
// with the peer's id and address. The connection c of a member is tracked.
func (m *members) verify(prev func(tls.ConnectionState) error, side string, remote func() string, c *trackedConn) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		id := leaf.Subject.CommonName
		if err := m.check(id, leaf); err != nil {
			m.log.Warn("raft connection refused", "peer_id", id, "remote", remote(), "direction", side, "err", err)
			return err
		}
		if c != nil {
			m.track(id, leaf, c)
		}
		return nil
	}
}

// serverConfig is the accepting side's TLS configuration: base, with the
// membership check of each client (and its address, for the log).
func (m *members) serverConfig(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		per := base.Clone()
		remote := func() string { return addrString(hello.Conn) }
		tc, _ := hello.Conn.(*trackedConn)
		per.VerifyConnection = m.verify(base.VerifyConnection, "accepted", remote, tc)
		return per, nil
	}
	return c
}

// dial opens a TLS connection to addr with base, refused unless the server
// dialed is a member, and tracked.
func (m *members) dial(d *net.Dialer, addr string, base *tls.Config) (*tls.Conn, error) {
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: raw, m: m}
	cfg := base.Clone()
	cfg.VerifyConnection = m.verify(base.VerifyConnection, "dialed", func() string { return addr }, tc)
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	conn := tls.Client(tc, cfg)
	if d.Timeout > 0 {
		raw.SetDeadline(time.Now().Add(d.Timeout))
	}
	if err := conn.Handshake(); err != nil {
		tc.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

func addrString(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}
