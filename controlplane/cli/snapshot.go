package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/server"
	"github.com/containercodes/cc/internal/logging"
)

// restoreReadyTimeout bounds the restore's own start of the new server.
const restoreReadyTimeout = 2 * time.Minute

const restoreHelpName = "cc-controlplane snapshot restore"

const restoreDescription = "The new cluster keeps the snapshot's identity: cluster id, CA, API and join tokens,\n" +
	"nodes, containers and image records. Its raft log starts anew, with this server as its\n" +
	"only member; more servers join it as usual. No admin token is created: the tokens of the\n" +
	"snapshot still work.\n\n" +
	"The command checks FILE, writes DIR/state.db, starts the server once to set up raft on\n" +
	"it, stops it, and prints the command that starts it. Give the addresses and config the\n" +
	"server will run with: raft records its address.\n\n" +
	"Image blobs are not in a snapshot: copy the old data dir's blobs/ into DIR/blobs\n" +
	"before starting the server, or load the images again.\n\n" +
	"Example:\n" +
	"  cc-controlplane snapshot restore backup.db --data-dir /var/lib/cc-new --api-addr 10.0.0.5:7443\n" +
	"  cc-controlplane --data-dir /var/lib/cc-new --api-addr 10.0.0.5:7443"

func restoreFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "data-dir", Usage: "new, empty `DIR` for the restored server (required)"},
		&ucli.StringFlag{Name: "config", Usage: "TOML config `FILE` the server will run with", EnvVars: []string{"CC_CONFIG_FILE"}},
		&ucli.StringFlag{Name: "name", Usage: "human `NAME` of this server (default: host name)"},
		&ucli.StringFlag{Name: "api-addr", Usage: "`HOST:PORT` for gRPC and REST over TLS (default 0.0.0.0:7443)"},
		&ucli.StringFlag{Name: "raft-addr", Usage: "`HOST:PORT` for raft between servers (default 0.0.0.0:7444)"},
		&ucli.StringFlag{Name: "raft-advertise", Usage: "`HOST:PORT` other servers reach raft at (default: derived)"},
		&ucli.StringFlag{Name: "api-advertise", Usage: "`HOST:PORT` other servers and clients reach the API at (default: derived)"},
		&ucli.StringSliceFlag{Name: "tls-san", Usage: "extra DNS `NAME` or IP for the server certificate (repeatable)"},
		&ucli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info, warn or error (default here: warn)"},
		&ucli.StringFlag{Name: "log-format", Usage: "`FORMAT`: text or json"},
	}
}

func snapshotCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "snapshot",
		Usage: "work with state snapshots (backups taken with `ccctl snapshot save`)",
		Subcommands: []*ucli.Command{{
			Name: "restore", ArgsUsage: "FILE",
			Usage:       "create a new single-server cluster in an empty --data-dir from a snapshot",
			Description: restoreDescription,
			// Flags may come after FILE, as in the usage line: the
			// arguments are parsed by restoreCommandLine.
			SkipFlagParsing: true,
			Flags:           restoreFlags(),
			Action:          restoreCommandLine,
		}},
	}
}

// restoreCommandLine parses the restore's arguments with its flags before
// or after FILE (urfave/cli stops at the first plain argument), and with
// the global flags given before `snapshot`, then runs restoreSnapshot.
func restoreCommandLine(c *ucli.Context) error {
	var args []string
	// Global flags of the same names, set before the command.
	for _, f := range restoreFlags() {
		name := f.Names()[0]
		for _, p := range c.Lineage()[1:] {
			if !p.IsSet(name) {
				continue
			}
			if _, ok := f.(*ucli.StringSliceFlag); ok {
				for _, v := range p.StringSlice(name) {
					args = append(args, "--"+name+"="+v)
				}
			} else {
				args = append(args, "--"+name+"="+p.String(name))
			}
			break
		}
	}
	var plain []string
	rest := c.Args().Slice()
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			plain = append(plain, rest[i+1:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			args = append(args, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && name != "help" && name != "h" && i+1 < len(rest) {
				args = append(args, rest[i+1]) // every flag here takes a value
				i++
			}
		default:
			plain = append(plain, a)
		}
	}
	app := &ucli.App{
		Name: restoreHelpName, HelpName: restoreHelpName,
		Usage:       "create a new single-server cluster in an empty --data-dir from a snapshot",
		UsageText:   restoreHelpName + " FILE --data-dir DIR [flags]",
		Description: restoreDescription,
		Writer:      c.App.Writer, ErrWriter: c.App.ErrWriter,
		HideVersion: true, HideHelpCommand: true,
		CustomAppHelpTemplate: strings.ReplaceAll(ucli.AppHelpTemplate, "GLOBAL OPTIONS", "OPTIONS"),
		Flags:                 restoreFlags(),
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return fmt.Errorf("%v (see `%s --help`)", err, restoreHelpName)
		},
		Action: restoreSnapshot,
	}
	return app.RunContext(c.Context, append(append([]string{restoreHelpName}, args...), plain...))
}

