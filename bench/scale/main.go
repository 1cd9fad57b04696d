// Command scale is the cluster-scale benchmark that bench/scale.sh runs
// against control-plane processes it started: it joins a fleet of simulated
// nodes (internal/testing/simnode, real protocol over real mutual TLS) to the
// cluster, creates services totalling a number of tasks, and prints the
// fleet's join time, placement throughput, assignment delivery latency, the
// time until every task runs, the leader's memory and CPU time, and the
// sizes of the raft log and snapshots. It only talks to the addresses it is
// given.
//
//	scale -addr A1,A2,A3 -ca ca.crt -token T -pids P1,P2,P3 -data-dirs D1,D2,D3 -nodes 5000 -tasks 100000
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/testing/simnode"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

type options struct {
	addrs, pids, dirs, pprofs []string
	ca, token                 string
	nodes, tasks, services    int
	mode                      string
	concurrency               int
	heartbeat, idle, timeout  time.Duration
	settle, rest              time.Duration
	cpuMillis, memBytes       int64
	profile                   string
	profileFor                time.Duration
	image                     string
	watchers                  int
}

func main() {
	var o options
	addr := flag.String("addr", "127.0.0.1:7443", "API addresses of the servers, comma-separated")
	pids := flag.String("pids", "", "process ids of the servers, in the order of -addr (for RSS and CPU time)")
	dirs := flag.String("data-dirs", "", "data dirs of the servers, in the order of -addr (to find the leader and the raft files)")
	pprofs := flag.String("pprof", "", "pprof HTTP addresses of the servers, in the order of -addr (optional; see bench/scale/pprofserver)")
	flag.StringVar(&o.ca, "ca", "", "cluster CA certificate file")
	flag.StringVar(&o.token, "token", "", "admin API token (default $CC_TOKEN)")
	flag.IntVar(&o.nodes, "nodes", 5000, "simulated nodes")
	flag.IntVar(&o.tasks, "tasks", 100000, "tasks in all (0: join the fleet and measure it at rest only)")
	flag.IntVar(&o.services, "services", 100, "services the tasks are split over (mode services)")
	flag.StringVar(&o.mode, "mode", "services", "services: CreateService with replicas; containers: one CreateContainer per task")
	flag.IntVar(&o.concurrency, "c", 8, "concurrent create calls")
	flag.DurationVar(&o.heartbeat, "heartbeat", simnode.DefaultHeartbeat, "heartbeat period of the simulated nodes")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "how long to measure the servers' CPU with the fleet at rest")
	flag.DurationVar(&o.rest, "rest", 60*time.Second, "after the workload, how long to wait before reading the leader's RSS again (0: do not)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.settle, "settle", 3*time.Minute, "how long to wait for the last 1% of the tasks to run in the API")
	flag.Int64Var(&o.cpuMillis, "task-cpu", 10, "CPU reservation of a task, in millicores")
	flag.Int64Var(&o.memBytes, "task-memory", 16<<20, "memory reservation of a task, in bytes")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of the leader to PREFIX.join.pprof (while the fleet joins) and PREFIX.workload.pprof (needs -pprof)")
	flag.DurationVar(&o.profileFor, "profile-seconds", 30*time.Second, "length of each CPU profile (from the start of its phase)")
	flag.StringVar(&o.image, "image", "example.com/scale/sim:1", "image of the tasks (simulated nodes run nothing)")
	flag.IntVar(&o.watchers, "watchers", 0, "container watch streams (WatchContainers, as the dashboard's containers page) open on the leader during the workload")
	flag.Parse()
	if o.token == "" {
		o.token = os.Getenv("CC_TOKEN")
	}
	o.addrs = split(*addr)
	o.pids, o.dirs, o.pprofs = split(*pids), split(*dirs), split(*pprofs)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &report{}
	err := run(ctx, o, r)
	r.print(os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// report is the table printed at the end, in the order rows were added.
type report struct{ rows [][2]string }

func (r *report) add(name, format string, args ...any) {
	r.rows = append(r.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (r *report) section(name string) { r.rows = append(r.rows, [2]string{"", name}) }

func (r *report) print(w io.Writer) {
	width := 0
	for _, row := range r.rows {
		width = max(width, len(row[0]))
	}
	fmt.Fprintln(w)
	for _, row := range r.rows {
		if row[0] == "" {
			fmt.Fprintf(w, "\n== %s\n", row[1])
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, row[0], row[1])
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
}

// server is one control-plane process.
type server struct {
	addr, dir, id, pprof string
	pid                  int
}

type clients struct {
	cluster    ccv1.ClusterServiceClient
	nodes      ccv1.NodeServiceClient
	tokens     ccv1.TokenServiceClient
	containers ccv1.ContainerServiceClient
	services   ccv1.ServiceServiceClient
	// onLeader reaches the leader only (for -watchers).
	onLeader ccv1.ContainerServiceClient
}

func run(ctx context.Context, o options, r *report) error {
	if len(o.addrs) == 0 || o.ca == "" || o.token == "" {
		return errors.New("need -addr, -ca and -token")
	}
	if o.mode != "services" && o.mode != "containers" {
		return fmt.Errorf("-mode %q: services or containers", o.mode)
	}
	servers := make([]*server, len(o.addrs))
	for i, a := range o.addrs {
		s := &server{addr: a}
		if i < len(o.pids) {
			s.pid, _ = strconv.Atoi(o.pids[i])
		}
		if i < len(o.dirs) {
			s.dir = o.dirs[i]
			if b, err := os.ReadFile(filepath.Join(s.dir, "server-id")); err == nil {
				s.id = strings.TrimSpace(string(b))
			}
		}
		if i < len(o.pprofs) {
			s.pprof = o.pprofs[i]
		}
		servers[i] = s
	}

	r.section("setup")
	limit, err := simnode.RaiseFileLimit()
	if err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	r.add("open-file limit (bench process)", "%d", limit)
	if need := uint64(o.nodes) + 256; need > limit {
		return fmt.Errorf("%d nodes need %d file descriptors (one connection each, plus spare); the limit is %d: raise the hard limit (ulimit -Hn) or use fewer nodes", o.nodes, need, limit)
	}
	r.add("servers", "%d (%s)", len(servers), strings.Join(o.addrs, " "))
	r.add("nodes / tasks", "%d / %d (mode %s, %d services, reservation %dm CPU %s per task)", o.nodes, o.tasks, o.mode, o.services, o.cpuMillis, benchstat.MiB(o.memBytes))
	r.add("CPUs of this host", "%d (the servers and the fleet share them)", runtime.NumCPU())

	caPEM, err := os.ReadFile(o.ca)
	if err != nil {
		return fmt.Errorf("-ca: %w", err)
	}
	pool, err := pki.Pool(caPEM)
	if err != nil {
		return err
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) }})
	conn, err := clusterdial.Dial(o.addrs, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(o.token)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := clients{
		cluster: ccv1.NewClusterServiceClient(conn), nodes: ccv1.NewNodeServiceClient(conn),
		tokens: ccv1.NewTokenServiceClient(conn), containers: ccv1.NewContainerServiceClient(conn),
		services: ccv1.NewServiceServiceClient(conn),
	}
	leader, term, err := findLeader(ctx, c, servers)
	if err != nil {
		return err
	}
	r.add("leader", "%s (%s, pid %d), raft term %d", leader.addr, leader.id, leader.pid, term)
	if o.watchers > 0 {
		lconn, err := clusterdial.Dial([]string{leader.addr}, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(o.token)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
		if err != nil {
			return err
		}
		defer lconn.Close()
		c.onLeader = ccv1.NewContainerServiceClient(lconn)
	}
	defer func() {
		// A leader that lost its leadership under load is a result too.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if now, t, err := findLeader(sctx, c, servers); err == nil && (now != leader || t != term) {
			r.add("leadership changed during the run", "now %s (%s), raft term %d → %d; the figures are of the first leader", now.addr, now.id, term, t)
		}
	}()
	atRest := benchstat.ReadProc(leader.pid)

	// The fleet.
	r.section("fleet")
	// Spare uses: a join whose answer is lost under load is retried under
	// another name (see simnode).
	tok, err := c.tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: uint32(o.nodes + max(16, o.nodes/20)), Description: "bench/scale"})
	if err != nil {
		return fmt.Errorf("agent join token: %w", err)
	}
	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	self0 := benchstat.ReadProc(os.Getpid())
	g0 := runtime.NumGoroutine()
	progress("joining %d simulated nodes", o.nodes)
	joinProf := startProfile(ctx, o, leader, "join")
	t0 := time.Now()
	fleet, err := simnode.Start(ctx, simnode.Config{
		Servers: o.addrs, Token: tok.Secret, Count: o.nodes, Heartbeat: o.heartbeat,
		Labels: func(i int) map[string]string { return map[string]string{"zone": fmt.Sprintf("z%d", i%3)} },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() {
		t := time.Now()
		fleet.Close()
		progress("fleet closed in %s", time.Since(t).Round(time.Millisecond))
	}()
	joined := time.Since(t0)
	r.add("join (Start: key, CSR, Join, 64 at a time)", "%s (%.0f nodes/s)", joined.Round(time.Millisecond), float64(o.nodes)/joined.Seconds())
	if err := poll(ctx, 100*time.Millisecond, func() (bool, string) {
		return fleet.Connected() == o.nodes, fmt.Sprintf("%d/%d sessions", fleet.Connected(), o.nodes)
	}); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	r.add("every session open (full set received)", "%s after the first join", time.Since(t0).Round(time.Millisecond))
	if err := poll(ctx, time.Second, func() (bool, string) {
		resp, err := c.nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range resp.Nodes {
			if strings.HasPrefix(n.Name, "sim-") && n.State == ccv1.NodeState_NODE_STATE_READY {
				ready++
			}
		}
		return ready >= o.nodes, fmt.Sprintf("%d/%d ready", ready, o.nodes)
	}); err != nil {
		return fmt.Errorf("nodes ready: %w", err)
	}
	r.add("every node ready in ListNodes", "%s after the first join", time.Since(t0).Round(time.Millisecond))
	joinProf.wait(r)
	heapProfile(ctx, o, leader, "join", r)

	var ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	self1 := benchstat.ReadProc(os.Getpid())
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(o.nodes) }
	r.add("bench process per node: heap in use", "%s", benchstat.KiB(per(ms1.HeapInuse, ms0.HeapInuse)))
	r.add("bench process per node: goroutine stacks", "%s (%.1f goroutines per node)", benchstat.KiB(per(ms1.StackInuse, ms0.StackInuse)), float64(runtime.NumGoroutine()-g0)/float64(o.nodes))
	r.add("bench process per node: RSS", "%s (RSS %s for %d nodes)", benchstat.KiB(float64(self1.RSS-self0.RSS)/float64(o.nodes)), benchstat.MiB(self1.RSS), o.nodes)
	r.add("bench process open files", "%d of %d", benchstat.OpenFiles(), limit)

	// The servers at rest with the fleet connected: heartbeats only.
	progress("fleet ready; measuring the servers at rest for %s", o.idle)
	afterJoin := benchstat.ReadProc(leader.pid)
	before := make([]benchstat.Proc, len(servers))
	for i, s := range servers {
		before[i] = benchstat.ReadProc(s.pid)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.idle):
	}
	var idle []string
	for i, s := range servers {
		if a := benchstat.ReadProc(s.pid); a.OK && before[i].OK {
			idle = append(idle, fmt.Sprintf("%s %.1f%%", s.id, 100*(a.CPU-before[i].CPU).Seconds()/o.idle.Seconds()))
		}
	}
	r.add("server CPU with the fleet at rest", "%s (of one core, over %s; heartbeat %s)", strings.Join(idle, ", "), o.idle, o.heartbeat)

	if o.tasks == 0 {
		reportSessions(r, fleet)
	} else {
		if err := runWorkload(ctx, o, c, fleet, leader, servers, r); err != nil {
			reportServers(r, leader, atRest, afterJoin, benchstat.ReadProc(leader.pid), servers)
			return err
		}
		heapProfile(ctx, o, leader, "workload", r)
	}
	afterWork := benchstat.ReadProc(leader.pid)
	reportServers(r, leader, atRest, afterJoin, afterWork, servers)
	if o.tasks > 0 && o.rest > 0 && afterWork.OK {
		// What stays: Go returns the heap a burst left idle to the
		// system over the following seconds.
		progress("measuring the leader's RSS after %s at rest", o.rest)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.rest):
		}
		if p := benchstat.ReadProc(leader.pid); p.OK {
			r.add(fmt.Sprintf("leader RSS %s after the workload", o.rest), "%s (anonymous %s, mapped files %s)", benchstat.MiB(p.RSS), benchstat.MiB(p.RSSAnon), benchstat.MiB(p.RSSFile))
		}
	}
	return nil
}

