package sysunit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/control"
	"github.com/containercodes/cc/internal/readiness"
)

// DefaultUnitDir is where install writes units: the administrator's
// unit directory, which systemd reads.
const DefaultUnitDir = "/etc/systemd/system"

// Program is what the service commands need of a program.
type Program struct {
	// Name is the program's and its unit's name ("cc-agent").
	Name string
	// InstallUsage and InstallDescription are the install command's help.
	InstallUsage, InstallDescription string
	// InstallFlags are install's own flags (besides --now, --unit-dir
	// and --bin).
	InstallFlags []ucli.Flag
	// Prepare checks install's flags, writes what the unit needs beside
	// it (a config file, an environment file), and returns the unit to
	// run bin (absolute), with lines to tell the user.
	Prepare func(c *ucli.Context, bin string) (Unit, []string, error)
	// DataDirFlags find the installed program's data dir, for status
	// (its control socket); DataDir reads them.
	DataDirFlags []ucli.Flag
	DataDir      func(c *ucli.Context) (string, error)
}

// booted is Booted, replaced in tests.
var booted = Booted

// Commands are install, uninstall, start, stop, restart, status and logs.
func Commands(p Program, usageError ucli.OnUsageErrorFunc) []*ucli.Command {
	unit := p.Name + ".service"
	needSystemd := func(verb string) error {
		if booted() {
			return nil
		}
		return fmt.Errorf("%s: systemd is not running on this host (PID 1 is another init), so there is no %s unit to %s; run `%s` in the foreground, or under this host's own supervisor", verb, unit, verb, p.Name)
	}
	systemctl := func(c *ucli.Context, verb string) error {
		if err := needSystemd(verb); err != nil {
			return err
		}
		return run(c, "systemctl", verb, unit)
	}
	unitDirFlag := &ucli.StringFlag{Name: "unit-dir", Value: DefaultUnitDir, Usage: "write the unit into `DIR` (systemd reads " + DefaultUnitDir + "; another directory is for a look at the unit, or packaging)"}
	return []*ucli.Command{
		{
			Name:         "install",
			Usage:        p.InstallUsage,
			Description:  p.InstallDescription,
			OnUsageError: usageError,
			Flags: append(append([]ucli.Flag{}, p.InstallFlags...),
				&ucli.BoolFlag{Name: "now", Usage: "also start it now (needs systemd as init: without it, install writes the unit, then fails saying so)"},
				unitDirFlag,
				&ucli.StringFlag{Name: "bin", Usage: "the program `FILE` the unit runs (default: this one, " + selfPath() + ")"},
			),
			Action: func(c *ucli.Context) error { return install(c, p) },
		},
		{
			Name:         "uninstall",
			Usage:        "stop the service, disable it and remove its unit (data and config files are kept)",
			OnUsageError: usageError,
			Flags:        []ucli.Flag{unitDirFlag},
			Action:       func(c *ucli.Context) error { return uninstall(c, p) },
		},
		{Name: "start", Usage: "start the service (systemctl start " + unit + ")", OnUsageError: usageError, Action: func(c *ucli.Context) error { return systemctl(c, "start") }},
		{Name: "stop", Usage: "stop the service gracefully (systemctl stop " + unit + ")", OnUsageError: usageError, Action: func(c *ucli.Context) error { return systemctl(c, "stop") }},
		{Name: "restart", Usage: "restart the service (systemctl restart " + unit + ")", OnUsageError: usageError, Action: func(c *ucli.Context) error { return systemctl(c, "restart") }},
		{
			Name:  "status",
			Usage: "show the unit's state and the program's readiness checks (exit 1 when not ready)",
			Description: "The readiness checks come from the running program through its control socket\n" +
				"(control.sock in its data dir), as its /readyz answers them. Run as root or the service's user.",
			OnUsageError: usageError,
			Flags:        p.DataDirFlags,
			Action:       func(c *ucli.Context) error { return status(c, p) },
		},
		{
			Name:         "logs",
			Usage:        "show the service's log from the journal (journalctl -u " + unit + ")",
			OnUsageError: usageError,
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines"},
				&ucli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "show the last `N` lines"},
				&ucli.StringFlag{Name: "since", Usage: "show lines since `TIME` (journalctl's forms: \"1h ago\", \"2025-01-02 10:00\", today)"},
			},
			Action: func(c *ucli.Context) error {
				args := []string{"-u", unit, "--no-pager", "-n", fmt.Sprint(c.Int("lines"))}
				if c.Bool("follow") {
					args = append(args, "-f")
				}
				if s := c.String("since"); s != "" {
					args = append(args, "--since", s)
				}
				if _, err := exec.LookPath("journalctl"); err != nil {
					return fmt.Errorf("logs: journalctl is not installed here; without systemd the program logs to its standard error")
				}
				return run(c, "journalctl", args...)
			},
		},
	}
}

