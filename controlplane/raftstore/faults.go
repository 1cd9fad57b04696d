package raftstore

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
)

// ErrPartitioned is the error of a raft connection cut by Faults.
var ErrPartitioned = errors.New("raft connection cut by an injected partition")

// Faults injects network partitions into the raft transport, for tests
// only (Config.Faults is nil in production). It blocks peers by raft address
// (what Dial knows) and by server id (the common name of the peer's
// certificate: what an accepted connection knows after its handshake):
//
//   - Dial refuses a blocked address, and closes a connection whose peer
//     certificate names a blocked id;
//   - every Read and Write on a transport connection, dialed or accepted,
//     fails with ErrPartitioned and closes it once its peer is blocked, so
//     pooled and idle connections stop working too.
//
// Blocking is one-way: a symmetric partition blocks on both sides. The zero
// value blocks nothing; a Faults is safe for concurrent use.
type Faults struct {
	mu    sync.RWMutex
	addrs map[string]bool
	ids   map[string]bool
}

// Block cuts this server off from the peer at the raft address addr.
func (f *Faults) Block(addr string) { f.set(&f.addrs, addr, true) }

// Unblock undoes Block.
func (f *Faults) Unblock(addr string) { f.set(&f.addrs, addr, false) }

// BlockID cuts this server off from the peer with server id id.
func (f *Faults) BlockID(id string) { f.set(&f.ids, id, true) }

// UnblockID undoes BlockID.
func (f *Faults) UnblockID(id string) { f.set(&f.ids, id, false) }

// Heal unblocks every peer.
func (f *Faults) Heal() {
	f.mu.Lock()
	f.addrs, f.ids = nil, nil
	f.mu.Unlock()
}

func (f *Faults) set(m *map[string]bool, key string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !on {
		delete(*m, key)
		return
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[key] = true
}

// blocked reports whether a peer known by raft address addr or server id
// id (either may be "") is blocked.
func (f *Faults) blocked(addr, id string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return (addr != "" && f.addrs[addr]) || (id != "" && f.ids[id])
}

// faultConn is a transport connection checked against Faults on every
// Read and Write.
type faultConn struct {
	net.Conn // a *tls.Conn
	faults   *Faults
	addr     string // the dialed raft address; "" for an accepted connection
}

// peerID is the common name of the peer's certificate, "" before the
// handshake.
func peerID(c net.Conn) string {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ""
	}
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
		return cs.PeerCertificates[0].Subject.CommonName
	}
	return ""
}

// cut closes the connection when its peer is blocked.
func (c *faultConn) cut() bool {
	if !c.faults.blocked(c.addr, peerID(c.Conn)) {
		return false
	}
	c.Conn.Close()
	return true
}

func (c *faultConn) Read(b []byte) (int, error) {
	if c.cut() {
		return 0, ErrPartitioned
	}
	n, err := c.Conn.Read(b)
	// Checked again after the read: the peer may have been blocked while
	// the read waited, and an accepted connection learns its peer's id in
	// the handshake the first read performs.
	if c.cut() {
		return 0, ErrPartitioned
	}
	return n, err
}

func (c *faultConn) Write(b []byte) (int, error) {
	if c.cut() {
		return 0, ErrPartitioned
	}
	return c.Conn.Write(b)
}