// findLeader asks the cluster for its leader until it has one, and returns
// the raft term.
func findLeader(ctx context.Context, c clients, servers []*server) (*server, uint64, error) {
	var leader *server
	var term uint64
	err := poll(ctx, 200*time.Millisecond, func() (bool, string) {
		st, err := c.cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
		if err != nil {
			return false, err.Error()
		}
		term = st.Term
		for _, s := range servers {
			if s.id != "" && s.id == st.LeaderId {
				leader = s
				return true, ""
			}
		}
		if st.LeaderId != "" {
			// No data dirs given: name the leader by its address.
			for _, s := range servers {
				if s.addr == st.LeaderAddress {
					leader = s
					return true, ""
				}
			}
			leader = &server{id: st.LeaderId, addr: st.LeaderAddress}
			return true, ""
		}
		return false, "no leader"
	})
	return leader, term, err
}

// runWorkload creates the tasks and measures placement, delivery and the
// time until every task runs.
func runWorkload(ctx context.Context, o options, c clients, fleet *simnode.Fleet, leader *server, servers []*server, r *report) error {
	r.section("workload")
	progress("creating %d tasks (%s)", o.tasks, o.mode)
	prof := startProfile(ctx, o, leader, "workload")
	defer prof.wait(r)
	watchers, err := startWatchers(ctx, o, c)
	if err != nil {
		return err
	}
	idx0 := raftIndex(ctx, c)
	cpu0 := cpuTimes(servers)
	t0 := time.Now()
	defer func() {
		d := time.Since(t0)
		if idx := raftIndex(ctx, c); idx0 > 0 && idx > idx0 {
			r.add("raft entries during the workload", "%d in %s (%.0f/s)", idx-idx0, d.Round(time.Second), float64(idx-idx0)/d.Seconds())
		}
		// Where the host's CPU went: the servers and the fleet share it.
		cpu1 := cpuTimes(servers)
		var parts []string
		for i, s := range servers {
			parts = append(parts, fmt.Sprintf("%s %.2f", s.id, (cpu1[i]-cpu0[i]).Seconds()/d.Seconds()))
		}
		self := len(servers)
		parts = append(parts, fmt.Sprintf("bench (fleet) %.2f", (cpu1[self]-cpu0[self]).Seconds()/d.Seconds()))
		r.add("CPU during the workload (cores)", "%s; host has %d", strings.Join(parts, ", "), runtime.NumCPU())
	}()
	var serviceIDs []string
	switch o.mode {
	case "services":
		serviceIDs, err = createServices(ctx, o, c)
	case "containers":
		err = createContainers(ctx, o, c, fleet)
	}
	created := time.Since(t0)
	if err != nil {
		return err
	}
	r.add("create calls", "%s (%d %s, %d at a time)", created.Round(time.Millisecond), map[string]int{"services": o.services, "containers": o.tasks}[o.mode], o.mode, o.concurrency)

	// Every task running as the fleet sees it (it runs what it receives).
	lastLog := time.Now()
	err = poll(ctx, 100*time.Millisecond, func() (bool, string) {
		n := fleet.Tasks()
		if time.Since(lastLog) > 5*time.Second {
			progress("%s: fleet runs %d/%d tasks, %d sessions open", time.Since(t0).Round(time.Second), n, o.tasks, fleet.Connected())
			lastLog = time.Now()
		}
		return n >= o.tasks, fmt.Sprintf("fleet runs %d/%d", n, o.tasks)
	})
	if err != nil {
		return fmt.Errorf("tasks delivered: %w", err)
	}
	r.add("every task received and running on its node", "%s after the first create", time.Since(t0).Round(time.Millisecond))

	// Placement and delivery, from the tasks' own timestamps.
	if err := placementAndDelivery(ctx, o, c, fleet, serviceIDs, t0, r); err != nil {
		return err
	}

	// Then as the API reports it (the status went through raft): 99%, then
	// 100% or -settle after 99%.
	var at99 time.Time
	last := 0
	err = poll(ctx, time.Second, func() (bool, string) {
		n, err := apiRunning(ctx, o, c)
		if err != nil {
			return false, err.Error()
		}
		last = n
		if time.Since(lastLog) > 5*time.Second {
			progress("%s: API reports %d/%d running, %d sessions open", time.Since(t0).Round(time.Second), n, o.tasks, fleet.Connected())
			lastLog = time.Now()
		}
		if at99.IsZero() && n >= o.tasks*99/100 {
			at99 = time.Now()
			r.add("99% of the tasks running in the API (status via raft)", "%s after the first create", at99.Sub(t0).Round(time.Millisecond))
		}
		if !at99.IsZero() && time.Since(at99) > o.settle {
			return true, ""
		}
		return n >= o.tasks, fmt.Sprintf("API reports %d/%d running", n, o.tasks)
	})
	if err != nil {
		return fmt.Errorf("tasks running in the API: %w", err)
	}
	if last >= o.tasks {
		r.add("every task running in the API", "%s after the first create", time.Since(t0).Round(time.Millisecond))
	} else {
		r.add("every task running in the API", "not reached: %d/%d running %s after 99%%", last, o.tasks, o.settle)
	}
	watchers.report(ctx, o, t0, r)
	reportSessions(r, fleet)
	return nil
}

