package pebbletest

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/miekg/dns"
)

// dnsServer answers every A query with 127.0.0.1 and every other query with
// no answer, over UDP and TCP on one port of 127.0.0.1 (Pebble's validation
// authority asks over TCP).
type dnsServer struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server
	wg   sync.WaitGroup
}

// loopback is the address every name has.
var loopback = net.IPv4(127, 0, 0, 1)

// answer is the DNS handler.
func answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	for _, qq := range q.Question {
		if qq.Qtype == dns.TypeA && qq.Qclass == dns.ClassINET {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   loopback,
			})
		}
	}
	_ = w.WriteMsg(m)
}

// startDNS starts the DNS server on a port free for both UDP and TCP.
func startDNS() (*dnsServer, error) {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		return nil, fmt.Errorf("no port free for both UDP and TCP: %w", err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String()}
	handler := dns.HandlerFunc(answer)
	s.udp = &dns.Server{PacketConn: pc, Handler: handler}
	s.tcp = &dns.Server{Listener: ln, Handler: handler}
	errs := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				errs <- err
			}
		}()
		select {
		case <-started:
		case err := <-errs:
			s.close()
			pc.Close()
			ln.Close()
			return nil, err
		}
	}
	return s, nil
}

// close shuts both servers down and waits for them.
func (s *dnsServer) close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
	s.wg.Wait()
}
