package ctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/jobspec"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Exit codes of `job wait` (and `job submit --wait`) besides the job's own.
const (
	exitJobFailed    = 1   // failed without an exit code of its own
	exitWaitTimeout  = 2   // --timeout elapsed; the job goes on
	exitJobTimedOut  = 124 // as timeout(1)
	exitJobCancelled = 130 // as a shell's 128+SIGINT; also Ctrl-C of the wait
)

func jobCommand() *cli.Command {
	return &cli.Command{
		Name: "job", Aliases: []string{"jobs"},
		Usage: "run batch jobs: a command in a sandbox, queued, its /output kept to download",
		Description: "A job runs once (or up to --max-attempts times) in a sandbox: no network unless --network,\n" +
			"its --input files read-only at /input, what it writes to /output kept as an archive after it\n" +
			"ends, for --output-ttl.\n\n" +
			"Examples:\n" +
			"  ccctl job submit alpine:3.20 -- sh -c 'echo hi > /output/hi.txt'\n" +
			"  ccctl job submit --wait --input data.csv python:3.12 -- python -c 'print(open(\"/input/data.csv\").read())'\n" +
			"  ccctl job ls --state running\n" +
			"  ccctl job status 0a1b2c3d\n" +
			"  ccctl job logs -f 0a1b2c3d\n" +
			"  ccctl job wait 0a1b2c3d && ccctl job output -o results 0a1b2c3d\n" +
			"  ccctl job cancel 0a1b2c3d",
		Subcommands: []*cli.Command{
			{
				Name: "submit", Aliases: []string{"run"}, Usage: "queue a job; prints its id",
				ArgsUsage: "IMAGE [--] [COMMAND [ARG...]]", OnUsageError: usageError,
				Description: "Flags go before IMAGE: everything after it (or after --) is the job's command.\n" +
					"Unset limits take the cluster's defaults: 512 MiB memory, 1 CPU, 512 processes, 1h timeout,\n" +
					"1 GiB of /output in at most 10000 files, 64 MiB of /tmp, output kept 7 days, user 65534:65534.\n\n" +
					"--input packs files and directories into one tar.gz, uploads it, and the job sees it\n" +
					"read-only at /input: a file at /input/NAME, a directory at /input/DIR/... (made readable by all).\n\n" +
					"With --wait, ccctl waits for the end as `ccctl job wait` does and exits with its exit code.\n" +
					"With --webhook and no --webhook-secret, the cluster makes a secret and ccctl prints it once\n" +
					"on stderr.\n\n" +
					"Examples:\n" +
					"  ccctl job submit alpine:3.20 -- sh -c 'date > /output/date.txt'\n" +
					"  ccctl job submit --input data.csv --input scripts/ --memory 1g --cpus 2 --timeout 30m \\\n" +
					"      python:3.12 python /input/scripts/run.py /input/data.csv\n" +
					"  ccctl job submit --wait -q busybox -- false; echo $?      (1)\n" +
					"  ID=$(ccctl job submit -q --queue nightly --priority 10 -l team=data app:1.0)\n" +
					"  ccctl job submit --idempotency-key build-42 --webhook https://ci.example/hook app:1.0",
				Flags:  jobSubmitFlags(),
				Action: jobSubmit,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list jobs, newest first, a page at a time", OnUsageError: usageError,
				Description: "Examples:\n  ccctl job ls\n  ccctl job ls --state failed --queue nightly -l team=data\n" +
					"  ccctl job ls --all-pages -o json | jq '.jobs[].id'\n  ccctl job cancel $(ccctl job ls -q --state queued)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "state", Usage: "only jobs in `STATE`: queued, assigned, running, succeeded, failed, timed_out or cancelled"},
					&cli.StringFlag{Name: "queue", Usage: "only jobs of queue `NAME`"},
					&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "only jobs with label `KEY=VALUE`; repeatable (all must match)"},
					&cli.StringFlag{Name: "limit", Usage: "list `N` jobs a page (default: 50, at most 1000)"},
					&cli.StringFlag{Name: "page", Usage: "continue a listing at `TOKEN`, as the last page said"},
					&cli.BoolFlag{Name: "all-pages", Aliases: []string{"A"}, Usage: "list every page"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the job ids"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "print whole ids"},
				},
				Action: jobList,
			},
			{
				Name: "status", Aliases: []string{"inspect", "show"}, Usage: "show a job: state, attempts, output, webhook",
				ArgsUsage: "ID", OnUsageError: usageError,
				Description: "ID may be a unique prefix. -o json prints the whole job.\n\n" +
					"Examples:\n  ccctl job status 0a1b2c3d\n  ccctl job status -o json 0a1b2c3d | jq .state",
				Action: jobStatus,
			},
			{
				Name: "wait", Usage: "wait for a job to end; exit with its exit code",
				ArgsUsage: "ID", OnUsageError: usageError,
				Description: "Prints each change of state on stderr. Exit codes:\n" +
					"  0        the job succeeded\n" +
					"  N        it failed with exit code N\n" +
					"  1        it failed without an exit code (it could not start, its node was lost, its output broke a limit)\n" +
					"  124      it timed out\n" +
					"  130      it was cancelled (or you pressed Ctrl-C: the job goes on)\n" +
					"  2        --timeout elapsed first (the job goes on)\n" +
					"ccctl follows the job on a stream; when the stream breaks it asks for the job and reconnects.\n\n" +
					"Examples:\n  ccctl job wait 0a1b2c3d\n  ccctl job wait --timeout 10m 0a1b2c3d || echo \"ended with $?\"",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "timeout", Usage: "give up waiting after `DURATION` (exit code 2) (default: wait as long as it takes)"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing; only the exit code tells"},
				},
				Action: jobWait,
			},
			{
				Name: "cancel", Aliases: []string{"stop"}, Usage: "cancel jobs: queued ones are dropped, running ones stopped (SIGTERM, then SIGKILL)",
				ArgsUsage: "ID...", OnUsageError: usageError,
				Description: "A running job gets SIGTERM, then SIGKILL after its --kill-grace; it ends as cancelled.\n" +
					"A job that has ended is left as it is.\n\nExamples:\n  ccctl job cancel 0a1b2c3d\n  ccctl job cancel $(ccctl job ls -q --state queued --queue nightly)",
				Action: jobCancel,
			},
			{
				Name: "logs", Usage: "print a job's output: stdout to stdout, stderr to stderr",
				ArgsUsage: "ID", OnUsageError: usageError,
				Description: "While the job runs the logs come from its node; after it ends, from the cluster's copy\n" +
					"(kept for --output-ttl). With -f, ccctl follows them until the job ends or Ctrl-C.\n\n" +
					"Examples:\n  ccctl job logs 0a1b2c3d\n  ccctl job logs -f --tail 20 0a1b2c3d\n  ccctl job logs 0a1b2c3d 2>/dev/null | grep result",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming while the job runs"},
					&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "start with the last `N` lines, or all"},
				},
				Action: jobLogs,
			},
			{
				Name: "output", Aliases: []string{"download"}, Usage: "download what a job wrote to /output",
				ArgsUsage: "ID", OnUsageError: usageError,
				Description: "By default the output archive is checked (sha256) and extracted into -o DIR (default: the\n" +
					"current directory), which is created if needed. Nothing is written outside DIR: entries\n" +
					"with absolute paths or .. are refused, and so are symbolic links that point outside and\n" +
					"files that would be written through a link; devices are skipped. Existing files are kept\n" +
					"unless --force. A download that breaks midway resumes where it stopped.\n\n" +
					"Examples:\n" +
					"  ccctl job output 0a1b2c3d                      (into .)\n" +
					"  ccctl job output -o results/ 0a1b2c3d\n" +
					"  ccctl job output --archive out.tar.gz 0a1b2c3d (the tar.gz as it is; - for stdout)\n" +
					"  ccctl job output --path report.csv 0a1b2c3d     (one file, to ./report.csv)\n" +
					"  ccctl job output --path logs/run.txt -o - 0a1b2c3d | less",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: ".", Usage: "extract into `DIR`; with --path: a FILE, a DIR, or - for stdout"},
					&cli.StringFlag{Name: "path", Usage: "download only the file `PATH` of /output (e.g. report.csv, dir/b.bin)"},
					&cli.StringFlag{Name: "archive", Usage: "save the tar.gz as it is to `FILE` (- for stdout) instead of extracting it"},
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite existing files"},
				}, progressFlags("print nothing but errors: no progress bar, no summary")...),
				Action: jobOutput,
			},
		},
	}
}