// placementAndDelivery reports when the tasks were placed (their
// assigned_at) and how long each took to reach its node, and how many
// tasks were replaced (moved off a node marked down) during the run.
func placementAndDelivery(ctx context.Context, o options, c clients, fleet *simnode.Fleet, serviceIDs []string, t0 time.Time, r *report) error {
	tasks, err := listTasks(ctx, o, c, serviceIDs, false)
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	received := fleet.Received()
	firstByID := map[string]time.Time{}
	for k, t := range received {
		if f, ok := firstByID[k.ID]; !ok || t.Before(f) {
			firstByID[k.ID] = t
		}
	}
	var lat, placedAt []time.Duration
	missing, source := 0, ""
	for _, t := range tasks {
		if t.NodeId == "" {
			continue
		}
		at, src := assignedAt(t)
		source = src
		placedAt = append(placedAt, at.Sub(t0))
		got, ok := received[simnode.TaskKey{ID: t.Id, Generation: t.Generation}]
		if !ok {
			got, ok = firstByID[t.Id]
		}
		if !ok {
			missing++
			continue
		}
		lat = append(lat, got.Sub(at))
	}
	if len(placedAt) > 0 {
		benchstat.SortDurations(placedAt)
		p99, p100 := benchstat.Quantile(placedAt, 0.99), placedAt[len(placedAt)-1]
		r.add("placement (assigned_at after the first create)", "99%% in %s: %.0f tasks/s; all %d in %s (times from %s)",
			p99.Round(time.Millisecond), 0.99*float64(len(placedAt))/p99.Seconds(), len(placedAt), p100.Round(time.Millisecond), source)
	}
	if len(lat) > 0 {
		benchstat.SortDurations(lat)
		q := func(p float64) string { return benchstat.Quantile(lat, p).Round(100 * time.Microsecond).String() }
		r.add("delivery latency (assigned → on its node)", "p50 %s, p90 %s, p99 %s, max %s (%d tasks, %d never received)",
			q(0.50), q(0.90), q(0.99), lat[len(lat)-1].Round(time.Millisecond), len(lat), missing)
	}
	if o.mode == "services" {
		if all, err := listTasks(ctx, o, c, serviceIDs, true); err == nil {
			r.add("tasks replaced during the run", "%d (history tasks beside the %d current ones)", len(all)-len(tasks), len(tasks))
		}
	}
	return nil
}

