// Package ctl is ccctl, the command-line client of the control plane API:
// global flags and contexts, one function per command, table or JSON output.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/internal/buildinfo"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// App builds the ccctl command tree.
func App(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "ccctl",
		Usage:   "control a Container Codes cluster",
		Version: buildinfo.Version,
		Writer:  stdout, ErrWriter: stderr,
		Description: "With no --addr, --token or --ca-cert (or CC_ADDR, CC_TOKEN, CC_CACERT), ccctl uses the\n" +
			"current context of its config file, which `make dev` writes for the dev cluster.\n\n" +
			"Flags may come anywhere, before or after the command, except after the image of `ccctl run`\n" +
			"or the first word of the command of `ccctl service create NAME`: from there on everything\n" +
			"is the container's command. Short flags combine as in docker: `ps -aq`, `logs -fn 10`.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "control plane API address `HOST:PORT`", EnvVars: []string{"CC_ADDR"}},
			&cli.StringFlag{Name: "token", Usage: "API `TOKEN`", EnvVars: []string{"CC_TOKEN"}},
			&cli.StringFlag{Name: "ca-cert", Usage: "`FILE` with the cluster CA certificate", EnvVars: []string{"CC_CACERT"}},
			&cli.BoolFlag{Name: "tls-system-roots", Usage: "verify the server with the system's trusted roots and the host name of --addr instead of the cluster CA (for a server whose tls_cert_file names that host)", EnvVars: []string{"CC_TLS_SYSTEM_ROOTS"}},
			&cli.StringFlag{Name: "context", Usage: "use context `NAME` of the config file instead of the current one", EnvVars: []string{"CC_CONTEXT"}},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output `FORMAT`: table or json", EnvVars: []string{"CC_OUTPUT"}},
			&cli.BoolFlag{Name: "stale", Usage: "let any server answer reads from its local state, without a linearizable read barrier", EnvVars: []string{"CC_STALE"}},
			&cli.DurationFlag{Name: "timeout", Value: 15 * time.Second, Usage: "give up on a call after `DURATION` (for logs and image load: on connecting)"},
		},
		Before: func(c *cli.Context) error {
			if f := c.String("output"); f != "table" && f != "json" {
				return fmt.Errorf("--output %q: use table or json", f)
			}
			return nil
		},
		// -aq is -a -q: Main's Interspersed splits such groups, knowing
		// which flags take values. Not UseShortOptionHandling: urfave/cli's
		// own splitting panics on a partial flag during completion
		// (`--qu --generate-bash-completion`).
		// -e A=1,2 is one variable, not two.
		DisableSliceFlagSeparator: true,
		// The completion scripts (ccctl completion) ask with
		// --generate-bash-completion.
		EnableBashCompletion: true,
		OnUsageError:         usageError,
		Commands: []*cli.Command{
			{Name: "status", Usage: "show the cluster: id, leader, raft state and index, scheduling strategy, servers and their readiness checks", Action: statusCmd, OnUsageError: usageError},
			serviceCommand(),
			routeCommand(),
			siteCommand(),
			edgeCommand(),
			certCommand(),
			jobCommand(),
			queueCommand(),
			runCommand(),
			psCommand(),
			inspectCommand(),
			logsCommand(),
			statsCommand(),
			execCommand(),
			attachCommand(),
			cpCommand(),
			startCommand(),
			stopCommand(),
			rmCommand(),
			imageCommand(),
			volumeCommand(),
			nodeCommand(),
			tokenCommand(),
			auditCommand(),
			snapshotCommand(),
			serverCommand(),
			caCommand(),
			clusterCommand(),
			contextCommand(),
			versionCommand(),
			completionCommand(),
		},
	}
}

func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%v (see `%s --help`)", err, c.Command.HelpName)
}

// errReported is returned by commands that printed their errors already.
var errReported = errors.New("errors reported")

// Main runs ccctl and returns the process exit code. Errors print as one
// line. An *exitError sets the exit code (job wait).
func Main(args []string, stdout, stderr io.Writer) int {
	app := App(stdout, stderr)
	// A completion request keeps its words in place: urfave/cli reads the
	// flag only as the last argument.
	if len(args) == 0 || args[len(args)-1] != "--generate-bash-completion" {
		args = Interspersed(app, args)
	}
	if err := app.Run(args); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(stderr, "ccctl: %s\n", ee.msg)
			}
			return ee.code
		}
		if !errors.Is(err, errReported) {
			fmt.Fprintf(stderr, "ccctl: %v\n", err)
		}
		return 1
	}
	return 0
}

// globalTimeout is the global --timeout, also where a command has a
// --timeout of its own (stop).
func globalTimeout(c *cli.Context) time.Duration {
	l := c.Lineage()
	// The last context is an empty parent of the app's.
	return l[max(len(l)-2, 0)].Duration("timeout")
}

