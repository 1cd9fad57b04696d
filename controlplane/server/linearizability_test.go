package server_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// The linearizability check: clients create tokens with unique descriptions
// and list them, on random servers, while servers are killed and restarted
// and raft is partitioned; porcupine checks the history against a set. The
// defaults keep it short; CC_CHAOS_SECONDS and CC_CHAOS_OPS make it longer
// (bench/chaos.sh).
//
// Model: the state is the set of descriptions created by the test; create(d)
// adds d; list must return exactly the state. A create that fails or times
// out may still take effect later: it is recorded without a return (pending
// until the end of time). A failed list has no effect and is left out.

const linPrefix = "lin-"

// linInput is one operation: a create of description linPrefix+N, or a list.
type linInput struct {
	create bool
	n      int
}

// A set of description numbers is a bitset in a string (bit n of byte n/8),
// with no trailing zero bytes: equal sets are equal strings.
func bitsetAdd(s string, n int) string {
	b := []byte(s)
	for len(b) <= n/8 {
		b = append(b, 0)
	}
	b[n/8] |= 1 << (n % 8)
	return string(b)
}

func bitsetHas(s string, n int) bool { return n/8 < len(s) && s[n/8]&(1<<(n%8)) != 0 }

func bitsetMembers(s string) []int {
	var out []int
	for n := 0; n < 8*len(s); n++ {
		if bitsetHas(s, n) {
			out = append(out, n)
		}
	}
	return out
}

var tokenSetModel = porcupine.Model{
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in, st := input.(linInput), state.(string)
		if in.create {
			return true, bitsetAdd(st, in.n)
		}
		return output.(string) == st, st
	},
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(linInput)
		if in.create {
			return fmt.Sprintf("create(%d) -> %v", in.n, output)
		}
		return fmt.Sprintf("list() -> %v", bitsetMembers(output.(string)))
	},
	DescribeState: func(state interface{}) string { return fmt.Sprint(bitsetMembers(state.(string))) },
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// linClient is a connection to one server with a short reconnect backoff:
// servers come and go.
func linClient(t *testing.T, s *testcluster.Server) ccv1.TokenServiceClient {
	conn, err := grpc.NewClient(s.Addr(),
		grpc.WithTransportCredentials(credentials.NewTLS(s.TLSConfig())),
		grpc.WithPerRPCCredentials(clusterdial.Bearer(s.Token)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}, MinConnectTimeout: 2 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ccv1.NewTokenServiceClient(conn)
}

// listSet lists the tokens and returns the test's descriptions as a bitset.
func listSet(ctx context.Context, c ccv1.TokenServiceClient) (string, error) {
	r, err := c.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if err != nil {
		return "", err
	}
	set := ""
	for _, tok := range r.Tokens {
		if d, ok := strings.CutPrefix(tok.Description, linPrefix); ok {
			n, err := strconv.Atoi(d)
			if err != nil {
				return "", fmt.Errorf("token description %q", tok.Description)
			}
			set = bitsetAdd(set, n)
		}
	}
	return set, nil
}

type linHistory struct {
	mu    sync.Mutex
	ops   []porcupine.Operation
	codes map[string]int // failures by kind and gRPC code
	first []string       // the first error of each kind and code
	start time.Time
}

func (h *linHistory) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *linHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *linHistory) fail(kind string, err error) {
	h.mu.Lock()
	k := kind + " " + status.Code(err).String()
	if h.codes[k] == 0 {
		h.first = append(h.first, k+": "+err.Error())
	}
	h.codes[k]++
	h.mu.Unlock()
}