// reportSessions says how many sessions the fleet lost, and why.
func reportSessions(r *report, fleet *simnode.Fleet) {
	ends := fleet.SessionEnds()
	total := 0
	type reason struct {
		why string
		n   int
	}
	var rs []reason
	for k, v := range ends {
		total += v
		rs = append(rs, reason{k, v})
	}
	r.add("sessions ended by the servers or the network", "%d (%d sessions opened for %d nodes)", total, fleet.Sessions(), fleet.Len())
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n })
	for i, x := range rs {
		if i == 5 {
			break
		}
		r.add(fmt.Sprintf("  reason %d", i+1), "%d× %s", x.n, x.why)
	}
}

// profile is a CPU profile of the leader being taken.
type profile struct {
	path, phase string
	seconds     time.Duration
	done        chan error
}

// startProfile starts a CPU profile of the leader for the first
// -profile-seconds of a phase, when asked for.
func startProfile(ctx context.Context, o options, leader *server, phase string) *profile {
	if o.profile == "" || leader.pprof == "" {
		return nil
	}
	p := &profile{path: o.profile + "." + phase + ".pprof", phase: phase, seconds: o.profileFor, done: make(chan error, 1)}
	go func() { p.done <- cpuProfile(ctx, leader.pprof, p.path, p.seconds) }()
	return p
}