func queueCommand() *cli.Command {
	return &cli.Command{
		Name: "queue", Usage: "set limits of job queues and list them",
		Description: "A job goes to --queue NAME of `ccctl job submit` (default: default); a queue\n" +
			"exists once a job or `queue set` names it.\n\n" +
			"Examples:\n  ccctl queue set nightly --max-running 4\n  ccctl queue set nightly --max-running 0   (no limit)\n  ccctl queue ls",
		Subcommands: []*cli.Command{
			{
				Name: "set", Usage: "create a queue or change its limits", ArgsUsage: "NAME", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "max-running", Required: true, Usage: "let at most `N` jobs of the queue run at once; 0: no limit"},
					&cli.BoolFlag{Name: "allow-network", Usage: "let jobs tokens submit jobs with --network to the queue (admins always may); --allow-network=false: admins only; unset: unchanged (a new queue: admins only)"},
				},
				Action: queueSet,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list queues: limit, jobs queued and running", OnUsageError: usageError,
				Action: queueList,
			},
		},
	}
}

func jobSubmitFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable: `VAR`=VALUE, or VAR alone for its value here; repeatable"},
		&cli.StringSliceFlag{Name: "input", Usage: "give the job the file or directory `PATH` under /input; repeatable"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit `SIZE`: bytes or with k, m, g (e.g. 512m, 2g)"},
		&cli.StringFlag{Name: "cpus", Usage: "CPU limit in `CORES` (e.g. 0.5, 2)"},
		&cli.StringFlag{Name: "pids", Aliases: []string{"pids-limit"}, Usage: "limit the processes to `N`"},
		&cli.StringFlag{Name: "timeout", Usage: "kill the job after it ran `DURATION` (e.g. 10m, 2h); it ends as timed out"},
		&cli.StringFlag{Name: "kill-grace", Usage: "on timeout or cancel, wait `DURATION` after SIGTERM before SIGKILL"},
		&cli.StringFlag{Name: "priority", Usage: "higher `N` runs first, -1000 to 1000; equal ones in order (default: 0)"},
		&cli.StringFlag{Name: "queue", Usage: "queue `NAME` (default: default); see `ccctl queue`"},
		&cli.StringFlag{Name: "max-attempts", Usage: "try `N` times when the node is lost or it cannot start (default: 1)"},
		&cli.BoolFlag{Name: "retry-on-failure", Usage: "also try again after a non-zero exit, up to --max-attempts"},
		&cli.BoolFlag{Name: "network", Usage: "give the job its node's bridge network; without it, loopback only"},
		&cli.StringFlag{Name: "output-limit", Usage: "cap /output at `SIZE` (e.g. 100m); more fails the job"},
		&cli.StringFlag{Name: "tmp-limit", Usage: "cap /tmp at `SIZE` (e.g. 256m)"},
		&cli.StringFlag{Name: "max-output-files", Usage: "let /output hold at most `N` files"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "label the job `KEY=VALUE`, to filter with `job ls -l`; repeatable"},
		&cli.StringFlag{Name: "webhook", Usage: "POST the job as JSON to `URL` when it ends"},
		&cli.StringFlag{Name: "webhook-secret", Usage: "sign the webhook's requests (HMAC-SHA256) with `SECRET` (default: a new one, printed once)"},
		&cli.StringFlag{Name: "idempotency-key", Usage: "submitting the same `KEY` again returns the first job instead of a new one"},
		&cli.StringFlag{Name: "output-ttl", Usage: "keep the output and logs for `DURATION` after the end (e.g. 72h)"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "run as `UID`[:GID]"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working `DIR` in the job (default: /)"},
		&cli.BoolFlag{Name: "wait", Usage: "wait for the end, as job wait does, and exit with its exit code"},
	}, progressFlags("print only the job id: no progress bar, no states with --wait")...)
}

