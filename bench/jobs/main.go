// Command jobbench is the job benchmark that bench/jobs.sh runs against a
// control-plane process it started: it submits a backlog of jobs that no
// node can fit (submit throughput and latency), lists queued jobs with that
// backlog in place (REST and gRPC latency, the server's memory and state
// size), then joins one real agent and measures dispatch latency of
// `/bin/busybox true` jobs beside `ctr run --rm` of the same image. It only
// talks to the addresses it is given and to the local containerd.
//
//	jobbench -addr 127.0.0.1:7443 -ca ca.crt -token T -pid PID -data-dir DIR -backlog 100000 \
//	    -agent-bin bin/cc-agent -agent-dir DIR -namespace NS -ctr-namespace NS2 -bridge BR -subnet CIDR \
//	    -archive cc-demo.tar
//	jobbench purge -agent-bin bin/cc-agent -state-dir DIR -namespace NS -ctr-namespace NS2 -bridge BR -subnet CIDR
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

type options struct {
	addr, ca, token string
	pid             int
	dataDir         string

	backlog, clients int
	backlogQueue     string
	backlogMemory    int64
	listRequests     int
	scanRequests     int

	image, archive       string
	dispatchJobs, warmup int
	agentBin, agentDir   string
	namespace, ctrNS     string
	bridge, subnet       string
	agentMemory          string
	agentPIDFile         string
	skipDispatch         bool
	timeout              time.Duration
	jobTimeout           time.Duration
	ctrBin               string
	command              []string
	version              string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "purge" {
		os.Exit(purgeMain(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:7443", "API address of the control-plane server")
	flag.StringVar(&o.ca, "ca", "", "cluster CA certificate file")
	flag.StringVar(&o.token, "token", "", "admin API token (default $CC_TOKEN)")
	flag.IntVar(&o.pid, "pid", 0, "process id of the server (for its RSS and CPU time)")
	flag.StringVar(&o.dataDir, "data-dir", "", "data dir of the server (for state.db and raft.db sizes)")
	flag.IntVar(&o.backlog, "backlog", 100000, "jobs to queue that no node can fit")
	flag.IntVar(&o.clients, "c", 32, "concurrent submitting clients, one connection each")
	flag.StringVar(&o.backlogQueue, "backlog-queue", "backlog", "queue of the backlog jobs")
	flag.Int64Var(&o.backlogMemory, "backlog-memory", 1<<50, "memory (bytes) each backlog job asks for; if the server refuses it, the largest accepted power-of-two fraction is used")
	flag.IntVar(&o.listRequests, "list-requests", 200, "sequential ListJobs requests per method")
	flag.IntVar(&o.scanRequests, "scan-requests", 10, "sequential ListJobs requests with a queue filter that scans the backlog (0: skip)")
	flag.StringVar(&o.image, "image", "cc-demo:latest", "image of the jobs (loaded into the cluster beforehand)")
	flag.StringVar(&o.archive, "archive", "", "OCI archive of -image, imported into -ctr-namespace for the ctr baseline")
	flag.IntVar(&o.dispatchJobs, "jobs", 30, "jobs submitted one at a time on the idle node (and as many ctr runs)")
	flag.IntVar(&o.warmup, "warmup", 2, "jobs (and ctr runs) before the measured ones, not counted")
	flag.StringVar(&o.agentBin, "agent-bin", "bin/cc-agent", "cc-agent binary")
	flag.StringVar(&o.agentDir, "agent-dir", "", "data dir of the agent")
	flag.StringVar(&o.namespace, "namespace", "", "containerd namespace of the agent")
	flag.StringVar(&o.ctrNS, "ctr-namespace", "", "containerd namespace of the ctr baseline")
	flag.StringVar(&o.bridge, "bridge", "", "CNI bridge of the agent")
	flag.StringVar(&o.subnet, "subnet", "", "CNI subnet of the agent")
	flag.StringVar(&o.agentMemory, "agent-memory", "4g", "memory the agent offers to the scheduler")
	flag.StringVar(&o.agentPIDFile, "agent-pidfile", "", "file to write the agent's pid to (for the caller's cleanup)")
	flag.BoolVar(&o.skipDispatch, "skip-dispatch", false, "skip the agent, dispatch and ctr part")
	flag.DurationVar(&o.timeout, "timeout", 9*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.jobTimeout, "job-wait", time.Minute, "longest wait for one dispatched job to end")
	flag.StringVar(&o.ctrBin, "ctr", "ctr", "ctr binary")
	flag.StringVar(&o.version, "version", "", "what was built (git describe), for the report")
	flag.Parse()
	if o.token == "" {
		o.token = os.Getenv("CC_TOKEN")
	}
	o.command = []string{"/bin/busybox", "true"}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &report{}
	err := run(ctx, o, r)
	r.print(os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "jobbench: %v\n", err)
		os.Exit(1)
	}
}

// report is the table printed at the end, in the order rows were added,
// and the summary block after it.
type report struct {
	rows    [][2]string
	summary []string
}

func (r *report) add(name, format string, args ...any) {
	r.rows = append(r.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (r *report) section(name string) { r.rows = append(r.rows, [2]string{"", name}) }

func (r *report) sum(format string, args ...any) {
	r.summary = append(r.summary, fmt.Sprintf(format, args...))
}

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
	if len(r.summary) > 0 {
		fmt.Fprintf(w, "\n== summary\n```\n%s\n```\n", strings.Join(r.summary, "\n"))
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "jobbench: "+format+"\n", args...)
}

// bench holds the connections and what the phases share.
type bench struct {
	o       options
	r       *report
	dial    func() (*clusterdial.Conn, error)
	conn    *clusterdial.Conn
	jobs    ccv1.JobServiceClient
	tls     *tls.Config // for REST: the cluster CA as the only root
	start   time.Time
	procs   []*os.Process // started here, stopped at the end
	numJobs int           // jobs submitted so far, all phases
	queued  uint64        // backlog jobs queued (ListQueues)
}

func run(ctx context.Context, o options, r *report) error {
	if o.ca == "" || o.token == "" {
		return errors.New("need -ca and -token")
	}
	if o.backlog < 1 || o.clients < 1 {
		return errors.New("-backlog and -c must be at least 1")
	}
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
	b := &bench{o: o, r: r, start: time.Now(),
		tls: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}
	b.dial = func() (*clusterdial.Conn, error) {
		return clusterdial.Dial([]string{o.addr}, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(o.token)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	}
	if b.conn, err = b.dial(); err != nil {
		return err
	}
	defer b.conn.Close()
	b.jobs = ccv1.NewJobServiceClient(b.conn)
	defer b.stopProcs()

	r.section("setup")
	load0 := benchstat.LoadAvg()
	r.add("host", "%d CPUs (Go sees %d), %s memory; load average before: %s", benchstat.NProc(), runtime.NumCPU(), benchstat.MiB(benchstat.MemTotal()), load0)
	r.add("control plane", "%s, pid %d, data dir %s; build %s", o.addr, o.pid, o.dataDir, o.version)
	if _, err := b.jobs.ListQueues(ctx, &ccv1.ListQueuesRequest{}); err != nil {
		return fmt.Errorf("the server has no working job API (ListQueues: %w)", err)
	}
	r.sum("Job benchmark (bench/jobs.sh %d), %s", o.backlog, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	r.sum("build %s; host: %d CPUs, %s RAM; load average before %s", o.version, benchstat.NProc(), benchstat.MiB(benchstat.MemTotal()), load0)
	defer func() {
		load1 := benchstat.LoadAvg()
		r.section("end")
		r.add("load average after", "%s", load1)
		r.add("whole run", "%s", time.Since(b.start).Round(time.Second))
		r.sum("load average after %s; whole run %s", load1, time.Since(b.start).Round(time.Second))
	}()

	if err := b.backlogPhase(ctx); err != nil {
		return err
	}
	if err := b.listPhase(ctx); err != nil {
		return err
	}
	if o.skipDispatch {
		r.add("dispatch", "skipped (-skip-dispatch)")
		return nil
	}
	return b.dispatchPhase(ctx)
}

// stopProcs stops the processes this run started: SIGTERM, then SIGKILL
// after 15 s.
func (b *bench) stopProcs() {
	for _, p := range b.procs {
		_ = p.Signal(syscall.SIGTERM)
	}
	for _, p := range b.procs {
		done := make(chan struct{})
		go func() { _, _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Kill()
			<-done
		}
	}
	b.procs = nil
}

// poll calls cond every interval until it holds or ctx ends.
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