// wait waits for the profile to be written (it covers its whole length
// even when the phase ended sooner) and reports it.
func (p *profile) wait(r *report) {
	if p == nil {
		return
	}
	if err := <-p.done; err != nil {
		progress("CPU profile of the %s: %v", p.phase, err)
		return
	}
	r.add("leader CPU profile: "+p.phase, "%s (first %s of the phase)", p.path, p.seconds)
}

// cpuTimes is the CPU time so far of each server, then of this process.
func cpuTimes(servers []*server) []time.Duration {
	out := make([]time.Duration, 0, len(servers)+1)
	for _, s := range servers {
		out = append(out, benchstat.ReadProc(s.pid).CPU)
	}
	return append(out, benchstat.ReadProc(os.Getpid()).CPU)
}

// raftIndex is the last raft index of the answering server, 0 when unknown.
func raftIndex(ctx context.Context, c clients) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
	if err != nil {
		return 0
	}
	return st.LastIndex
}

func serviceSpec(o options, replicas int) *ccv1.ServiceSpec {
	return &ccv1.ServiceSpec{
		Mode:     ccv1.ServiceMode_SERVICE_MODE_REPLICATED,
		Replicas: uint64(replicas),
		Task: &ccv1.ContainerSpec{
			Image:     o.image,
			Command:   []string{"/bin/sleep", "infinity"},
			Resources: &ccv1.ContainerResources{CpuMillis: o.cpuMillis, MemoryBytes: o.memBytes},
			Restart:   ccv1.RestartPolicy_RESTART_POLICY_ALWAYS,
			Network:   ccv1.NetworkMode_NETWORK_MODE_NONE,
		},
	}
}