// jobSubmitRequest builds the request of `job submit` from its flags,
// without the input, which needs uploading.
func jobSubmitRequest(c *cli.Context) (*ccv1.SubmitJobRequest, error) {
	args := c.Args().Slice()
	if len(args) == 0 || args[0] == "--" {
		return nil, errors.New("job submit needs an IMAGE (e.g. ccctl job submit alpine:3.20 -- echo hi)")
	}
	image, command := strings.TrimSpace(args[0]), args[1:]
	if image == "" {
		return nil, errors.New("job submit: the IMAGE is empty")
	}
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	spec := &ccv1.JobSpec{
		Image: image, Command: command,
		Queue: c.String("queue"), RetryOnFailure: c.Bool("retry-on-failure"), Network: c.Bool("network"),
		WebhookUrl: c.String("webhook"), WebhookSecret: c.String("webhook-secret"),
		IdempotencyKey: c.String("idempotency-key"), User: c.String("user"), Workdir: c.String("workdir"),
	}
	var err error
	if spec.Env, err = parseEnv(c.StringSlice("env"), os.LookupEnv); err != nil {
		return nil, err
	}
	res := &ccv1.ContainerResources{}
	sizes := []struct {
		flag string
		to   *int64
	}{
		{"memory", &res.MemoryBytes}, {"output-limit", &spec.OutputLimitBytes}, {"tmp-limit", &spec.TmpLimitBytes},
	}
	for _, s := range sizes {
		if c.IsSet(s.flag) {
			if *s.to, err = parseSize(s.flag, c.String(s.flag)); err != nil {
				return nil, err
			}
			if *s.to == 0 {
				return nil, fmt.Errorf("--%s 0: give a size more than 0, or leave the flag out for the default", s.flag)
			}
		}
	}
	if c.IsSet("cpus") {
		if res.CpuMillis, err = parseCPUs("cpus", c.String("cpus")); err != nil {
			return nil, err
		}
	}
	counts := []struct {
		flag string
		max  uint64
		set  func(uint64)
	}{
		{"pids", math.MaxInt32, func(n uint64) { res.Pids = int64(n) }},
		{"max-attempts", 100, func(n uint64) { spec.MaxAttempts = uint32(n) }},
		{"max-output-files", math.MaxUint32, func(n uint64) { spec.MaxOutputFiles = uint32(n) }},
	}
	for _, f := range counts {
		if c.IsSet(f.flag) {
			n, err := parseCount(f.flag, c.String(f.flag), f.max)
			if err != nil {
				return nil, err
			}
			f.set(n)
		}
	}
	if res.MemoryBytes != 0 || res.CpuMillis != 0 || res.Pids != 0 {
		spec.Resources = res
	}
	durations := []struct {
		flag string
		to   **durationpb.Duration
	}{
		{"timeout", &spec.Timeout}, {"kill-grace", &spec.KillGrace}, {"output-ttl", &spec.OutputTtl},
	}
	for _, d := range durations {
		if c.IsSet(d.flag) {
			if *d.to, err = durationFlag(c, d.flag, d.flag != "kill-grace"); err != nil {
				return nil, err
			}
		}
	}
	if c.IsSet("priority") {
		p, err := strconv.ParseInt(strings.TrimSpace(c.String("priority")), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--priority %q: use a whole number, higher first (e.g. 10 or -5)", c.String("priority"))
		}
		spec.Priority = int32(p)
	}
	if spec.RetryOnFailure && spec.MaxAttempts < 2 {
		return nil, errors.New("--retry-on-failure retries up to --max-attempts, which is 1: add --max-attempts N (e.g. 3)")
	}
	if len(c.StringSlice("label")) > 0 {
		if spec.Labels, _, err = parseLabels(c.StringSlice("label"), nil); err != nil {
			return nil, fmt.Errorf("--%v", err)
		}
	}
	if spec.WebhookUrl != "" {
		u, err := url.Parse(spec.WebhookUrl)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--webhook %q: use an http or https URL (e.g. https://ci.example/hook)", spec.WebhookUrl)
		}
	} else if spec.WebhookSecret != "" {
		return nil, errors.New("--webhook-secret signs the webhook's requests: add --webhook URL")
	}
	return &ccv1.SubmitJobRequest{Spec: spec}, nil
}

