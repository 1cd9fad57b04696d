// Package sysunit runs a program as a systemd service: it renders the
// program's unit, and gives the program its install, uninstall, start,
// stop, restart, status (the unit's state and the program's readiness,
// through its control socket) and logs (the journal) commands. On a host
// where systemd is not the init, install still writes the unit and says
// how to start the program; the commands that need systemd say so.
package sysunit

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Unit is a service unit.
type Unit struct {
	// Name is the unit's name without ".service", e.g. "cc-agent".
	Name        string
	Description string
	// After and Wants order the unit after other units, and pull them in.
	After, Wants []string
	// ExecStart is the command, as argv; ExecStart[0] must be absolute.
	ExecStart []string
	// EnvironmentFile, when set, is read for environment variables (a
	// missing file is no error).
	EnvironmentFile string
	// Service holds more lines of the [Service] section ("Key=value",
	// or "# comment"), after the common ones (restart, reload, limits).
	Service []string
}

// FileName is the unit's file name.
func (u Unit) FileName() string { return u.Name + ".service" }

// Render writes the unit file.
func (u Unit) Render() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# %s, written by `%s install`. Changes are lost at the next install;", u.FileName(), u.Name)
	line("# put overrides in a drop-in instead (systemctl edit %s).", u.Name)
	line("[Unit]")
	line("Description=%s", u.Description)
	if len(u.After) > 0 {
		line("After=%s", strings.Join(u.After, " "))
	}
	if len(u.Wants) > 0 {
		line("Wants=%s", strings.Join(u.Wants, " "))
	}
	line("")
	line("[Service]")
	line("Type=simple")
	if u.EnvironmentFile != "" {
		line("EnvironmentFile=-%s", u.EnvironmentFile)
	}
	line("ExecStart=%s", quoteArgs(u.ExecStart))
	line("# SIGHUP re-reads the config file: `systemctl reload %s`.", u.Name)
	line("ExecReload=/bin/kill -HUP $MAINPID")
	line("Restart=on-failure")
	line("RestartSec=2s")
	line("# A stop is graceful: in-flight work finishes first.")
	line("TimeoutStopSec=45s")
	line("LimitNOFILE=1048576")
	for _, l := range u.Service {
		line("%s", l)
	}
	line("")
	line("[Install]")
	line("WantedBy=multi-user.target")
	return b.String()
}

// quoteArgs writes argv as systemd reads it: words with spaces, quotes,
// backslashes, '$' or '%' quoted and escaped.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, "%", "%%")
		a = strings.ReplaceAll(a, "$", "$$")
		if a == "" || strings.ContainsAny(a, " \t\"'\\;") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Booted says whether systemd is the init of this host (sd_booted(3)).
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// Verify runs `systemd-analyze verify` on a unit file and returns what it
// said: an error when it failed or complained (it warns about unknown keys
// and still exits 0, so any output counts as a complaint).
func Verify(path string) error {
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return fmt.Errorf("systemd-analyze verify %s: %v: %s", path, err, out)
	}
	return nil
}
