package server_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// BenchmarkAPI measures a small write (CreateToken: gRPC, auth, raft apply
// with fsync, bbolt commit) and, as the baseline of the same run, a read
// (GetStatus) on one server, with 1 and 16 concurrent clients. It reports
// ops/s and p50/p99 latency; bench/api-write.sh prints them with the ratio.
func BenchmarkAPI(b *testing.B) {
	srv := testcluster.Start(b, noRateLimit)
	cl := srv.Client()
	ops := map[string]func(ctx context.Context) error{
		"write": func(ctx context.Context) error {
			_, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
			return err
		},
		"read": func(ctx context.Context) error {
			_, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
			return err
		},
	}
	for _, name := range []string{"read", "write"} {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				runClients(b, clients, ops[name])
			})
		}
	}
}

// BenchmarkAPI3 is the small write on a 3-server loopback cluster, sent to
// the leader, with 1, 16 and 64 concurrent clients.
func BenchmarkAPI3(b *testing.B) {
	c := testcluster.StartCluster(b, 3, noRateLimit)
	cl := c.Leader().Client()
	write := func(ctx context.Context) error {
		_, err := cl.Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
		return err
	}
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("write/clients=%d", clients), func(b *testing.B) {
			runClients(b, clients, write)
		})
	}
}

// noRateLimit lifts the admin token's rate limit (2000 calls/s by
// default), a policy that would cap the capacity these benchmarks measure.
func noRateLimit(cfg *testcluster.Config) {
	cfg.RateLimit.AdminPerSecond = 1e9
	cfg.RateLimit.AdminBurst = 1e9
	cfg.RateLimit.AddressPerSecond = 1e9
	cfg.RateLimit.AddressBurst = 1e9
}

func runClients(b *testing.B, clients int, op func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lat := make([]time.Duration, b.N)
	var next int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(ctx); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	// CPU of the whole test process (clients and every in-process server)
	// per operation: a figure that a busy machine disturbs less than ops/s.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
