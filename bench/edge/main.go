// Command edge is the measuring half of bench/edge.sh: a 1 KiB upstream, a
// fixed-rate load with latency and the server's CPU, idle keep-alive
// connections with the server's memory, and the wait for a route set to be
// served. bench/edge.sh starts the servers (our edge, nginx, Caddy) and
// wrk; this program does what wrk cannot.
//
//	edge upstream -size 1024                   serve SIZE bytes on 127.0.0.1:0, print the address
//	edge rate -url U -host H -rps 1000 -d 10s -pid P
//	edge idle -url U -host H -conns 10000 -pid P
//	edge wait -url U[,U...] -host-format 'r%d.bench' -n 1000 -timeout 2m
//	edge handshakes -addr HOST:PORT -sni NAME -path /1k.txt -c 64 -d 10s -pid P -ca ca.pem
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containercodes/cc/bench/internal/benchstat"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: edge upstream|rate|idle|wait|handshakes [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = upstream(os.Args[2:])
	case "rate":
		err = rate(os.Args[2:])
	case "idle":
		err = idle(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	case "handshakes":
		err = handshakes(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

// upstream serves a fixed body of -size bytes to every request.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	size := fs.Int("size", 1024, "body bytes")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	body := bytes.Repeat([]byte("x"), *size)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	os.Stdout.Sync()
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

func client(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
	}
}

func get(c *http.Client, u, host string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// rate sends requests at a fixed rate (each at its scheduled time, on one
// of a pool of keep-alive connections) and prints the latency and the CPU
// the server process used meanwhile.
func rate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ExitOnError)
	u := fs.String("url", "", "URL")
	host := fs.String("host", "", "Host header")
	rps := fs.Int("rps", 1000, "requests per second")
	d := fs.Duration("d", 10*time.Second, "duration")
	pid := fs.Int("pid", 0, "server pid whose CPU is measured")
	conns := fs.Int("conns", 32, "connections")
	fs.Parse(args)
	c := client(*conns)
	// Warm the pool.
	for range *conns {
		get(c, *u, *host)
	}
	n := int(d.Seconds() * float64(*rps))
	interval := time.Second / time.Duration(*rps)
	lat := make(benchstat.Dist, n)
	var errs, non200 int
	var mu sync.Mutex
	sem := make(chan struct{}, *conns)
	var wg sync.WaitGroup
	before := benchstat.ReadProc(*pid)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, err := get(c, *u, *host)
			// Latency from the scheduled time: a late send counts.
			lat[i] = time.Since(at)
			if err != nil || code != 200 {
				mu.Lock()
				if err != nil {
					errs++
				} else {
					non200++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	after := benchstat.ReadProc(*pid)
	cpu := "n/a"
	if before.OK && after.OK {
		cpu = fmt.Sprintf("%.1f%%", 100*float64(after.CPU-before.CPU)/float64(wall))
	}
	fmt.Printf("rate %d/s for %s: p50 %s p99 %s  cpu %s  errors %d non-200 %d\n",
		*rps, d, benchstat.Ms(lat.Pct(50)), benchstat.Ms(lat.Pct(99)), cpu, errs, non200)
	return nil
}

// idle opens keep-alive connections, makes one request on each, holds them
// open and prints the server's resident memory before and after.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	u := fs.String("url", "", "URL")
	host := fs.String("host", "", "Host header")
	n := fs.Int("conns", 10000, "connections")
	pid := fs.Int("pid", 0, "server pid whose memory is measured")
	fs.Parse(args)
	pu, err := url.Parse(*u)
	if err != nil {
		return err
	}
	before := benchstat.ReadProc(*pid)
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", pu.RequestURI(), *host)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	failed := 0
	for i := 0; i < *n; i++ {
		c, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
		if err != nil {
			failed++
			continue
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			c.Close()
			failed++
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
		held = append(held, c)
	}
	time.Sleep(2 * time.Second) // let the server settle
	after := benchstat.ReadProc(*pid)
	per := 0.0
	if len(held) > 0 {
		per = float64(after.RSS-before.RSS) / float64(len(held))
	}
	fmt.Printf("idle %d connections (%d failed): RSS %s → %s (%s per connection)\n",
		len(held), failed, benchstat.MiB(before.RSS), benchstat.MiB(after.RSS), benchstat.KiB(per))
	return nil
}

// wait polls every edge URL until each serves every host of the set with
// 200, and prints how long that took from -since (the apply's start).
func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	urls := fs.String("url", "", "edge URLs, comma-separated")
	format := fs.String("host-format", "r%d.bench", "host of route i")
	n := fs.Int("n", 1000, "routes")
	since := fs.Int64("since", 0, "start, in Unix milliseconds (default: now)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	fs.Parse(args)
	start := time.Now()
	if *since > 0 {
		start = time.UnixMilli(*since)
	}
	c := client(8)
	deadline := time.Now().Add(*timeout)
	for _, u := range strings.Split(*urls, ",") {
		// The last route first: once it is served, the set has arrived.
		for {
			if code, _ := get(c, u, fmt.Sprintf(*format, *n-1)); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: timed out waiting for the routes", u)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	took := time.Since(start)
	for _, u := range strings.Split(*urls, ",") {
		for i := 0; i < *n; i++ {
			if code, err := get(c, u, fmt.Sprintf(*format, i)); code != 200 {
				return fmt.Errorf("%s: route %d answers %d (%v) after the last one was served", u, i, code, err)
			}
		}
	}
	fmt.Printf("%d routes served by every edge (%d) %s after the apply began\n", *n, len(strings.Split(*urls, ",")), benchstat.Ms(took))
	return nil
}