func restoreSnapshot(c *ucli.Context) (err error) {
	if c.NArg() != 1 {
		return fmt.Errorf("snapshot restore needs exactly one FILE, got %q (see `%s --help`)", c.Args().Slice(), restoreHelpName)
	}
	src := c.Args().First()
	if !c.IsSet("data-dir") {
		return fmt.Errorf("snapshot restore needs --data-dir DIR, a new or empty directory (see `%s --help`)", restoreHelpName)
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	// A new cluster of its own: never a join (from a config file) of another.
	cfg.Bootstrap = true
	cfg.Join, cfg.JoinToken = "", ""
	if !c.IsSet("log-level") && cfg.Log.Level == config.Default().Log.Level {
		cfg.Log.Level = "warn"
	}
	dir := cfg.DataDir
	created, err := emptyDir(dir)
	if err != nil {
		return err
	}
	// Whatever is in dir now is the restore's own: clean it up on failure,
	// so that the restore can simply be run again.
	defer func() {
		if err != nil {
			if rmErr := clearDir(dir, created); rmErr != nil {
				err = fmt.Errorf("%w (and cleaning up %s: %v)", err, dir, rmErr)
			}
		}
	}()

	info, err := fsm.PrepareRestoreInfo(src, filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := initRestored(ctx, cfg, info, c); err != nil {
		return fmt.Errorf("start the restored server: %w", err)
	}

	w := c.App.Writer
	fmt.Fprintf(w, "Restored cluster %s into %s from %s (taken at raft index %d: %d tokens, %d nodes, %d containers, %d images).\n",
		info.ClusterID, dir, src, info.Index, info.Tokens, info.Nodes, info.Containers, info.Images)
	fmt.Fprintf(w, "This server is the only member of the cluster; its raft log starts anew. No admin token was\n"+
		"created: use a token of the snapshot (the old admin.token, a ccctl context). The CA is unchanged,\n"+
		"so ccctl and agents trust the new server; point them at its address if it changed.\n")
	if info.Images > 0 {
		fmt.Fprintf(w, "Image blobs are not in the snapshot: copy the old data dir's blobs/ into %s\n"+
			"before starting the server (cp -a OLD/blobs/. %s/), or load the images again.\n",
			filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs"))
	}
	fmt.Fprintf(w, "Start it with:\n\n  %s\n\n", startCommand(c, dir))
	return nil
}

// initRestored starts the server once on the prepared data dir, as a
// bootstrap of a new cluster, and leaves its raft log as a snapshot of the
// restored state: a server that joins later must get that state through a
// raft snapshot, since no log entry holds it. With one trailing log entry,
// the snapshot compacts the bootstrap entry away, so the leader cannot
// replay the log from index 1 to a new server and must send the snapshot.
func initRestored(ctx context.Context, cfg config.Config, info fsm.SnapshotInfo, c *ucli.Context) (err error) {
	log, err := logging.New(c.App.ErrWriter, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	cfg.Raft.TrailingLogs = 1
	sctx, cancel := context.WithTimeout(ctx, restoreReadyTimeout)
	defer cancel()
	srv, err := server.Start(sctx, cfg, server.Options{Logger: log, Out: c.App.Writer})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if cerr := srv.Close(cctx); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err := srv.WaitReady(sctx); err != nil {
		return err
	}
	if got := srv.ClusterID(); got != info.ClusterID {
		return fmt.Errorf("the server came up as cluster %s, not the snapshot's %s", got, info.ClusterID)
	}
	if srv.AdminToken() != "" {
		return errors.New("the server bootstrapped a new cluster identity instead of the snapshot's")
	}
	if err := srv.Snapshot(); err != nil {
		return fmt.Errorf("raft snapshot of the restored state: %w", err)
	}
	return nil
}

// emptyDir checks that dir is missing or empty, creates it, and says
// whether it created it.
func emptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("data dir: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("data dir: %w", err)
	case len(entries) > 0:
		return false, fmt.Errorf("data dir %s is not empty: restore into a new or empty directory (a data dir's state must match its raft log)", dir)
	}
	return false, nil
}

// clearDir removes what the restore wrote into dir: dir itself when the
// restore created it, else its entries.
func clearDir(dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// startCommand is the command line that starts the restored server with
// the settings the restore was given.
func startCommand(c *ucli.Context, dir string) string {
	args := []string{"cc-controlplane"}
	for _, name := range []string{"config", "name", "api-addr", "api-advertise", "raft-addr", "raft-advertise"} {
		if c.IsSet(name) {
			args = append(args, "--"+name, shellQuote(c.String(name)))
		}
	}
	if c.IsSet("tls-san") {
		for _, san := range c.StringSlice("tls-san") {
			args = append(args, "--tls-san", shellQuote(san))
		}
	}
	args = append(args, "--data-dir", shellQuote(dir))
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
