// Package cli is the command line of cc-controlplane: flags and the TOML file
// fill one config.Config; the default action runs a server until SIGINT or
// SIGTERM, and reloads the config file on SIGHUP or `config reload` (over
// the control socket in the data dir); `config validate` checks a file;
// `install` and its siblings run the server as a systemd service.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/control"
	"github.com/containercodes/cc/internal/logging"
	"github.com/containercodes/cc/internal/readiness"
	"github.com/containercodes/cc/internal/tracing"
)

// Main runs the command and returns the exit code. Errors print as one line.
func Main(args []string, stdout, stderr io.Writer) int {
	if err := app(stdout, stderr).Run(args); err != nil {
		fmt.Fprintf(stderr, "cc-controlplane: %v\n", err)
		return 1
	}
	return 0
}

func usageError(c *ucli.Context, err error, _ bool) error {
	return fmt.Errorf("%v (see `%s --help`)", err, c.Command.HelpName)
}

func app(stdout, stderr io.Writer) *ucli.App {
	return &ucli.App{
		Name:    "cc-controlplane",
		Usage:   "run a Container Codes control-plane server",
		Version: buildinfo.Version,
		Writer:  stdout, ErrWriter: stderr,
		Description: "Flags override the config file (--config), which overrides the defaults.\n" +
			"Create a cluster:  cc-controlplane --bootstrap --data-dir /var/lib/cc\n" +
			"Restart it:        cc-controlplane --data-dir /var/lib/cc\n" +
			"Add a server:      cc-controlplane --join 10.0.0.5:7443 --token CCTKN-1-... --data-dir /var/lib/cc\n" +
			"Reload config:     cc-controlplane config reload, or kill -HUP <pid> (re-reads --config; see `config reload --help`)\n" +
			"As a service:      cc-controlplane install --bootstrap --now (see `install --help`)",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "config", Usage: "TOML config `FILE`", EnvVars: []string{"CC_CONFIG_FILE"}},
			&ucli.StringFlag{Name: "data-dir", Usage: "`DIR` for raft, state, certificates and the admin token"},
			&ucli.BoolFlag{Name: "bootstrap", Usage: "create a new cluster in --data-dir if it holds none"},
			&ucli.StringFlag{Name: "name", Usage: "human `NAME` of this server (default: host name)"},
			&ucli.StringFlag{Name: "api-addr", Usage: "`HOST:PORT` for gRPC and REST over TLS (default 0.0.0.0:7443)"},
			&ucli.StringFlag{Name: "raft-addr", Usage: "`HOST:PORT` for raft between servers (default 0.0.0.0:7444)"},
			&ucli.StringFlag{Name: "raft-advertise", Usage: "`HOST:PORT` other servers reach raft at (default: derived)"},
			&ucli.StringFlag{Name: "api-advertise", Usage: "`HOST:PORT` other servers and clients reach the API at (default: derived)"},
			&ucli.StringFlag{Name: "join", Usage: "API `ADDR` of a server of the cluster to join (first start only)"},
			&ucli.StringFlag{Name: "token", Usage: "server join `TOKEN` for --join (`ccctl token create --role server`)", EnvVars: []string{"CC_SERVER_JOIN_TOKEN"}},
			&ucli.StringSliceFlag{Name: "tls-san", Usage: "extra DNS `NAME` or IP for the server certificate (repeatable)"},
			&ucli.StringFlag{Name: "tls-cert-file", Usage: "PEM certificate `FILE` (with its chain) the API presents to clients asking for its DNS names; reloaded when it changes"},
			&ucli.StringFlag{Name: "tls-key-file", Usage: "PEM private key `FILE` of --tls-cert-file"},
			&ucli.DurationFlag{Name: "node-down-after", Usage: "mark a node down and move its service tasks after `DURATION` without a heartbeat (default 10s)"},
			&ucli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info, warn or error"},
			&ucli.StringFlag{Name: "log-format", Usage: "`FORMAT`: text or json"},
		},
		OnUsageError: usageError,
		Action:       run,
		Commands: append([]*ucli.Command{
			{
				Name:  "config",
				Usage: "work with config files",
				Subcommands: []*ucli.Command{{
					Name: "validate", Usage: "check a config file and say what is wrong, line by line", ArgsUsage: "FILE",
					OnUsageError: usageError,
					Action:       validate,
				}, {
					Name:  "reload",
					Usage: "make the running server re-read its config file, and say what changed",
					Description: "Asks the server through its control socket (control.sock in its data dir; run as root or\n" +
						"its user), as SIGHUP does, and prints what it did. Applied at once: " + strings.Join(reloadableKeys(), ", ") + ".\n" +
						"Other changed keys are named: they take effect at the next start. A file with a problem is\n" +
						"refused whole, with the problems by line, and the configuration in force stays; the exit\n" +
						"status is then 1.",
					Flags:        dataDirFlags(),
					OnUsageError: usageError,
					Action:       reloadCommand,
				}},
			},
			snapshotCommand(),
			recoverCommand(),
		}, serviceCommands()...),
	}
}