func jobSubmit(c *cli.Context) error {
	req, err := jobSubmitRequest(c)
	if err != nil {
		return err
	}
	// The input is packed before connecting: a bad path fails at once.
	var in *packedInput
	if inputs := c.StringSlice("input"); len(inputs) > 0 {
		if in, err = packToTemp(c, inputs); err != nil {
			return err
		}
		defer in.remove()
	}
	return jobSession(c, func(ctx context.Context, cl *Client) error {
		if in != nil {
			digest, err := uploadInput(ctx, c, cl, in)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("uploading --input: %v; no job was submitted", cl.Explain(err))
			}
			req.Spec.InputDigest = digest
		}
		cctx, cancel := context.WithTimeout(ctx, globalTimeout(c))
		resp, err := cl.Jobs.SubmitJob(cctx, req)
		cancel()
		if err != nil {
			return err
		}
		id := resp.GetJob().GetId()
		if jsonOut(c) {
			if err := printJSON(c, resp); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(c.App.Writer, id)
			if s := resp.GetWebhookSecret(); s != "" && req.Spec.WebhookSecret == "" {
				fmt.Fprintf(c.App.ErrWriter, "Webhook secret (shown once; it signs the webhook's requests with HMAC-SHA256): %s\n", s)
			}
		}
		if resp.GetExisting() && !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "ccctl: --idempotency-key %q matched job %s, submitted before: no new job was queued\n", req.Spec.IdempotencyKey, id)
		}
		if !c.Bool("wait") {
			return nil
		}
		return waitForExit(ctx, c, cl, id, 0)
	})
}

// packedInput is the tar.gz of --input in a temporary file.
type packedInput struct {
	f    *os.File
	size int64
	sum  string // hex
}

func (p *packedInput) remove() {
	p.f.Close()
	os.Remove(p.f.Name())
}

func packToTemp(c *cli.Context, paths []string) (*packedInput, error) {
	f, err := os.CreateTemp("", "ccctl-input-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("--input: a temporary file for the archive: %v", err)
	}
	in := &packedInput{f: f}
	h := sha256.New()
	p := transferProgress(c, "Packing", 0)
	cw := &countWriter{w: io.MultiWriter(f, h, progressWriter{p})}
	warn := func(msg string) {
		if p.w != nil { // below the bar, which goes on on the next line
			fmt.Fprintln(p.w)
			p.width = 0
		}
		fmt.Fprintf(c.App.ErrWriter, "ccctl: warning: %s\n", msg)
	}
	err = packInputs(cw, paths, warn)
	p.Done()
	if err != nil {
		in.remove()
		return nil, err
	}
	in.size, in.sum = cw.n, hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		in.remove()
		return nil, err
	}
	return in, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (w *countWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.n += int64(n)
	return n, err
}

// uploadInput sends the packed input with UploadInput and returns its
// digest.
func uploadInput(ctx context.Context, c *cli.Context, cl *Client, in *packedInput) (string, error) {
	stream, err := cl.Jobs.UploadInput(ctx)
	if err != nil {
		return "", err
	}
	// send returns the stream's own error when the server ended it.
	send := func(m *ccv1.UploadInputRequest) error {
		err := stream.Send(m)
		if errors.Is(err, io.EOF) {
			if _, err = stream.CloseAndRecv(); err == nil {
				err = errors.New("the server ended the upload early")
			}
		}
		return err
	}
	header := &ccv1.UploadHeader{Size: in.size, Sha256: in.sum}
	if err := send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Header{Header: header}}); err != nil {
		return "", err
	}
	p := transferProgress(c, "Uploading", in.size)
	buf := make([]byte, loadChunk)
	for {
		n, rerr := io.ReadFull(in.f, buf)
		if n > 0 {
			if err := send(&ccv1.UploadInputRequest{Msg: &ccv1.UploadInputRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return "", err
			}
			p.Add(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return "", rerr
		}
	}
	p.Done()
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", err
	}
	if resp.GetDigest() == "" {
		return "", errors.New("the server returned no digest for the input")
	}
	return resp.GetDigest(), nil
}

// exitError ends ccctl with an exit code of its own, after msg (if any)
// as its error line.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.msg
}

// jobSession dials and runs fn with no deadline, for commands that upload
// or wait: --timeout bounds connecting (fn bounds its calls with it), and
// Ctrl-C (or SIGTERM) ends fn's context, which is exit code 130.
func jobSession(c *cli.Context, fn func(ctx context.Context, cl *Client) error) error {
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cl.connect(ctx, globalTimeout(c))
	if err == nil {
		err = fn(ctx, cl)
	}
	var ee *exitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return err
	case ctx.Err() != nil && c.Context.Err() == nil:
		return &exitError{code: exitJobCancelled, msg: "interrupted"}
	default:
		return cl.Explain(err)
	}
}

func jobWait(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("job wait needs exactly one job ID (see `ccctl job ls`)")
	}
	var timeout time.Duration
	if c.IsSet("timeout") {
		var err error
		if timeout, err = parseDuration("timeout", c.String("timeout"), true); err != nil {
			return err
		}
	}
	return jobSession(c, func(ctx context.Context, cl *Client) error {
		return waitForExit(ctx, c, cl, c.Args().First(), timeout)
	})
}

