// Command failover measures leader failover of a running cluster (see
// bench/failover.sh): for each trial it finds the leader, kills it with
// SIGKILL, and times how long until a write (a viewer token creation) sent to
// any other server succeeds. Writes start every few milliseconds against every
// surviving server, each on its own connection, so the first success marks the
// moment the cluster took writes again. Then it restarts the killed server with
// its own command line and waits until it has caught up before the next trial.
//
// It prints each trial (time to the next write, the new leader and term) and
// the median, minimum and maximum, and writes the servers' final process ids
// to -pidfile so that the script can stop them.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/clusterdial"
	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func main() {
	addrs := flag.String("addr", "", "API addresses of the servers, comma-separated")
	pids := flag.String("pids", "", "process ids of the servers, comma-separated, in the order of -addr")
	token := flag.String("token", os.Getenv("CC_TOKEN"), "admin API token")
	caPath := flag.String("ca", "", "cluster CA certificate file")
	trials := flag.Int("trials", 5, "leaders to kill")
	logDir := flag.String("log-dir", ".", "where a restarted server's output goes (s<N>.log, appended)")
	pidfile := flag.String("pidfile", "", "file for the servers' process ids at the end")
	interval := flag.Duration("interval", 5*time.Millisecond, "between write attempts on each surviving server")
	flag.Parse()
	b, err := newBench(*addrs, *pids, *token, *caPath)
	if err == nil {
		err = b.run(*trials, *logDir, *interval)
		if *pidfile != "" {
			if werr := b.writePids(*pidfile); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "failover: %v\n", err)
		os.Exit(1)
	}
}

type server struct {
	addr    string
	pid     int
	tokens  ccv1.TokenServiceClient
	cluster ccv1.ClusterServiceClient
}

type bench struct {
	servers []*server
}

func newBench(addrs, pids, token, caPath string) (*bench, error) {
	a, p := strings.Split(addrs, ","), strings.Split(pids, ",")
	if addrs == "" || len(a) != len(p) {
		return nil, fmt.Errorf("-addr and -pids must name the same number of servers (got %d and %d)", len(a), len(p))
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	pool, err := pki.Pool(caPEM)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error { return pki.VerifyServer(cs, pool) }})
	b := &bench{}
	for i := range a {
		pid, err := strconv.Atoi(p[i])
		if err != nil {
			return nil, fmt.Errorf("-pids: %q is not a process id", p[i])
		}
		// One connection per server and no failover between them: a
		// write to a server is a write to that server.
		conn, err := clusterdial.Dial([]string{a[i]}, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(clusterdial.Bearer(token)))
		if err != nil {
			return nil, err
		}
		b.servers = append(b.servers, &server{addr: a[i], pid: pid, tokens: ccv1.NewTokenServiceClient(conn), cluster: ccv1.NewClusterServiceClient(conn)})
	}
	return b, nil
}

func (b *bench) writePids(path string) error {
	var s []string
	for _, srv := range b.servers {
		s = append(s, strconv.Itoa(srv.pid))
	}
	return os.WriteFile(path, []byte(strings.Join(s, "\n")+"\n"), 0o644)
}

func (b *bench) status(srv *server) (*ccv1.GetStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
}

