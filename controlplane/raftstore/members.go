package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/containercodes/cc/controlplane/fsm"
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
//   - a server with a record, or in the raft configuration, is accepted
//     (the leader records a joining server and adds it to the
//     configuration before the joiner is dialed or dials);
//   - a node that knows no configuration yet (a server that is joining,
//     before the leader's first entries) accepts any server of the CA:
//     it has no members to compare with, and its state comes from the
//     leader that dials it.
//
// Everything else is refused.
type members struct {
	fsm  *fsm.FSM
	raft atomic.Pointer[raft.Raft] // set once raft runs
	log  *slog.Logger
}

// check says why the server id may not hold a raft connection, or nil.
func (m *members) check(id string) error {
	if id == "" {
		return fmt.Errorf("%w: its certificate names no server", ErrNotMember)
	}
	rec, err := m.fsm.Server(id)
	switch {
	case err == nil && rec.Removed:
		return fmt.Errorf("%w: server %s was removed from the cluster", ErrNotMember, id)
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
// with the peer's id and address.
func (m *members) verify(prev func(tls.ConnectionState) error, side string, remote func() string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		id := cs.PeerCertificates[0].Subject.CommonName
		if err := m.check(id); err != nil {
			m.log.Warn("raft connection refused", "peer_id", id, "remote", remote(), "direction", side, "err", err)
			return err
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
		per.VerifyConnection = m.verify(base.VerifyConnection, "accepted", remote)
		return per, nil
	}
	return c
}

// clientConfig is the dialing side's TLS configuration for a connection to
// addr: base, with the membership check of the server dialed.
func (m *members) clientConfig(base *tls.Config, addr string) *tls.Config {
	c := base.Clone()
	c.VerifyConnection = m.verify(base.VerifyConnection, "dialed", func() string { return addr })
	return c
}

func addrString(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}