func TestLinearizability(t *testing.T) {
	long := os.Getenv("CC_CHAOS_SECONDS") != "" || os.Getenv("CC_CHAOS_OPS") != ""
	seconds := envInt(t, "CC_CHAOS_SECONDS", 8)
	maxOps := envInt(t, "CC_CHAOS_OPS", 1000)
	if long && os.Getenv("CC_CHAOS_OPS") == "" {
		maxOps = math.MaxInt
	}
	const (
		nClients  = 4
		opTimeout = 8 * time.Second // above the server's own 5s read barrier and leader wait
		hold      = 1500 * time.Millisecond
		settle    = 1 * time.Second
	)

	c := testcluster.StartCluster(t, 3)
	clients := make([]ccv1.TokenServiceClient, len(c.Servers))
	names := make([]string, len(c.Servers))
	alive := make([]atomic.Bool, len(c.Servers))
	for i, s := range c.Servers {
		clients[i], names[i] = linClient(t, s), s.Config.Name
		alive[i].Store(true)
	}
	hist := &linHistory{codes: map[string]int{}, start: time.Now()}

	// Clients: each op goes to a random running server, once.
	var (
		nextN  atomic.Int64 // next description number
		issued atomic.Int64 // operations started
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()
	for id := 0; id < nClients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if issued.Add(1) > int64(maxOps) {
					issued.Add(-1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				var up []int
				for i := range alive {
					if alive[i].Load() {
						up = append(up, i)
					}
				}
				srv := up[rng.IntN(len(up))]
				cl := clients[srv]
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				var err error
				if rng.IntN(5) < 2 {
					in := linInput{create: true, n: int(nextN.Add(1) - 1)}
					call := hist.now()
					_, err = cl.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: fmt.Sprintf("%s%d", linPrefix, in.n)})
					ret := hist.now()
					if err != nil {
						// Unknown outcome: it may take effect at any time later.
						hist.fail("create", err)
						ret = math.MaxInt64
					}
					hist.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: err == nil, Return: ret, Metadata: names[srv]})
				} else {
					call := hist.now()
					var set string
					set, err = listSet(ctx, cl)
					ret := hist.now()
					if err != nil {
						hist.fail("list", err)
					} else {
						hist.add(porcupine.Operation{ClientId: id, Input: linInput{}, Call: call, Output: set, Return: ret, Metadata: names[srv]})
					}
				}
				cancel()
				if err != nil {
					// Back off as a real client would: failures are fast
					// and would use up the operations.
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(settle) // some operations on a healthy cluster first

	// Faults, in turn, until the time or the operations are used up, and
	// each at least once.
	indexOf := func(s *testcluster.Server) int {
		for i, x := range c.Servers {
			if x == s {
				return i
			}
		}
		t.Fatal("unknown server")
		return -1
	}
	// leaderNow names the leader without waiting for one.
	leaderNow := func() string {
		for i, s := range c.Servers {
			if alive[i].Load() && s.Srv.IsLeader() {
				return s.Config.Name
			}
		}
		return "none"
	}
	faults := map[string]int{}
	kinds := []string{"kill-leader", "partition-minority", "partition-leader"}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	for i := 0; i < len(kinds) || (time.Now().Before(deadline) && issued.Load() < int64(maxOps)); i++ {
		kind := kinds[i%len(kinds)]
		var victim *testcluster.Server
		var during string
		at := float64(hist.now()) / 1e9
		switch kind {
		case "kill-leader":
			victim = c.Leader()
			alive[indexOf(victim)].Store(false)
			victim.Stop()
			time.Sleep(hold)
			during = leaderNow()
			victim.Restart()
			alive[indexOf(victim)].Store(true)
		case "partition-minority":
			victim = c.Followers()[rand.IntN(len(c.Servers)-1)]
			c.Partition(victim)
			time.Sleep(hold)
			during = leaderNow()
			c.Heal()
		case "partition-leader":
			victim = c.Leader()
			c.Partition(victim)
			time.Sleep(hold)
			during = leaderNow()
			c.Heal()
		}
		faults[kind]++
		t.Logf("chaos: fault %d at %.1fs: %s %s (leader during the fault: %s)", i+1, at, kind, victim.Config.Name, during)
		time.Sleep(settle)
	}
	stopClients()
	chaosTime := time.Since(hist.start)

	// The healthy cluster: a linearizable read on every server, retried
	// until it answers, ends the history.
	c.Leader()
	final := ""
	for i, s := range c.Servers {
		var set string
		var err error
		for try := 0; try < 30; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			call := hist.now()
			set, err = listSet(ctx, clients[i])
			ret := hist.now()
			cancel()
			if err == nil {
				hist.add(porcupine.Operation{ClientId: nClients, Input: linInput{}, Call: call, Output: set, Return: ret})
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("final list on %s: %v", s.Config.Name, err)
		}
		if i > 0 && set != final {
			t.Errorf("final lists differ: %s has %v, %s has %v", c.Servers[0].Config.Name, bitsetMembers(final), s.Config.Name, bitsetMembers(set))
		}
		final = set
	}

	// Acknowledged writes lost, and unknown writes that never took effect:
	// those can be linearized after everything else, so they are left out
	// of the check (which is equivalent and keeps it fast).
	var ops []porcupine.Operation
	writes, acked, unknown, unknownApplied, reads, lost := 0, 0, 0, 0, 0, 0
	for _, op := range hist.ops {
		in := op.Input.(linInput)
		if !in.create {
			reads++
			ops = append(ops, op)
			continue
		}
		writes++
		switch {
		case op.Output.(bool):
			acked++
			if !bitsetHas(final, in.n) {
				lost++
				t.Errorf("acknowledged create %d is missing from the final list", in.n)
			}
		case bitsetHas(final, in.n):
			unknown++
			unknownApplied++
		default:
			unknown++
			continue
		}
		ops = append(ops, op)
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(tokenSetModel, ops, 5*time.Minute)
	checkTime := time.Since(checkStart)

	var codes []string
	for k, n := range hist.codes {
		codes = append(codes, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(codes)
	clientLists := reads - len(c.Servers)
	t.Logf("chaos: operations: %d in %s by %d clients (creates %d: acknowledged %d, unknown %d of which applied %d; lists %d ok, %d failed), then %d final lists",
		writes+clientLists+hist.failedLists(), chaosTime.Round(time.Second), nClients, writes, acked, unknown, unknownApplied, clientLists, hist.failedLists(), len(c.Servers))
	t.Logf("chaos: failures: %s", strings.Join(codes, " "))
	for _, e := range hist.first {
		t.Logf("first failure: %s", e)
	}
	t.Logf("chaos: faults: %d (kill-leader %d, partition-minority %d, partition-leader %d)",
		faults["kill-leader"]+faults["partition-minority"]+faults["partition-leader"], faults["kill-leader"], faults["partition-minority"], faults["partition-leader"])
	t.Logf("chaos: verdict: %s (%d operations checked in %s)", res, len(ops), checkTime.Round(time.Millisecond))
	t.Logf("chaos: acknowledged writes lost: %d", lost)
	if res != porcupine.Ok || lost > 0 {
		// Not t.TempDir(): that is removed when the test ends.
		dir, err := os.MkdirTemp("", "cc-linearizability-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(tokenSetModel, info, path); err != nil {
			t.Logf("visualization: %v", err)
		} else {
			t.Logf("chaos: visualization: %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Error("the history is not linearizable")
		for _, e := range staleReads(ops, 10) {
			t.Log("chaos: " + e)
		}
	case porcupine.Unknown:
		t.Log("chaos: the checker timed out: no verdict")
	}
}

func (h *linHistory) failedLists() int {
	n := 0
	for k, v := range h.codes {
		if strings.HasPrefix(k, "list ") {
			n += v
		}
	}
	return n
}

// staleReads explains a non-linearizable history by its simplest faults: a
// list missing a create acknowledged before the list began, or missing an
// element an earlier list (one that ended before it began) returned.
func staleReads(ops []porcupine.Operation, max int) []string {
	var out []string
	for _, r := range ops {
		if r.Input.(linInput).create {
			continue
		}
		got := r.Output.(string)
		for _, w := range ops {
			in := w.Input.(linInput)
			switch {
			case len(out) >= max:
				return out
			case in.create && w.Output.(bool) && w.Return < r.Call && !bitsetHas(got, in.n):
				out = append(out, fmt.Sprintf("stale read: list on %v at %.3fs misses create(%d) acknowledged by %v at %.3fs",
					r.Metadata, float64(r.Call)/1e9, in.n, w.Metadata, float64(w.Return)/1e9))
			case !in.create && w.Return < r.Call:
				for _, n := range bitsetMembers(w.Output.(string)) {
					if !bitsetHas(got, n) {
						out = append(out, fmt.Sprintf("stale read: list on %v at %.3fs misses %d, which a list on %v returned at %.3fs",
							r.Metadata, float64(r.Call)/1e9, n, w.Metadata, float64(w.Return)/1e9))
						break
					}
				}
			}
		}
	}
	return out
}