// waitForExit waits for job id to end (at most timeout, if not 0) and
// returns nil if it succeeded, else an *exitError with the exit code of
// `job wait`. Unless --quiet, changes of state go to stderr.
func waitForExit(ctx context.Context, c *cli.Context, cl *Client, id string, timeout time.Duration) error {
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var say func(*ccv1.Job)
	if !c.Bool("quiet") {
		var nodes map[string]string
		say = func(j *ccv1.Job) {
			if nodes == nil && lastAttempt(j).GetNodeId() != "" {
				nctx, cancel := context.WithTimeout(ctx, globalTimeout(c))
				nodes = nodeNames(nctx, cl)
				cancel()
			}
			fmt.Fprintf(c.App.ErrWriter, "%s %s\n", shortID(j.GetId()), describeJob(j, nodes, time.Now()))
		}
	}
	job, err := waitJob(wctx, cl, id, globalTimeout(c), say)
	if job != nil {
		id = job.GetId()
	}
	state := "queued"
	if job != nil {
		state = jobStateWords(job.GetState())
	}
	switch {
	case err == nil:
		if code := jobExitCode(job); code != 0 {
			return &exitError{code: code}
		}
		return nil
	case ctx.Err() != nil:
		return &exitError{code: exitJobCancelled, msg: fmt.Sprintf("interrupted; job %s goes on (see `ccctl job status %s`)", shortID(id), shortID(id))}
	case wctx.Err() != nil:
		return &exitError{code: exitWaitTimeout, msg: fmt.Sprintf("job %s is still %s after --timeout %s; it goes on: wait again with `ccctl job wait %s`, or stop it with `ccctl job cancel %s`",
			shortID(id), state, timeout, shortID(id), shortID(id))}
	default:
		return err
	}
}

// jobPollInterval is how often waitJob asks for a job while its watch
// stream is broken, and waits before reconnecting.
var jobPollInterval = 2 * time.Second

// errJobDone ends a watch stream once the job has ended.
var errJobDone = errors.New("job done")

// waitJob follows job id until it ends and returns it; say, if not nil,
// is told each change. It watches with WatchJobs; when the stream breaks
// (or the server has no WatchJobs) it asks with GetJob, waits
// jobPollInterval and watches again. On error it returns the job as last
// seen, if any.
func waitJob(ctx context.Context, cl *Client, id string, callTimeout time.Duration, say func(*ccv1.Job)) (last *ccv1.Job, err error) {
	see := func(j *ccv1.Job) bool {
		if j == nil {
			return false
		}
		if say != nil && (last == nil || jobChanged(last, j)) {
			say(j)
		}
		last = j
		return jobDone(j.GetState())
	}
	watch := true
	for {
		if watch {
			err := watchJob(ctx, cl, id, see)
			switch {
			case errors.Is(err, errJobDone):
				return last, nil
			case ctx.Err() != nil:
				return last, ctx.Err()
			case status.Code(err) == codes.Unimplemented:
				watch = false
			case err != nil && permanentErr(err):
				return last, err
			}
		}
		gctx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := cl.Jobs.GetJob(gctx, &ccv1.GetJobRequest{Id: id})
		cancel()
		switch {
		case err == nil && see(resp.GetJob()):
			return last, nil
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil && permanentErr(err):
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(jobPollInterval):
		}
	}
}

// watchJob hands see each state of the job from a WatchJobs stream until
// see says it has ended (errJobDone) or the stream ends (nil) or breaks.
func watchJob(ctx context.Context, cl *Client, id string, see func(*ccv1.Job) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.Jobs.WatchJobs(ctx, &ccv1.WatchJobsRequest{Ids: []string{id}, UntilDone: true})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if see(m.GetJob()) {
			return errJobDone
		}
	}
}

// permanentErr tells errors that asking again will not mend.
func permanentErr(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented:
		return true
	}
	return false
}