// settled waits until every server answers, one of them is the leader and
// all the others follow it and have applied what the leader had committed
// when the wait began.
func (b *bench) settled(timeout time.Duration) (int, *ccv1.GetStatusResponse, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		leader, st, err := b.check()
		if err == nil {
			return leader, st, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return -1, nil, fmt.Errorf("the cluster did not settle within %s: %v", timeout, last)
}

func (b *bench) check() (int, *ccv1.GetStatusResponse, error) {
	leader := -1
	var lst *ccv1.GetStatusResponse
	sts := make([]*ccv1.GetStatusResponse, len(b.servers))
	for i, srv := range b.servers {
		st, err := b.status(srv)
		if err != nil {
			return -1, nil, fmt.Errorf("%s: %v", srv.addr, err)
		}
		sts[i] = st
		if st.RaftState == "Leader" {
			leader, lst = i, st
		}
	}
	if leader < 0 {
		return -1, nil, errors.New("no leader")
	}
	for i, st := range sts {
		if i != leader && (st.LeaderId != lst.ServerId || st.AppliedIndex+5 < lst.CommitIndex) {
			return -1, nil, fmt.Errorf("%s follows %q at applied index %d (leader %s at %d)", b.servers[i].addr, st.LeaderId, st.AppliedIndex, lst.ServerId, lst.CommitIndex)
		}
	}
	return leader, lst, nil
}

type trial struct {
	took          time.Duration
	attempts      int
	failed        int
	oldID, newID  string
	oldTerm, term uint64
}

func (b *bench) run(trials int, logDir string, interval time.Duration) error {
	var took []time.Duration
	fmt.Printf("%-6s %12s %10s %10s %-14s %-14s %s\n", "trial", "next write", "attempts", "refused", "killed", "new leader", "term")
	for t := 1; t <= trials; t++ {
		leader, st, err := b.settled(60 * time.Second)
		if err != nil {
			return err
		}
		// Quiet for a moment, as a cluster is before an accident.
		time.Sleep(2 * time.Second)
		tr, err := b.killOne(leader, st, logDir, interval)
		if err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
		took = append(took, tr.took)
		fmt.Printf("%-6d %12s %10d %10d %-14s %-14s %d -> %d\n", t, benchstat.Ms(tr.took), tr.attempts, tr.failed, tr.oldID, tr.newID, tr.oldTerm, tr.term)
	}
	if _, _, err := b.settled(60 * time.Second); err != nil {
		return err
	}
	benchstat.SortDurations(took)
	fmt.Printf("\nkill -9 of the leader -> next successful write, %d trials: median %s, min %s, max %s\n",
		len(took), benchstat.Ms(benchstat.Quantile(took, 0.5)), benchstat.Ms(took[0]), benchstat.Ms(took[len(took)-1]))
	return nil
}

func (b *bench) killOne(leader int, st *ccv1.GetStatusResponse, logDir string, interval time.Duration) (trial, error) {
	srv := b.servers[leader]
	argv, cwd, err := cmdline(srv.pid)
	if err != nil {
		return trial{}, err
	}
	tr := trial{oldID: st.ServerId, oldTerm: st.Term}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type outcome struct {
		at  time.Time
		srv *server
	}
	first := make(chan outcome, 1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	if err := syscall.Kill(srv.pid, syscall.SIGKILL); err != nil {
		return trial{}, fmt.Errorf("kill %d: %w", srv.pid, err)
	}
	for i, other := range b.servers {
		if i == leader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					mu.Lock()
					tr.attempts++
					mu.Unlock()
					_, err := other.tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER})
					at := time.Now()
					if err != nil {
						mu.Lock()
						if ctx.Err() == nil {
							tr.failed++
						}
						mu.Unlock()
						return
					}
					select {
					case first <- outcome{at, other}:
					default:
					}
				}()
			}
		}()
	}
	var o outcome
	select {
	case o = <-first:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if o.srv == nil {
		return trial{}, errors.New("no write succeeded within 60s of the kill")
	}
	tr.took = o.at.Sub(start)
	if st, err := b.status(o.srv); err == nil {
		tr.newID, tr.term = st.LeaderId, st.Term
	}
	// Reap the killed server if it was our child (a restarted one).
	if p, err := os.FindProcess(srv.pid); err == nil {
		go p.Wait() //nolint:errcheck // not our child for the first kill
	}
	pid, err := restart(argv, cwd, filepath.Join(logDir, fmt.Sprintf("s%d.log", leader+1)))
	if err != nil {
		return trial{}, err
	}
	srv.pid = pid
	return tr, nil
}

// cmdline reads a process's command line and working directory.
func cmdline(pid int) ([]string, string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, "", fmt.Errorf("read the leader's command line: %w", err)
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return nil, "", fmt.Errorf("read the leader's directory: %w", err)
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	return argv, cwd, nil
}

// restart starts a killed server again with its own command line. The
// bootstrap flag of the first server is harmless: its data dir has state.
func restart(argv []string, cwd, logPath string) (int, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cwd
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("restart %s: %w", argv[0], err)
	}
	return cmd.Process.Pid, nil
}
