package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containercodes/cc/bench/internal/benchstat"
)

// curves are the key exchanges -curve offers: one alone, so that every
// server does the same work whatever it would prefer; x25519mlkem768 with
// X25519 beside it, as browsers offer it, for servers without ML-KEM.
var curves = map[string][]tls.CurveID{
	"x25519":         {tls.X25519},
	"p256":           {tls.CurveP256},
	"x25519mlkem768": {tls.X25519MLKEM768, tls.X25519},
}

// handshakes makes a new TLS connection per request, for -d: -c workers
// each dial, do a full handshake, send one GET with "Connection: close",
// read the answer and the server's close, and start again. The client has
// no session cache, so no connection resumes a session (each one that did
// would be counted and fail the run). It prints one line:
//
//	handshakes/s N p50 MS p99 MS cpu PCT per-cpu-s N client-cpu PCT resumed 0 errors 0 tls TLS1.3/X25519/TLS_AES_128_GCM_SHA256
//
// p50 and p99 are of the whole connection (dial to the server's close),
// cpu is the server process's (-pid) share of one core over the run, and
// per-cpu-s is handshakes per second of the server's CPU time: the
// server's cost, which holds even when the load generator is what limits
// the rate (client-cpu near 100 with cpu well under it says it does).
func handshakes(args []string) error {
	fs := flag.NewFlagSet("handshakes", flag.ExitOnError)
	addr := fs.String("addr", "", "HOST:PORT of the HTTPS server")
	sni := fs.String("sni", "", "TLS server name (SNI)")
	host := fs.String("host", "", "Host header (default: -sni)")
	path := fs.String("path", "/", "path asked for")
	conns := fs.Int("c", 64, "concurrent connections")
	d := fs.Duration("d", 10*time.Second, "duration")
	pid := fs.Int("pid", 0, "server pid whose CPU is measured")
	curve := fs.String("curve", "x25519", "key exchange offered: x25519, p256 or x25519mlkem768 (with x25519 for servers without it)")
	caFile := fs.String("ca", "", "PEM CA the first connection's chain is verified against (the rest skip chain verification; the handshake's signature is checked on all)")
	fs.Parse(args)
	if *addr == "" || *sni == "" {
		return errors.New("handshakes: -addr and -sni are required")
	}
	if *host == "" {
		*host = *sni
	}
	cid, ok := curves[*curve]
	if !ok {
		return fmt.Errorf("handshakes: -curve %q: want x25519, p256 or x25519mlkem768", *curve)
	}
	conf := &tls.Config{
		ServerName:         *sni,
		NextProtos:         []string{"http/1.1"},
		CurvePreferences:   cid,
		ClientSessionCache: nil, // never resume: every connection is a full handshake
		InsecureSkipVerify: true,
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\nConnection: close\r\nUser-Agent: edge-bench\r\n\r\n")

	// One verified connection first: the right certificate, and a warm server.
	first := conf.Clone()
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("handshakes: %s holds no PEM certificate", *caFile)
		}
		first.InsecureSkipVerify, first.RootCAs = false, pool
	}
	st, err := once(*addr, first, req)
	if err != nil {
		return fmt.Errorf("handshakes: first connection: %w", err)
	}
	proto := strings.ReplaceAll(tls.VersionName(st.Version), " ", "") + "/" + st.CurveID.String() + "/" + tls.CipherSuiteName(st.CipherSuite)

	var n, resumed, errs atomic.Int64
	var firstErr atomic.Value
	lats := make([]benchstat.Dist, *conns)
	var wg sync.WaitGroup
	before, self := benchstat.ReadProc(*pid), benchstat.ReadProc(os.Getpid())
	start := time.Now()
	deadline := start.Add(*d)
	for w := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				st, err := once(*addr, conf, req)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if st.DidResume {
					resumed.Add(1)
				}
				lats[w] = append(lats[w], time.Since(t0))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	after, selfAfter := benchstat.ReadProc(*pid), benchstat.ReadProc(os.Getpid())
	var all benchstat.Dist
	for _, l := range lats {
		all = append(all, l...)
	}
	cpu, perCPU := "n/a", "n/a"
	if before.OK && after.OK && after.CPU > before.CPU {
		used := after.CPU - before.CPU
		cpu = fmt.Sprintf("%.1f", 100*float64(used)/float64(wall))
		perCPU = fmt.Sprintf("%.0f", float64(n.Load())/used.Seconds())
	}
	clientCPU := "n/a"
	if self.OK && selfAfter.OK {
		clientCPU = fmt.Sprintf("%.1f", 100*float64(selfAfter.CPU-self.CPU)/float64(wall))
	}
	fmt.Printf("handshakes/s %.0f p50 %.2f p99 %.2f cpu %s per-cpu-s %s client-cpu %s resumed %d errors %d tls %s\n",
		float64(n.Load())/wall.Seconds(), ms(all.Pct(50)), ms(all.Pct(99)), cpu, perCPU, clientCPU, resumed.Load(), errs.Load(), proto)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "handshakes: %d connections failed; the first: %v\n", errs.Load(), e)
	}
	if errs.Load() > 0 || resumed.Load() > 0 {
		return fmt.Errorf("handshakes: %d errors, %d resumed sessions: the figures would mean nothing", errs.Load(), resumed.Load())
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// once makes one connection: dial, handshake, one GET, the answer read to
// the end and then the server's close (its close_notify, or its FIN).
func once(addr string, conf *tls.Config, req []byte) (tls.ConnectionState, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, conf)
	if err := c.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	st := c.ConnectionState()
	if _, err := c.Write(req); err != nil {
		return st, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return st, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	// The server closes after a "Connection: close" answer; read up to it.
	io.Copy(io.Discard, br)
	return st, nil
}