func jobDone(s ccv1.JobState) bool {
	switch s {
	case ccv1.JobState_JOB_STATE_SUCCEEDED, ccv1.JobState_JOB_STATE_FAILED,
		ccv1.JobState_JOB_STATE_TIMED_OUT, ccv1.JobState_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

// jobChanged tells whether b is worth a line after a.
func jobChanged(a, b *ccv1.Job) bool {
	return a.GetState() != b.GetState() || len(a.GetAttempts()) != len(b.GetAttempts()) ||
		a.GetMessage() != b.GetMessage() || a.GetCancelRequested() != b.GetCancelRequested() ||
		lastAttempt(a).GetNodeId() != lastAttempt(b).GetNodeId()
}

// jobExitCode is the exit code of `job wait` for an ended job.
func jobExitCode(j *ccv1.Job) int {
	switch j.GetState() {
	case ccv1.JobState_JOB_STATE_SUCCEEDED:
		return 0
	case ccv1.JobState_JOB_STATE_TIMED_OUT:
		return exitJobTimedOut
	case ccv1.JobState_JOB_STATE_CANCELLED:
		return exitJobCancelled
	}
	if code, ok := jobExit(j); ok && code > 0 && code < 256 {
		return int(code)
	}
	return exitJobFailed
}

// jobExit is the exit code the job ended with, if it ended by exiting
// (a failed job only with a non-zero one: one that exited 0 and then broke
// a limit did not fail by its exit).
func jobExit(j *ccv1.Job) (int32, bool) {
	switch {
	case !jobDone(j.GetState()):
		return 0, false
	case j.GetState() == ccv1.JobState_JOB_STATE_SUCCEEDED || j.GetExitCode() != 0:
		return j.GetExitCode(), true
	case j.GetState() != ccv1.JobState_JOB_STATE_FAILED:
		return 0, false
	}
	if a := lastAttempt(j); a.GetState() == ccv1.ContainerState_CONTAINER_STATE_EXITED && !a.GetTimedOut() && a.GetExitCode() != 0 {
		return a.GetExitCode(), true
	}
	return 0, false
}

func lastAttempt(j *ccv1.Job) *ccv1.JobAttempt {
	if a := j.GetAttempts(); len(a) > 0 {
		return a[len(a)-1]
	}
	return nil
}

// jobStateWord is a state as --state takes it: "timed_out".
func jobStateWord(s ccv1.JobState) string {
	if s == ccv1.JobState_JOB_STATE_UNSPECIFIED {
		return "unknown"
	}
	return enumWord(s.String(), "JOB_STATE_")
}

// jobStateWords is a state in prose: "timed out".
func jobStateWords(s ccv1.JobState) string {
	return strings.ReplaceAll(jobStateWord(s), "_", " ")
}

// parseJobState reads --state.
func parseJobState(s string) (ccv1.JobState, error) {
	w := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
	switch w {
	case "canceled":
		w = "cancelled"
	case "timedout", "timeout":
		w = "timed_out"
	}
	if v, ok := ccv1.JobState_value["JOB_STATE_"+strings.ToUpper(w)]; ok && v != 0 {
		return ccv1.JobState(v), nil
	}
	return 0, fmt.Errorf("--state %q: use queued, assigned, running, succeeded, failed, timed_out or cancelled", s)
}

// nodeName is a node's name from names, else its id, else "-".
func nodeName(id string, names map[string]string) string {
	if n := names[id]; n != "" {
		return n
	}
	if id == "" {
		return "-"
	}
	return shortID(id)
}

// describeJob says where a job stands in a line: "running on node-1",
// "failed with exit code 3 after 2s: …".
func describeJob(j *ccv1.Job, nodes map[string]string, now time.Time) string {
	a := lastAttempt(j)
	s := jobStateWords(j.GetState())
	switch j.GetState() {
	case ccv1.JobState_JOB_STATE_ASSIGNED:
		s = "assigned to " + nodeName(a.GetNodeId(), nodes)
	case ccv1.JobState_JOB_STATE_RUNNING:
		s = "running on " + nodeName(a.GetNodeId(), nodes)
	case ccv1.JobState_JOB_STATE_FAILED:
		if code, ok := jobExit(j); ok {
			s = fmt.Sprintf("failed with exit code %d", code)
		}
	case ccv1.JobState_JOB_STATE_SUCCEEDED:
		s = "succeeded"
	}
	if most := jobspec.MaxAttempts(j.GetSpec()); most > 1 && a != nil {
		switch j.GetState() {
		case ccv1.JobState_JOB_STATE_QUEUED:
			s += fmt.Sprintf(" for attempt %d of %d", len(j.GetAttempts())+1, most)
		case ccv1.JobState_JOB_STATE_ASSIGNED, ccv1.JobState_JOB_STATE_RUNNING:
			s += fmt.Sprintf(" (attempt %d of %d)", len(j.GetAttempts()), most)
		}
	}
	if jobDone(j.GetState()) && j.GetStartedAt() != nil {
		s += " after " + jobDuration(j, now)
	}
	if j.GetCancelRequested() && !jobDone(j.GetState()) {
		s += ", cancelling"
	}
	if m := j.GetMessage(); m != "" {
		s += ": " + shorten(m, 200)
	}
	return s
}

// compactDuration prints d as kubectl's AGE does: "45s", "3m12s", "5h02m",
// "3d04h".
func compactDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// jobDuration is how long a job ran (runs, if it has not ended), or "-".
func jobDuration(j *ccv1.Job, now time.Time) string {
	if j.GetStartedAt() == nil {
		return "-"
	}
	end := now
	if f := j.GetFinishedAt(); f != nil {
		end = f.AsTime()
	}
	return compactDuration(end.Sub(j.GetStartedAt().AsTime()))
}

func jobList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("job ls takes no arguments, got %q (filter with --state, --queue, -l)", c.Args().Slice())
	}
	req := &ccv1.ListJobsRequest{Queue: c.String("queue"), PageToken: c.String("page")}
	var err error
	if c.IsSet("state") {
		if req.State, err = parseJobState(c.String("state")); err != nil {
			return err
		}
	}
	for _, l := range c.StringSlice("label") {
		if _, _, err := parseLabels([]string{l}, nil); err != nil {
			return fmt.Errorf("--%v", err)
		}
		req.Label = append(req.Label, l)
	}
	if c.IsSet("limit") {
		n, err := parseCount("limit", c.String("limit"), 1000)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("--limit 0: list at least 1 job a page (at most 1000)")
		}
		req.Limit = int32(n)
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		all := &ccv1.ListJobsResponse{}
		for {
			resp, err := cl.Jobs.ListJobs(ctx, req)
			if err != nil {
				return err
			}
			all.Jobs = append(all.Jobs, resp.GetJobs()...)
			all.NextPageToken = resp.GetNextPageToken()
			if !c.Bool("all-pages") || all.NextPageToken == "" || all.NextPageToken == req.PageToken {
				break
			}
			req.PageToken = all.NextPageToken
		}
		if c.Bool("quiet") {
			for _, j := range all.Jobs {
				fmt.Fprintln(c.App.Writer, j.GetId())
			}
			return nil
		}
		if jsonOut(c) {
			return printJSON(c, all)
		}
		id := shortID
		if c.Bool("no-trunc") {
			id = func(s string) string { return s }
		}
		var nodes map[string]string
		if slices.ContainsFunc(all.Jobs, func(j *ccv1.Job) bool { return lastAttempt(j) != nil }) {
			nodes = nodeNames(ctx, cl)
		}
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "ID\tSTATE\tQUEUE\tPRIO\tNODE\tATTEMPTS\tAGE\tDURATION\tEXIT\n")
		for _, j := range all.Jobs {
			state := jobStateWord(j.GetState())
			if j.GetCancelRequested() && !jobDone(j.GetState()) {
				state += " (cancelling)"
			}
			queue := j.GetSpec().GetQueue()
			if queue == "" {
				queue = jobspec.DefaultQueue
			}
			exit := "-"
			if code, ok := jobExit(j); ok {
				exit = strconv.Itoa(int(code))
			}
			age := "-"
			if t := j.GetCreatedAt(); t != nil {
				age = compactDuration(now.Sub(t.AsTime()))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d/%d\t%s\t%s\t%s\n", id(j.GetId()), state, queue, j.GetSpec().GetPriority(),
				nodeName(lastAttempt(j).GetNodeId(), nodes), len(j.GetAttempts()), jobspec.MaxAttempts(j.GetSpec()),
				age, jobDuration(j, now), exit)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if all.NextPageToken != "" && !c.Bool("all-pages") {
			fmt.Fprintf(c.App.ErrWriter, "More jobs: add --page %s (or list them all with --all-pages)\n", all.NextPageToken)
		}
		return nil
	})
}