func selfPath() string {
	p, err := os.Executable()
	if err != nil {
		return "?"
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func install(c *ucli.Context, p Program) error {
	if c.NArg() > 0 {
		return fmt.Errorf("install takes no arguments, got %q (see `%s install --help`)", c.Args().Slice(), p.Name)
	}
	bin := c.String("bin")
	if bin == "" {
		bin = selfPath()
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("--bin %s: not an executable file", bin)
	}
	u, notes, err := p.Prepare(c, bin)
	if err != nil {
		return err
	}
	dir := c.String("unit-dir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, u.FileName())
	if err := writeFile(path, []byte(u.Render()), 0o644); err != nil {
		return fmt.Errorf("write the unit: %w", err)
	}
	out := c.App.Writer
	fmt.Fprintf(out, "Wrote %s.\n", path)
	for _, n := range notes {
		fmt.Fprintln(out, n)
	}
	inSystemdDir := filepath.Clean(dir) == DefaultUnitDir
	switch {
	case !booted():
		run := quoteArgs(u.ExecStart)
		if u.EnvironmentFile != "" {
			run = fmt.Sprintf("set -a; . %s; set +a; %s", u.EnvironmentFile, run)
		}
		fmt.Fprintf(out, "\nsystemd is not running on this host, so the unit is not enabled. Where systemd runs:\n"+
			"  systemctl daemon-reload && systemctl enable --now %s\n"+
			"Here, run the program in the foreground (or under this host's supervisor):\n  %s\n", u.Name, run)
		if c.Bool("now") {
			return fmt.Errorf("--now: systemd is not running on this host, so %s cannot be started as a service; the unit is written (%s): start the program as shown above", u.Name, path)
		}
		return nil
	case !inSystemdDir:
		fmt.Fprintf(out, "\nThe unit is in %s, which systemd does not read: copy it into %s to use it.\n", dir, DefaultUnitDir)
		if c.Bool("now") {
			return fmt.Errorf("--now: the unit is in %s, not %s; install without --unit-dir to start it", dir, DefaultUnitDir)
		}
		return nil
	}
	if err := run(c, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	args := []string{"enable"}
	if c.Bool("now") {
		args = append(args, "--now")
	}
	if err := run(c, "systemctl", append(args, u.Name)...); err != nil {
		return err
	}
	if c.Bool("now") {
		fmt.Fprintf(out, "Enabled and started %s. Check it with `%s status`; its log: `%s logs -f`.\n", u.Name, p.Name, p.Name)
	} else {
		fmt.Fprintf(out, "Enabled %s: it starts at boot. Start it now with `%s start` (or install --now).\n", u.Name, p.Name)
	}
	return nil
}

func uninstall(c *ucli.Context, p Program) error {
	unit := p.Name + ".service"
	path := filepath.Join(c.String("unit-dir"), unit)
	if booted() && filepath.Clean(c.String("unit-dir")) == DefaultUnitDir {
		if err := run(c, "systemctl", "disable", "--now", unit); err != nil {
			return err
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	} else if err == nil {
		fmt.Fprintf(c.App.Writer, "Removed %s.\n", path)
	} else {
		fmt.Fprintf(c.App.Writer, "No unit at %s.\n", path)
	}
	if booted() && filepath.Clean(c.String("unit-dir")) == DefaultUnitDir {
		if err := run(c, "systemctl", "daemon-reload"); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.App.Writer, "The data dir and config files are kept; remove them by hand to forget this host's %s.\n", p.Name)
	return nil
}

func status(c *ucli.Context, p Program) error {
	out := c.App.Writer
	if booted() {
		// systemctl status exits 3 for an inactive unit: the state is
		// the answer, not an error.
		cmd := exec.CommandContext(c.Context, "systemctl", "status", "--no-pager", "--lines=0", p.Name+".service")
		cmd.Stdout, cmd.Stderr = out, c.App.ErrWriter
		_ = cmd.Run()
		fmt.Fprintln(out)
	} else {
		fmt.Fprintf(out, "Unit: systemd is not running on this host; the program's own answer follows.\n")
	}
	dir, err := p.DataDir(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	code, body, err := control.Call(ctx, dir, http.MethodGet, control.PathReadyz)
	if err != nil {
		return fmt.Errorf("readiness: %w", err)
	}
	var rep readiness.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("readiness: unexpected answer %d: %s", code, body)
	}
	fmt.Fprintf(out, "Readiness (%s):\n", filepath.Join(dir, control.SocketName))
	rep.Print(out)
	if !rep.Ready() {
		return fmt.Errorf("%s is not ready (see the failing required checks above)", p.Name)
	}
	return nil
}

// run runs a command with the terminal's output.
func run(c *ucli.Context, name string, args ...string) error {
	cmd := exec.CommandContext(c.Context, name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w", name, args, err)
	}
	return nil
}

// writeFile writes a file whole or not at all: a temporary file renamed
// into place.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteFile writes a file beside a unit (a config or environment file)
// whole or not at all, with mode.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFile(path, data, mode)
}
