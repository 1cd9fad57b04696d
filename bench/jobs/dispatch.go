package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containercodes/cc/bench/internal/benchstat"
	"github.com/containercodes/cc/internal/imagearchive"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// agentName is the node name of the benchmark's agent.
const agentName = "jobbench-node"

// ccTimes is one job's way from the SubmitJob call (t0) to its end, from
// the times the control plane recorded (same host clock) and the times
// this client saw.
type ccTimes struct {
	ack       time.Duration // SubmitJob returned
	assigned  time.Duration // attempt assigned_at: the dispatcher placed it
	started   time.Duration // attempt started_at: its process started
	exited    time.Duration // attempt finished_at: its process ended
	succeeded time.Duration // job finished_at: SUCCEEDED recorded, output and logs stored
	seen      time.Duration // WatchJobs delivered SUCCEEDED to this client
}

// dispatchPhase joins one agent, then runs jobs one at a time beside `ctr
// run --rm` of the same image, interleaved.
func (b *bench) dispatchPhase(ctx context.Context) error {
	o, r := b.o, b.r
	r.section(fmt.Sprintf("3. dispatch on one idle node: %d jobs one at a time (%s) in queue default, interleaved with ctr run --rm; the backlog stays queued", o.dispatchJobs, strings.Join(o.command, " ")))
	if o.agentDir == "" || o.namespace == "" || o.ctrNS == "" || o.bridge == "" || o.subnet == "" || o.archive == "" {
		return errors.New("dispatch needs -agent-dir, -namespace, -ctr-namespace, -bridge, -subnet and -archive (or -skip-dispatch)")
	}
	jobBridge, jobSubnet := jobNetwork(o.bridge, o.subnet)
	if jobBridge == "" {
		return fmt.Errorf("-subnet %q is not an IPv4 CIDR", o.subnet)
	}
	ref, err := imagearchive.Normalize(o.image)
	if err != nil {
		return fmt.Errorf("-image: %w", err)
	}

	// The agent.
	tok, err := ccv1.NewTokenServiceClient(b.conn).CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_AGENT, MaxUses: 1, Description: "bench/jobs agent"})
	if err != nil {
		return fmt.Errorf("agent join token: %w", err)
	}
	agentBin, err := filepath.Abs(o.agentBin)
	if err != nil {
		return err
	}
	logPath := strings.TrimSuffix(o.agentDir, "/") + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(agentBin, "--join", o.addr, "--token", tok.Secret, "--data-dir", o.agentDir, "--name", agentName,
		"--namespace", o.namespace, "--bridge", o.bridge, "--subnet", o.subnet, "--job-bridge", jobBridge, "--job-subnet", jobSubnet, "--advertise-addr", "127.0.0.1",
		"--memory", o.agentMemory, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	// The agent ends with this process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", agentBin, err)
	}
	b.procs = append(b.procs, cmd.Process)
	if o.agentPIDFile != "" {
		if err := os.WriteFile(o.agentPIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			return err
		}
	}
	nodes := ccv1.NewNodeServiceClient(b.conn)
	var nodeID string
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = poll(wctx, 100*time.Millisecond, func() (bool, string) {
		if !benchstat.Alive(cmd.Process.Pid) {
			cancel()
			return false, "the agent exited"
		}
		resp, err := nodes.ListNodes(wctx, &ccv1.ListNodesRequest{})
		if err != nil {
			return false, err.Error()
		}
		for _, n := range resp.Nodes {
			if n.Name == agentName && n.State == ccv1.NodeState_NODE_STATE_READY {
				nodeID = n.Id
				return true, ""
			}
		}
		return false, "node " + agentName + " not ready"
	})
	cancel()
	if err != nil {
		return fmt.Errorf("agent: %w\n%s", err, tail(logPath, 20))
	}
	r.add("agent", "%s (%s), pid %d, namespace %s, bridge %s %s, offers %s; ready %s after its start",
		agentName, nodeID, cmd.Process.Pid, o.namespace, o.bridge, o.subnet, o.agentMemory, time.Since(t0).Round(time.Millisecond))

	// The ctr baseline's copy of the image.
	t1 := time.Now()
	if out, err := exec.CommandContext(ctx, o.ctrBin, "-n", o.ctrNS, "images", "import", o.archive).CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, out)
	}
	r.add("ctr baseline", "image %s imported into namespace %s in %s", ref, o.ctrNS, time.Since(t1).Round(time.Millisecond))

	spec := func() *ccv1.JobSpec {
		return &ccv1.JobSpec{Image: o.image, Command: o.command, Labels: map[string]string{"bench": "dispatch"}}
	}
	// Warm-up: the first job fetches the image onto the node.
	for i := 0; i < o.warmup; i++ {
		t, err := b.runJob(ctx, spec())
		if err != nil {
			return fmt.Errorf("warm-up job %d: %w", i+1, err)
		}
		if i == 0 {
			r.add("first job (image fetched onto the node)", "submit→started %s, submit→succeeded %s", benchstat.Ms(t.started), benchstat.Ms(t.seen))
		}
		if _, err := b.runCtr(ctx, ref, fmt.Sprintf("jobbench-ctr-warm-%d", i)); err != nil {
			return err
		}
	}
	var ack, assigned, started, exitedD, succeeded, seen, ctr benchstat.Dist
	progress("dispatch: %d jobs and %d ctr runs, interleaved", o.dispatchJobs, o.dispatchJobs)
	for i := 0; i < o.dispatchJobs; i++ {
		t, err := b.runJob(ctx, spec())
		if err != nil {
			return fmt.Errorf("job %d: %w", i+1, err)
		}
		ack, assigned, started = append(ack, t.ack), append(assigned, t.assigned), append(started, t.started)
		exitedD, succeeded, seen = append(exitedD, t.exited), append(succeeded, t.succeeded), append(seen, t.seen)
		d, err := b.runCtr(ctx, ref, fmt.Sprintf("jobbench-ctr-%d", i))
		if err != nil {
			return err
		}
		ctr = append(ctr, d)
	}
	r.add("submit → SubmitJob returned", "%s", ack.Line())
	r.add("submit → assigned (attempt assigned_at)", "%s", assigned.Line())
	r.add("submit → started (attempt started_at) = dispatch", "%s", started.Line())
	r.add("submit → process exited (attempt finished_at)", "%s", exitedD.Line())
	r.add("submit → succeeded recorded (job finished_at)", "%s", succeeded.Line())
	r.add("submit → SUCCEEDED seen by WatchJobs", "%s", seen.Line())
	r.add("ctr run --rm (create, start, wait, delete)", "%s", ctr.Line())
	ratio := func(a, c benchstat.Dist, p float64) string {
		if c.Pct(p) <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(a.Pct(p))/float64(c.Pct(p)))
	}
	r.add("cc/ctr (submit→SUCCEEDED seen vs ctr run --rm)", "p50 %s, p99 %s", ratio(seen, ctr, 50), ratio(seen, ctr, 99))
	r.add("cc/ctr (submit→started vs ctr run --rm)", "p50 %s, p99 %s", ratio(started, ctr, 50), ratio(started, ctr, 99))
	r.sum("dispatch, one idle node, %d jobs one at a time (%d unplaceable still queued):", o.dispatchJobs, b.queued)
	r.sum("  submit→assigned %s; submit→started %s; submit→succeeded recorded %s; seen by WatchJobs %s",
		assigned.Short(), started.Short(), succeeded.Short(), seen.Short())
	r.sum("  ctr run --rm of the same image %s; cc/ctr (succeeded seen) p50 %s, p99 %s", ctr.Short(), ratio(seen, ctr, 50), ratio(seen, ctr, 99))
	return nil
}