func createServices(ctx context.Context, o options, c clients) ([]string, error) {
	ids := make([]string, o.services)
	return ids, parallel(ctx, o.services, o.concurrency, func(i int) error {
		replicas := o.tasks / o.services
		if i < o.tasks%o.services {
			replicas++
		}
		name := fmt.Sprintf("scale-%04d", i)
		id, err := createService(ctx, c, name, serviceSpec(o, replicas))
		if err != nil {
			return fmt.Errorf("create service %d: %w", i, err)
		}
		ids[i] = id
		return nil
	})
}

// createService creates a service as a user would through a leader change:
// a call refused as Unavailable (no leader, or the write may or may not
// have been applied) is tried again, and AlreadyExists on a retry means an
// earlier try was applied.
func createService(ctx context.Context, c clients, name string, spec *ccv1.ServiceSpec) (string, error) {
	for try := 0; ; try++ {
		resp, err := c.services.CreateService(ctx, &ccv1.CreateServiceRequest{Name: name, Spec: spec})
		switch {
		case err == nil:
			return resp.Service.Id, nil
		case try > 0 && status.Code(err) == codes.AlreadyExists:
			got, gerr := c.services.GetService(ctx, &ccv1.GetServiceRequest{Id: name})
			if gerr != nil {
				return "", gerr
			}
			return got.Service.Id, nil
		case status.Code(err) != codes.Unavailable || try >= 50 || ctx.Err() != nil:
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func createContainers(ctx context.Context, o options, c clients, fleet *simnode.Fleet) error {
	return parallel(ctx, o.tasks, o.concurrency, func(i int) error {
		spec := serviceSpec(o, 1).Task
		_, err := c.containers.CreateContainer(ctx, &ccv1.CreateContainerRequest{Name: fmt.Sprintf("scale-%06d", i), Spec: spec,
			Node: fleet.NodeID(i % fleet.Len())})
		if err != nil {
			return fmt.Errorf("create container %d: %w", i, err)
		}
		return nil
	})
}

// parallel runs fn(0..n-1), c at a time, and returns the first error.
func parallel(ctx context.Context, n, c int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < max(1, c); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// apiRunning counts the running tasks as the API reports them.
func apiRunning(ctx context.Context, o options, c clients) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if o.mode == "services" {
		resp, err := c.services.ListServices(cctx, &ccv1.ListServicesRequest{})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, s := range resp.Services {
			if strings.HasPrefix(s.Name, "scale-") {
				n += int(s.GetCounts().GetRunning())
			}
		}
		return n, nil
	}
	resp, err := c.containers.ListContainers(cctx, &ccv1.ListContainersRequest{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ct := range resp.Containers {
		if strings.HasPrefix(ct.Name, "scale-") && ct.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING {
			n++
		}
	}
	return n, nil
}

func listTasks(ctx context.Context, o options, c clients, serviceIDs []string, all bool) ([]*ccv1.Container, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if o.mode == "containers" {
		resp, err := c.containers.ListContainers(cctx, &ccv1.ListContainersRequest{All: true})
		if err != nil {
			return nil, err
		}
		return resp.Containers, nil
	}
	var out []*ccv1.Container
	for _, id := range serviceIDs {
		resp, err := c.services.ListServiceTasks(cctx, &ccv1.ListServiceTasksRequest{Id: id, All: all})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Tasks...)
	}
	return out, nil
}

// assignedAt is when the scheduler placed a task: its assigned_at field
// when the API has one, else its creation (a container is placed when it
// is created).
func assignedAt(t *ccv1.Container) (time.Time, string) {
	m := t.ProtoReflect()
	if fd := m.Descriptor().Fields().ByName("assigned_at"); fd != nil && m.Has(fd) {
		if ts, ok := m.Get(fd).Message().Interface().(*timestamppb.Timestamp); ok {
			return ts.AsTime(), "assigned_at"
		}
	}
	return t.GetCreatedAt().AsTime(), "created_at"
}

// heapProfile writes the leader's heap profile (after a GC) to
// PREFIX.heap.PHASE.pprof and its goroutines to PREFIX.goroutine.PHASE.pprof,
// when profiles are asked for.
func heapProfile(ctx context.Context, o options, leader *server, phase string, r *report) {
	if o.profile == "" || leader.pprof == "" {
		return
	}
	path := o.profile + ".heap." + phase + ".pprof"
	if err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", leader.pprof), path, 0); err != nil {
		progress("heap profile after the %s: %v", phase, err)
		return
	}
	r.add("leader heap profile: "+phase, "%s", path)
	path = o.profile + ".goroutine." + phase + ".pprof"
	if err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/goroutine", leader.pprof), path, 0); err != nil {
		progress("goroutine profile after the %s: %v", phase, err)
		return
	}
	r.add("leader goroutine profile: "+phase, "%s", path)
	path = o.profile + ".memstats." + phase + ".txt"
	if err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", leader.pprof), path, 0); err != nil {
		progress("memory statistics after the %s: %v", phase, err)
		return
	}
	if b, err := os.ReadFile(path); err == nil {
		var stats []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"# HeapInuse = ", "# HeapIdle = ", "# HeapReleased = ", "# Stack = ", "# NextGC = ", "# Sys = "} {
				if v, ok := strings.CutPrefix(l, k); ok {
					if n, err := strconv.ParseFloat(strings.Fields(v)[0], 64); err == nil {
						stats = append(stats, strings.TrimSuffix(strings.TrimPrefix(k, "# "), " = ")+" "+benchstat.MiB(int64(n)))
					}
				}
			}
		}
		r.add("leader Go memory: "+phase, "%s", strings.Join(stats, ", "))
	}
}