func jobStatus(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("job status needs exactly one job ID (see `ccctl job ls`)")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Jobs.GetJob(ctx, &ccv1.GetJobRequest{Id: c.Args().First()})
		if err != nil {
			return err
		}
		j := resp.GetJob()
		if jsonOut(c) {
			return printJSON(c, j)
		}
		var nodes map[string]string
		if len(j.GetAttempts()) > 0 {
			nodes = nodeNames(ctx, cl)
		}
		return printJobSummary(c.App.Writer, j, nodes, time.Now())
	})
}

// printJobSummary writes what `job status` shows.
func printJobSummary(out io.Writer, j *ccv1.Job, nodes map[string]string, now time.Time) error {
	spec := j.GetSpec()
	w := tabwriterFor(out)
	line := func(k, format string, args ...any) { fmt.Fprintf(w, k+":\t"+format+"\n", args...) }
	line("ID", "%s", j.GetId())
	line("State", "%s", describeJob(j, nodes, now))
	line("Image", "%s", spec.GetImage())
	if len(spec.GetCommand()) > 0 {
		line("Command", "%s", quoteArgs(spec.GetCommand()))
	}
	queue := spec.GetQueue()
	if queue == "" {
		queue = jobspec.DefaultQueue
	}
	line("Queue", "%s, priority %d", queue, spec.GetPriority())
	if labels := spec.GetLabels(); len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = k + "=" + labels[k]
		}
		line("Labels", "%s", strings.Join(keys, ", "))
	}
	if d := spec.GetInputDigest(); d != "" {
		line("Input", "%s", d)
	}
	if l := jobLimits(spec); l != "" {
		line("Limits", "%s", l)
	}
	line("Created", "%s (%s)", when(j.GetCreatedAt()), ago(j.GetCreatedAt(), now))
	if j.GetStartedAt() != nil {
		line("Started", "%s", when(j.GetStartedAt()))
	}
	if j.GetFinishedAt() != nil {
		line("Finished", "%s (ran %s)", when(j.GetFinishedAt()), jobDuration(j, now))
	}
	if j.GetOutputDigest() != "" {
		line("Output", "%s, %s in %d files: `ccctl job output %s`", j.GetOutputDigest(), humanSize(j.GetOutputSize()), j.GetOutputFiles(), shortID(j.GetId()))
	}
	if j.GetExpiresAt() != nil {
		line("Expires", "%s (output and logs are deleted then)", when(j.GetExpiresAt()))
	}
	if u := spec.GetWebhookUrl(); u != "" {
		st := j.GetWebhookState()
		if st == "" {
			st = "not sent yet"
		}
		line("Webhook", "%s: %s", u, st)
	}
	line("Attempts", "%d of at most %d", len(j.GetAttempts()), jobspec.MaxAttempts(spec))
	if err := w.Flush(); err != nil {
		return err
	}
	if len(j.GetAttempts()) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	w = tabwriterFor(out)
	fmt.Fprintf(w, "ATTEMPT\tCONTAINER\tNODE\tSTATE\tSTARTED\tDURATION\tERROR\n")
	for _, a := range j.GetAttempts() {
		state := enumWord(a.GetState().String(), "CONTAINER_STATE_")
		switch {
		case a.GetState() == ccv1.ContainerState_CONTAINER_STATE_EXITED && a.GetOomKilled():
			state = fmt.Sprintf("exited (%d, oom-killed)", a.GetExitCode())
		case a.GetState() == ccv1.ContainerState_CONTAINER_STATE_EXITED:
			state = fmt.Sprintf("exited (%d)", a.GetExitCode())
		}
		if a.GetTimedOut() {
			state += ", timed out"
		}
		dur := "-"
		if s := a.GetStartedAt(); s != nil {
			end := now
			if f := a.GetFinishedAt(); f != nil {
				end = f.AsTime()
			}
			dur = compactDuration(end.Sub(s.AsTime()))
		}
		errMsg := a.GetError()
		if errMsg == "" {
			errMsg = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetNumber(), shortID(a.GetId()), nodeName(a.GetNodeId(), nodes),
			state, when(a.GetStartedAt()), dur, shorten(errMsg, 80))
	}
	return w.Flush()
}