// call dials, runs fn with a timed context, and explains its error.
func call(c *cli.Context, fn func(ctx context.Context, cl *Client) error) error {
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(c.Context, globalTimeout(c))
	defer cancel()
	if err := fn(ctx, cl); err != nil {
		return cl.Explain(err)
	}
	// A stale trust record is refreshed after the command; a failure here
	// is no failure of the command (the next one tries again).
	_, _ = cl.refreshTrust(c.Context, false)
	return nil
}

// callStream is call for streams that may last: --timeout bounds only
// connecting, and Ctrl-C (or SIGTERM) ends fn's context: a normal end when
// stopOK (logs -f), else an error. prepare, if not nil, runs after dialing
// and before connecting.
func callStream(c *cli.Context, stopOK bool, prepare func() error, fn func(ctx context.Context, cl *Client) error) error {
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if prepare != nil {
		if err := prepare(); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cl.connect(ctx, globalTimeout(c))
	if err == nil {
		err = fn(ctx, cl)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && c.Context.Err() == nil && stopOK:
		return nil
	case ctx.Err() != nil && c.Context.Err() == nil:
		return errors.New("interrupted")
	default:
		return cl.Explain(err)
	}
}

// recvAll hands every message of a server stream to fn, to the stream's end.
func recvAll[T any](stream interface{ Recv() (*T, error) }, fn func(*T) error) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// outputFor is where the output of a container's stream goes: stderr to
// ccctl's stderr, the rest to its stdout.
func outputFor(c *cli.Context, stream string) io.Writer {
	if stream == "stderr" {
		return c.App.ErrWriter
	}
	return c.App.Writer
}

// eachArg runs fn for every argument, each with a deadline of --timeout
// plus extra, as docker does for `docker stop A B`: fn prints what it did,
// eachArg a line per failure, and it goes on with the others.
func eachArg(c *cli.Context, verb string, extra time.Duration, fn func(ctx context.Context, cl *Client, arg string) error) error {
	if c.NArg() == 0 {
		return fmt.Errorf("%s needs at least one argument (see `%s --help`)", verb, c.Command.HelpName)
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	failed := false
	for _, arg := range c.Args().Slice() {
		ctx, cancel := context.WithTimeout(c.Context, globalTimeout(c)+extra)
		err := fn(ctx, cl, arg)
		cancel()
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "ccctl: %s %s: %v\n", verb, arg, cl.Explain(err))
			failed = true
		}
	}
	if failed {
		return errReported
	}
	return nil
}

func jsonOut(c *cli.Context) bool { return c.String("output") == "json" }

func printJSON(c *cli.Context, m proto.Message) error {
	data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, string(data))
	return err
}

// done reports one argument of eachArg done: the argument as given, as
// docker prints it, or with -o json the response.
func done(c *cli.Context, arg string, resp proto.Message) error {
	if jsonOut(c) {
		return printJSON(c, resp)
	}
	_, err := fmt.Fprintln(c.App.Writer, arg)
	return err
}

func table(c *cli.Context) *tabwriter.Writer {
	return tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
}

func statusCmd(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("status takes no arguments, got %q", c.Args().Slice())
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		st, err := cl.Cluster.GetStatus(ctx, &ccv1.GetStatusRequest{})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, st)
		}
		leader := "none"
		if st.LeaderId != "" {
			leader = fmt.Sprintf("%s (%s)", st.LeaderId, st.LeaderAddress)
		}
		w := table(c)
		fmt.Fprintf(w, "Cluster ID:\t%s\n", st.ClusterId)
		fmt.Fprintf(w, "Created:\t%s\n", when(st.CreatedAt))
		fmt.Fprintf(w, "Leader:\t%s\n", leader)
		fmt.Fprintf(w, "Answered by:\t%s %s (%s, version %s)\n", st.ServerId, st.ServerName, st.RaftState, st.Version)
		fmt.Fprintf(w, "Raft term:\t%d\n", st.Term)
		fmt.Fprintf(w, "Raft index:\t%d (commit %d, applied %d)\n", st.LastIndex, st.CommitIndex, st.AppliedIndex)
		fmt.Fprintf(w, "Scheduling:\t%s\n", schedulingStrategy(st.GetSettings().GetSchedulingStrategy()))
		fmt.Fprintf(w, "\nSERVER\tADDRESS\tSUFFRAGE\tLEADER\n")
		for _, s := range st.Servers {
			fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", s.Id, s.Address, s.Suffrage, s.Leader)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		// Each server's readiness, as its /readyz answers (best effort:
		// the status above answers without a leader, this may not).
		servers, err := cl.Cluster.ListServers(ctx, &ccv1.ListServersRequest{})
		if err != nil {
			fmt.Fprintf(c.App.Writer, "\nChecks: not available: %v\n", cl.Explain(err))
			return nil
		}
		printServerChecks(c, servers.Servers)
		return nil
	})
}