// cpuProfile fetches a CPU profile of d from a pprof HTTP address.
func cpuProfile(ctx context.Context, addr, path string, d time.Duration) error {
	return fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), path, d)
}

// fetchProfile writes what a pprof URL answers to path; d is how long the
// profile takes to collect.
func fetchProfile(ctx context.Context, url, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof at %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reportServers adds the leader's memory and CPU time and every server's
// raft files.
func reportServers(r *report, leader *server, atRest, afterJoin, afterWork benchstat.Proc, servers []*server) {
	r.section("servers")
	if atRest.OK && afterWork.OK {
		r.add("leader RSS: empty / fleet joined / after workload", "%s / %s / %s", benchstat.MiB(atRest.RSS), benchstat.MiB(afterJoin.RSS), benchstat.MiB(afterWork.RSS))
		r.add("leader RSS after workload: anonymous / mapped files", "%s / %s", benchstat.MiB(afterWork.RSSAnon), benchstat.MiB(afterWork.RSSFile))
		r.add("leader CPU time: joins+idle / workload", "%s / %s", (afterJoin.CPU - atRest.CPU).Round(10*time.Millisecond), (afterWork.CPU - afterJoin.CPU).Round(10*time.Millisecond))
	}
	for _, s := range servers {
		if s.dir == "" {
			continue
		}
		snap, n := benchstat.DirSize(filepath.Join(s.dir, "raft", "snapshots"))
		role := "follower"
		if s == leader {
			role = "leader"
		}
		p := benchstat.ReadProc(s.pid)
		r.add(fmt.Sprintf("%s (%s)", s.id, role), "raft.db %s, snapshots %s (%d), state.db %s, RSS %s, CPU %s",
			benchstat.MiB(benchstat.FileSize(filepath.Join(s.dir, "raft", "raft.db"))), benchstat.MiB(snap), n,
			benchstat.MiB(benchstat.FileSize(filepath.Join(s.dir, "state.db"))), benchstat.MiB(p.RSS), p.CPU.Round(10*time.Millisecond))
	}
}

// poll calls cond every interval until it holds or ctx ends; the error
// then says where it stood.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, string)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, where := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%s)", ctx.Err(), where)
		case <-t.C:
		}
	}
}

