package raftstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is raft's stream layer over mutual TLS: servers prove to each
// other that they hold a server certificate of the cluster CA.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
	members   *members
	faults    *Faults // nil in production
}

// newTLSStream listens with server and dials with client; every connection,
// accepted or dialed, is refused in its handshake unless the peer is a
// member (see members).
func newTLSStream(ln net.Listener, advertise string, server, client *tls.Config, m *members, faults *Faults) (*tlsStream, error) {
	adv, err := AdvertiseAddr(ln.Addr().(*net.TCPAddr), advertise)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &tlsStream{Listener: tls.NewListener(m.listener(ln), m.serverConfig(server)), advertise: adv, client: client, members: m, faults: faults}, nil
}

// AdvertiseAddr is the address peers reach this server at: the configured
// one, or the bound one when it is a specific IP, or the first non-loopback
// IPv4 of the host with the bound port.
func AdvertiseAddr(bound *net.TCPAddr, configured string) (*net.TCPAddr, error) {
	if configured != "" {
		return net.ResolveTCPAddr("tcp", configured)
	}
	if !bound.IP.IsUnspecified() {
		return bound, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return &net.TCPAddr{IP: ipn.IP, Port: bound.Port}, nil
			}
		}
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: bound.Port}, nil
}

func (s *tlsStream) Addr() net.Addr { return s.advertise }

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.client == nil {
		return nil, errors.New("raft transport has no client TLS configuration")
	}
	if s.faults != nil && s.faults.blocked(string(addr), "") {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrPartitioned)
	}
	d := &net.Dialer{Timeout: timeout}
	conn, err := s.members.dial(d, string(addr), s.client)
	if err != nil || s.faults == nil {
		return conn, err
	}
	fc := &faultConn{Conn: conn, faults: s.faults, addr: string(addr)}
	if fc.cut() {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrPartitioned)
	}
	return fc, nil
}

// Accept is the TLS listener's; under Faults the connection is checked
// against them on every read and write (its first read completes the
// handshake, which names the peer).
func (s *tlsStream) Accept() (net.Conn, error) {
	conn, err := s.Listener.Accept()
	if err != nil || s.faults == nil {
		return conn, err
	}
	return &faultConn{Conn: conn, faults: s.faults}, nil
}