// loadConfig builds the Config: defaults, then the file, then flags.
func loadConfig(c *ucli.Context) (config.Config, error) {
	return loadFile(c.String("config"), func(cfg *config.Config) { applyFlags(c, cfg) })
}

// loadFile reads the config file (none when path is ""), applies flags
// over it and validates the result; problems of keys the file sets carry
// their lines.
func loadFile(path string, flags func(*config.Config)) (config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.LoadUnvalidated(path); err != nil {
			return cfg, err
		}
	}
	flags(&cfg)
	if err := cfg.Validate(); err != nil {
		err = config.InFile(path, err)
		var fe *config.FileError
		if errors.As(err, &fe) {
			return cfg, err
		}
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// applyFlags sets what the command line gives over cfg.
func applyFlags(c *ucli.Context, cfg *config.Config) {
	if c.IsSet("data-dir") {
		cfg.DataDir = c.String("data-dir")
	}
	if c.IsSet("bootstrap") {
		cfg.Bootstrap = c.Bool("bootstrap")
	}
	if c.IsSet("name") {
		cfg.Name = c.String("name")
	}
	if c.IsSet("api-addr") {
		cfg.APIAddr = c.String("api-addr")
	}
	if c.IsSet("raft-addr") {
		cfg.RaftAddr = c.String("raft-addr")
	}
	if c.IsSet("raft-advertise") {
		cfg.RaftAdvertise = c.String("raft-advertise")
	}
	if c.IsSet("api-advertise") {
		cfg.APIAdvertise = c.String("api-advertise")
	}
	if c.IsSet("join") {
		cfg.Join = c.String("join")
	}
	if c.IsSet("token") {
		cfg.JoinToken = c.String("token")
	}
	if c.IsSet("tls-san") {
		cfg.TLSSANs = c.StringSlice("tls-san")
	}
	if c.IsSet("tls-cert-file") {
		cfg.TLSCertFile = c.String("tls-cert-file")
	}
	if c.IsSet("tls-key-file") {
		cfg.TLSKeyFile = c.String("tls-key-file")
	}
	if c.IsSet("node-down-after") {
		cfg.NodeDownAfter.Duration = c.Duration("node-down-after")
	}
	if c.IsSet("log-level") {
		cfg.Log.Level = c.String("log-level")
	}
	if c.IsSet("log-format") {
		cfg.Log.Format = c.String("log-format")
	}
}

func run(c *ucli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see `cc-controlplane --help`)", c.Args().First())
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	log, level, err := logging.NewLeveled(c.App.ErrWriter, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	tracing.LogErrors(log.With("component", "tracing"))
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg, server.Options{Logger: log, Out: c.App.Writer})
	if err != nil {
		return err
	}
	rl := &reloader{path: c.String("config"), load: func() (config.Config, error) { return loadConfig(c) }, srv: srv, level: level, log: log, cur: cfg}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The control socket: `config reload` and `status` on this host.
	mux := http.NewServeMux()
	mux.Handle("POST "+control.PathReload, control.ReloadHandler(rl.reload))
	mux.Handle("GET "+control.PathReadyz, readiness.Readyz(srv.Checks))
	mux.HandleFunc("GET "+control.PathHealth, readiness.Healthz)
	if sock, err := control.Listen(cfg.DataDir, mux, log.With("component", "control")); err != nil {
		log.Warn("no control socket: `cc-controlplane config reload` and `status` cannot reach this server (SIGHUP still reloads)", "err", err)
	} else {
		defer sock.Close()
	}
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down: stop accepting, finish in-flight calls, close raft and state")
			break wait
		case runErr = <-srv.Err():
			log.Error("a listener failed; shutting down", "err", runErr)
			break wait
		case <-hup:
			rl.reload()
		}
	}
	stop() // a second signal now kills the process at once
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Close(sctx); err != nil {
		return errors.Join(runErr, err)
	}
	log.Info("stopped")
	return runErr
}

func reloadCommand(c *ucli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("config reload takes no arguments, got %q (see `cc-controlplane config reload --help`)", c.Args().Slice())
	}
	dir, err := installedDataDir(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	res, err := control.Reload(ctx, dir)
	if err != nil {
		return err
	}
	res.Print(c.App.Writer)
	if !res.OK() {
		return errors.New("the config file was refused")
	}
	return nil
}

func validate(c *ucli.Context) error {
	if c.NArg() != 1 {
		return errors.New("config validate needs exactly one FILE")
	}
	path := c.Args().First()
	if _, err := config.Load(path); err != nil {
		var fe *config.FileError
		if errors.As(err, &fe) {
			for _, p := range fe.Problems {
				fmt.Fprintf(c.App.ErrWriter, "%s: %s\n", path, p)
			}
			return fmt.Errorf("%s: %d problem(s)", path, len(fe.Problems))
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
	return nil
}