// watchers are -watchers container watch streams on the leader, each
// keeping the running tasks as its events say.
type watchers struct {
	n      int
	events atomic.Int64
	// done gets, per stream, when it saw every task running (or nothing
	// when the stream ended first).
	done chan time.Time
}

// startWatchers opens the streams and waits for each one's first list.
func startWatchers(ctx context.Context, o options, c clients) (*watchers, error) {
	w := &watchers{n: o.watchers, done: make(chan time.Time, o.watchers)}
	for i := 0; i < o.watchers; i++ {
		st, err := c.onLeader.WatchContainers(ctx, &ccv1.WatchContainersRequest{})
		if err != nil {
			return nil, fmt.Errorf("watch containers: %w", err)
		}
		synced := make(chan error, 1)
		go func() {
			running := map[string]bool{}
			n, reported, first := 0, false, true
			for {
				m, err := st.Recv()
				if err != nil {
					if first {
						synced <- err
					}
					return
				}
				w.events.Add(1)
				switch m.GetEvent() {
				case ccv1.WatchEvent_WATCH_EVENT_SYNCED:
					if first {
						first = false
						synced <- nil
					}
				case ccv1.WatchEvent_WATCH_EVENT_PUT:
					now := m.GetContainer().GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING
					if running[m.GetId()] != now {
						n += map[bool]int{true: 1, false: -1}[now]
					}
					running[m.GetId()] = now
				case ccv1.WatchEvent_WATCH_EVENT_REMOVED:
					if running[m.GetId()] {
						n--
					}
					delete(running, m.GetId())
				}
				if !reported && o.tasks > 0 && n >= o.tasks {
					reported = true
					w.done <- time.Now()
				}
			}
		}()
		if err := <-synced; err != nil {
			return nil, fmt.Errorf("watch containers: %w", err)
		}
	}
	if w.n > 0 {
		progress("%d container watch streams open on the leader", w.n)
	}
	return w, nil
}

// report says when the streams saw every task running (the slowest), and
// how many events they got, waiting up to -settle for the last of them.
func (w *watchers) report(ctx context.Context, o options, t0 time.Time, r *report) {
	if w.n == 0 {
		return
	}
	var last time.Time
	seen := 0
	wait := time.NewTimer(o.settle)
	defer wait.Stop()
	for seen < w.n {
		select {
		case t := <-w.done:
			seen++
			last = t
		case <-wait.C:
			r.add("every task running in the watch streams", "%d of %d streams saw it within %s", seen, w.n, o.settle)
			return
		case <-ctx.Done():
			return
		}
	}
	r.add("every task running in the watch streams", "%s after the first create (the slowest of %d streams on the leader); %d events, %.0f per stream",
		last.Sub(t0).Round(time.Millisecond), w.n, w.events.Load(), float64(w.events.Load())/float64(w.n))
}
