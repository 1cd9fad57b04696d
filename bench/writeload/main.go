// Command writeload drives small writes (viewer token creations) against a
// control plane with N concurrent clients and prints writes/s and p50/p99
// latency. It is a benchmark tool (bench/ha-memory.sh uses it); it only
// talks to the address it is given.
//
//	writeload -addr 127.0.0.1:17443,127.0.0.1:27443 -token T -ca ca.crt -n 100000 -c 64
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7443", "API address(es), comma-separated")
	token := flag.String("token", os.Getenv("CC_TOKEN"), "admin API token")
	caPath := flag.String("ca", "", "cluster CA certificate file")
	n := flag.Int("n", 10000, "writes in all")
	c := flag.Int("c", 16, "concurrent clients")
	flag.Parse()
	if err := run(*addr, *token, *caPath, *n, *c); err != nil {
		fmt.Fprintf(os.Stderr, "writeload: %v\n", err)
		os.Exit(1)
	}
}

func run(addr, token, caPath string, n, clients int) error {
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return fmt.Errorf("-ca: %w", err)
	}
	pool, err := pki.Pool(caPEM)
	if err != nil {
		return err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) }}
	// Like ccctl: gRPC only (pki.ALPNGRPC, spelled out so that this
	// builds against releases without it, which ignore it).
	cfg.NextProtos = []string{"h2", "cc-grpc-only"}
	creds := credentials.NewTLS(cfg)
	conn, err := clusterdial.Dial(strings.Split(addr, ","), grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(token)))
	if err != nil {
		return err
	}
	defer conn.Close()
	tokens := ccv1.NewTokenServiceClient(conn)
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := next.Add(1) - 1
				if j >= int64(n) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				_, err := tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
				cancel()
				lat[j] = time.Since(t0)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	benchstat.SortDurations(lat)
	fmt.Printf("writes %d, failed %d, clients %d: %.0f writes/s, p50 %.2f ms, p99 %.2f ms\n",
		n, failed.Load(), clients, float64(n)/elapsed.Seconds(),
		float64(benchstat.Quantile(lat, 0.50).Microseconds())/1000, float64(benchstat.Quantile(lat, 0.99).Microseconds())/1000)
	if failed.Load() > 0 {
		return fmt.Errorf("%d writes failed", failed.Load())
	}
	return nil
}