// runJob submits a job, follows it with WatchJobs until it ends and reads
// its record.
func (b *bench) runJob(ctx context.Context, spec *ccv1.JobSpec) (ccTimes, error) {
	var t ccTimes
	jctx, cancel := context.WithTimeout(ctx, b.o.jobTimeout)
	defer cancel()
	t0 := time.Now()
	resp, err := b.jobs.SubmitJob(jctx, &ccv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		return t, fmt.Errorf("submit: %w", err)
	}
	t.ack = time.Since(t0)
	b.numJobs++
	id := resp.Job.Id
	st, err := b.jobs.WatchJobs(jctx, &ccv1.WatchJobsRequest{Ids: []string{id}, UntilDone: true})
	if err != nil {
		return t, fmt.Errorf("watch %s: %w", id, err)
	}
	var last *ccv1.Job
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return t, fmt.Errorf("watch %s: %w (last seen: %s)", id, err, describe(last))
		}
		if m.Job.GetId() != id {
			continue
		}
		last = m.Job
		if finished(last.State) && t.seen == 0 {
			t.seen = time.Since(t0)
		}
	}
	g, err := b.jobs.GetJob(ctx, &ccv1.GetJobRequest{Id: id})
	if err != nil {
		return t, fmt.Errorf("get %s: %w", id, err)
	}
	j := g.Job
	if j.State != ccv1.JobState_JOB_STATE_SUCCEEDED || len(j.Attempts) == 0 {
		return t, fmt.Errorf("job did not succeed: %s", describe(j))
	}
	if t.seen == 0 {
		return t, fmt.Errorf("the watch ended before the job: %s", describe(last))
	}
	a := j.Attempts[len(j.Attempts)-1]
	since := func(ts interface{ AsTime() time.Time }) time.Duration { return ts.AsTime().Sub(t0) }
	if a.AssignedAt == nil || a.StartedAt == nil || a.FinishedAt == nil || j.FinishedAt == nil {
		return t, fmt.Errorf("a time is missing in the record: %s", describe(j))
	}
	t.assigned, t.started, t.exited, t.succeeded = since(a.AssignedAt), since(a.StartedAt), since(a.FinishedAt), since(j.FinishedAt)
	return t, nil
}

func finished(s ccv1.JobState) bool {
	switch s {
	case ccv1.JobState_JOB_STATE_SUCCEEDED, ccv1.JobState_JOB_STATE_FAILED, ccv1.JobState_JOB_STATE_TIMED_OUT, ccv1.JobState_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

func describe(j *ccv1.Job) string {
	if j == nil {
		return "nothing"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "job %s %v exit=%d message=%q", j.Id, j.State, j.ExitCode, j.Message)
	for _, a := range j.Attempts {
		fmt.Fprintf(&s, "; attempt %d on %s: %v exit=%d error=%q", a.Number, a.NodeId, a.State, a.ExitCode, a.Error)
	}
	return s.String()
}

// runCtr times `ctr run --rm IMAGE ID /bin/busybox true`.
func (b *bench) runCtr(ctx context.Context, ref, id string) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, b.o.jobTimeout)
	defer cancel()
	args := append([]string{"-n", b.o.ctrNS, "run", "--rm", ref, id}, b.o.command...)
	t0 := time.Now()
	out, err := exec.CommandContext(cctx, b.o.ctrBin, args...).CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return d, nil
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