// printServerChecks writes each server's readiness: one line for a ready
// server, every check of one that is not.
func printServerChecks(c *cli.Context, servers []*ccv1.ServerInfo) {
	w := table(c)
	fmt.Fprintf(w, "\nSERVER\tNAME\tVERSION\tREADY\tCHECKS\n")
	for _, s := range servers {
		name, version := s.Name, s.Version
		if version == "" {
			version = "-"
		}
		switch {
		case len(s.Checks) == 0:
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Id, name, version, "unknown", "no answer ("+s.RaftRole+")")
			continue
		case s.Ready:
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Id, name, version, "yes", checkSummary(s.Checks))
		default:
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Id, name, version, "NO", checkSummary(s.Checks))
		}
		for _, ch := range s.Checks {
			if !ch.Ok {
				fmt.Fprintf(w, "\t\t\t\t%s: %s\n", ch.Name, ch.Message)
			}
		}
	}
	w.Flush()
}

// checkSummary is "raft ok, leader ok, disk FAIL, tls warn".
func checkSummary(checks []*ccv1.ReadinessCheck) string {
	parts := make([]string, len(checks))
	for i, ch := range checks {
		switch {
		case ch.Ok:
			parts[i] = ch.Name + " ok"
		case ch.Required:
			parts[i] = ch.Name + " FAIL"
		default:
			parts[i] = ch.Name + " warn"
		}
	}
	return strings.Join(parts, ", ")
}

func contextCommand() *cli.Command {
	return &cli.Command{
		Name:  "context",
		Usage: "manage the clusters ccctl knows (its config file)",
		Subcommands: []*cli.Command{
			{
				Name: "set", Usage: "create or update a context", ArgsUsage: "NAME", OnUsageError: usageError,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "server", Usage: "API address `HOST:PORT`", Required: true},
					&cli.StringFlag{Name: "token-file", Usage: "read the API token from `FILE`", Required: true},
					&cli.StringFlag{Name: "ca-cert-file", Usage: "read the cluster CA certificate from `FILE` (or use --system-roots)"},
					&cli.BoolFlag{Name: "system-roots", Usage: "verify the server with the system's trusted roots and the host name of --server, for a server whose tls_cert_file names that host (instead of --ca-cert-file)"},
					&cli.BoolFlag{Name: "use", Usage: "make it the current context"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("context set needs exactly one NAME")
					}
					token, err := os.ReadFile(c.String("token-file"))
					if err != nil {
						return fmt.Errorf("--token-file: %v", err)
					}
					var ca []byte
					switch caFile := c.String("ca-cert-file"); {
					case caFile != "" && c.Bool("system-roots"):
						return errors.New("--ca-cert-file and --system-roots exclude each other: pin the cluster CA, or trust the system roots for a server with an operator's certificate")
					case caFile == "" && !c.Bool("system-roots"):
						return errors.New("context set needs --ca-cert-file FILE (the cluster CA, tls/ca.crt in the server's data dir) or --system-roots (for a server whose tls_cert_file names the host of --server)")
					case caFile != "":
						if ca, err = os.ReadFile(caFile); err != nil {
							return fmt.Errorf("--ca-cert-file: %v", err)
						}
					}
					path, err := ConfigPath()
					if err != nil {
						return err
					}
					cfg, err := LoadContexts(path)
					if err != nil {
						return err
					}
					name := c.Args().First()
					cfg.Contexts[name] = &Context{Addr: c.String("server"), Token: strings.TrimSpace(string(token)), CACert: string(ca), SystemRoots: ca == nil}
					if c.Bool("use") || cfg.Current == "" {
						cfg.Current = name
					}
					if err := cfg.Save(path); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "Context %q saved in %s.\n", name, path)
					return nil
				},
			},
			{
				Name: "use", Usage: "make a context the current one", ArgsUsage: "NAME", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					path, err := ConfigPath()
					if err != nil {
						return err
					}
					cfg, err := LoadContexts(path)
					if err != nil {
						return err
					}
					name := c.Args().First()
					if cfg.Contexts[name] == nil {
						return fmt.Errorf("no context %q in %s (see `ccctl context ls`)", name, path)
					}
					cfg.Current = name
					return cfg.Save(path)
				},
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list contexts", OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					path, err := ConfigPath()
					if err != nil {
						return err
					}
					cfg, err := LoadContexts(path)
					if err != nil {
						return err
					}
					w := table(c)
					fmt.Fprintf(w, "CURRENT\tNAME\tADDRESS\n")
					for _, n := range cfg.Names() {
						cur := ""
						if n == cfg.Current {
							cur = "*"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\n", cur, n, cfg.Contexts[n].Addr)
					}
					return w.Flush()
				},
			},
		},
	}
}

func enumWord(s, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(s, prefix))
}

func when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.RFC3339)
}