// jobLimits lists the limits a spec sets, "" if none (the defaults).
func jobLimits(s *ccv1.JobSpec) string {
	var out []string
	r := s.GetResources()
	if r.GetMemoryBytes() > 0 {
		out = append(out, "memory "+humanSize(r.GetMemoryBytes()))
	}
	if r.GetCpuMillis() > 0 {
		out = append(out, "cpus "+formatCPU(r.GetCpuMillis()))
	}
	if r.GetPids() > 0 {
		out = append(out, fmt.Sprintf("pids %d", r.GetPids()))
	}
	if t := s.GetTimeout(); t != nil {
		out = append(out, "timeout "+t.AsDuration().String())
	}
	if s.GetOutputLimitBytes() > 0 {
		out = append(out, "output "+humanSize(s.GetOutputLimitBytes()))
	}
	if s.GetMaxOutputFiles() > 0 {
		out = append(out, fmt.Sprintf("%d output files", s.GetMaxOutputFiles()))
	}
	if s.GetTmpLimitBytes() > 0 {
		out = append(out, "tmp "+humanSize(s.GetTmpLimitBytes()))
	}
	if s.GetNetwork() {
		out = append(out, "network")
	}
	return strings.Join(out, ", ")
}

func tabwriterFor(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// quoteArgs prints a command as a shell would take it back.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]#~!{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func jobCancel(c *cli.Context) error {
	return eachArg(c, "job cancel", 0, func(ctx context.Context, cl *Client, id string) error {
		resp, err := cl.Jobs.CancelJob(ctx, &ccv1.CancelJobRequest{Id: id})
		if err != nil {
			return err
		}
		if j := resp.GetJob(); jobDone(j.GetState()) && j.GetState() != ccv1.JobState_JOB_STATE_CANCELLED && !jsonOut(c) {
			fmt.Fprintf(c.App.ErrWriter, "ccctl: job %s had already %s; left as it is\n", id, describeJob(j, nil, time.Now()))
		}
		return done(c, id, resp)
	})
}

func jobLogs(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("job logs needs exactly one job ID (see `ccctl job ls`)")
	}
	tail, err := parseTail(c.String("tail"))
	if err != nil {
		return err
	}
	req := &ccv1.JobLogsRequest{Id: c.Args().First(), Follow: c.Bool("follow"), Tail: tail}
	return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
		stream, err := cl.Jobs.JobLogs(ctx, req)
		if err != nil {
			return err
		}
		return recvAll(stream, func(msg *ccv1.JobLogsResponse) error {
			_, err := outputFor(c, msg.GetStream()).Write(msg.GetData())
			return err
		})
	})
}

func queueSet(c *cli.Context) error {
	if c.NArg() != 1 || strings.TrimSpace(c.Args().First()) == "" {
		return errors.New("queue set needs exactly one queue NAME (e.g. ccctl queue set nightly --max-running 4)")
	}
	n, err := parseCount("max-running", c.String("max-running"), math.MaxUint32)
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		req := &ccv1.SetQueueRequest{Name: c.Args().First(), MaxRunning: uint32(n)}
		if c.IsSet("allow-network") {
			allow := c.Bool("allow-network")
			req.AllowNetwork = &allow
		}
		resp, err := cl.Jobs.SetQueue(ctx, req)
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetQueue())
		}
		q := resp.GetQueue()
		if q.GetMaxRunning() == 0 {
			_, err = fmt.Fprintf(c.App.Writer, "Queue %s: no limit on running jobs\n", q.GetName())
		} else {
			_, err = fmt.Fprintf(c.App.Writer, "Queue %s: at most %d running jobs\n", q.GetName(), q.GetMaxRunning())
		}
		if err == nil && c.IsSet("allow-network") {
			if q.GetAllowNetwork() {
				_, err = fmt.Fprintf(c.App.Writer, "Queue %s: jobs tokens may submit jobs with network\n", q.GetName())
			} else {
				_, err = fmt.Fprintf(c.App.Writer, "Queue %s: only admins may submit jobs with network\n", q.GetName())
			}
		}
		return err
	})
}

func queueList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("queue ls takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Jobs.ListQueues(ctx, &ccv1.ListQueuesRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := table(c)
		fmt.Fprintf(w, "NAME\tMAX RUNNING\tNETWORK\tQUEUED\tRUNNING\n")
		for _, q := range resp.GetQueues() {
			limit := "-"
			if q.GetMaxRunning() > 0 {
				limit = strconv.FormatUint(uint64(q.GetMaxRunning()), 10)
			}
			network := "admins"
			if q.GetAllowNetwork() {
				network = "jobs"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", q.GetName(), limit, network, q.GetQueued(), q.GetRunning())
		}
		return w.Flush()
	})
}
