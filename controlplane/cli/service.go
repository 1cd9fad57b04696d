package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/controlplane/config"
	"github.com/containercodes/cc/internal/sysunit"
)

// Where an installed server keeps its files, unless told otherwise.
const (
	DefaultConfigFile = "/etc/cc/controlplane.toml"
	DefaultDataDir    = "/var/lib/cc"
)

// serviceCommands are install, uninstall, start, stop, restart, status and
// logs: cc-controlplane as a systemd service.
func serviceCommands() []*ucli.Command {
	return sysunit.Commands(sysunit.Program{
		Name:         "cc-controlplane",
		InstallUsage: "write a systemd unit for this server, enable it, and with --now start it",
		InstallDescription: "The unit runs `cc-controlplane --config FILE`. When FILE does not exist, install writes it\n" +
			"(mode 0600) from --data-dir and --bootstrap or --join/--token; when it exists, it must\n" +
			"validate, and its data_dir is used. The unit restarts the server when it fails, raises its\n" +
			"file limit, and confines it: a read-only system but for the data dir (and the audit file's\n" +
			"directory), no new privileges, no capabilities but binding low ports, private /tmp and\n" +
			"devices, and a system-call filter. Without systemd as init (in a container, say) the unit\n" +
			"is still written, and install says how to start the server; --now fails.\n\n" +
			"First server:   cc-controlplane install --bootstrap --now\n" +
			"Other servers:  cc-controlplane install --join 10.0.0.5:7443 --token CCTKN-1-... --now\n" +
			"Then:           cc-controlplane status; cc-controlplane logs -f; systemctl reload cc-controlplane",
		InstallFlags: []ucli.Flag{
			&ucli.StringFlag{Name: "config", Value: DefaultConfigFile, Usage: "the config `FILE` the unit runs with; written when missing"},
			&ucli.StringFlag{Name: "data-dir", Value: DefaultDataDir, Usage: "`DIR` of a new config file (created, mode 0700)"},
			&ucli.BoolFlag{Name: "bootstrap", Usage: "a new config file creates a new cluster (the first server)"},
			&ucli.StringFlag{Name: "join", Usage: "a new config file joins the server at API `ADDR` (host:port)"},
			&ucli.StringFlag{Name: "token", Usage: "server join `TOKEN` for --join (`ccctl token create --role server`), kept in the config file", EnvVars: []string{"CC_SERVER_JOIN_TOKEN"}},
		},
		Prepare:      prepareUnit,
		DataDirFlags: dataDirFlags(),
		DataDir:      installedDataDir,
	}, usageError)
}

// dataDirFlags find a running server's data dir (its control socket).
func dataDirFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Value: DefaultConfigFile, Usage: "read data_dir from the config `FILE`"},
		&ucli.StringFlag{Name: "data-dir", Usage: "the server's `DIR` (instead of --config's data_dir)"},
	}
}

func installedDataDir(c *ucli.Context) (string, error) {
	if d := c.String("data-dir"); d != "" {
		return d, nil
	}
	path := c.String("config")
	cfg, err := config.LoadUnvalidated(path)
	if err != nil {
		return "", fmt.Errorf("%w (or give --data-dir)", err)
	}
	if cfg.DataDir == "" {
		return "", fmt.Errorf("%s has no data_dir: give --data-dir", path)
	}
	return cfg.DataDir, nil
}

func prepareUnit(c *ucli.Context, bin string) (sysunit.Unit, []string, error) {
	var notes []string
	path, err := filepath.Abs(c.String("config"))
	if err != nil {
		return sysunit.Unit{}, nil, err
	}
	cfg, err := config.Load(path)
	switch {
	case err == nil:
		for _, f := range []string{"data-dir", "bootstrap", "join", "token"} {
			if c.IsSet(f) {
				notes = append(notes, fmt.Sprintf("%s exists, so --%s is not used: edit the file instead.", path, f))
			}
		}
	case errors.Is(err, os.ErrNotExist) || !fileExists(path):
		data, err := newConfigFile(c)
		if err != nil {
			return sysunit.Unit{}, nil, err
		}
		if cfg, err = config.Parse(path, data); err != nil {
			return sysunit.Unit{}, nil, err
		}
		if err := sysunit.WriteFile(path, data, 0o600); err != nil {
			return sysunit.Unit{}, nil, fmt.Errorf("write %s: %w", path, err)
		}
		notes = append(notes, fmt.Sprintf("Wrote %s (mode 0600); every key is in docs/controlplane.example.toml.", path))
	default:
		return sysunit.Unit{}, nil, fmt.Errorf("%w (fix it, or install with another --config)", err)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return sysunit.Unit{}, nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return sysunit.Unit{}, nil, fmt.Errorf("data dir: %w", err)
	}
	writable := []string{dataDir}
	if cfg.AuditFile != "" {
		writable = append(writable, filepath.Dir(cfg.AuditFile))
	}
	return ControlPlaneUnit(bin, path, writable), notes, nil
}

// ControlPlaneUnit is the unit of a server run from bin with the config
// file config, allowed to write only under writable.
func ControlPlaneUnit(bin, config string, writable []string) sysunit.Unit {
	return sysunit.Unit{
		Name:        "cc-controlplane",
		Description: "Container Codes control plane (cc-controlplane)",
		After:       []string{"network-online.target"},
		Wants:       []string{"network-online.target"},
		ExecStart:   []string{bin, "--config", config},
		Service: []string{
			"UMask=0077",
			"# Confinement: the server needs its data dir, its config and certificate files",
			"# (read) and the network; nothing else.",
			"NoNewPrivileges=yes",
			"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
			"ProtectSystem=strict",
			"ReadWritePaths=" + strings.Join(writable, " "),
			"ProtectHome=read-only",
			"PrivateTmp=yes",
			"PrivateDevices=yes",
			"ProtectKernelTunables=yes",
			"ProtectKernelModules=yes",
			"ProtectKernelLogs=yes",
			"ProtectControlGroups=yes",
			"ProtectClock=yes",
			"ProtectHostname=yes",
			"RestrictNamespaces=yes",
			"RestrictRealtime=yes",
			"RestrictSUIDSGID=yes",
			"LockPersonality=yes",
			"MemoryDenyWriteExecute=yes",
			"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
			"SystemCallArchitectures=native",
			"SystemCallFilter=@system-service",
			"SystemCallErrorNumber=EPERM",
		},
	}
}

// newConfigFile is the config file of a new install.
func newConfigFile(c *ucli.Context) ([]byte, error) {
	if c.Bool("bootstrap") && c.String("join") != "" {
		return nil, errors.New("--bootstrap and --join exclude each other: the first server bootstraps, the others join it")
	}
	if c.String("join") != "" && c.String("token") == "" {
		return nil, errors.New("--join needs --token: a server join token (`ccctl token create --role server`)")
	}
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# cc-controlplane configuration, written by `cc-controlplane install`.\n")
	fmt.Fprintf(&b, "# Every key: docs/controlplane.example.toml. Check it: cc-controlplane config validate FILE;\n")
	fmt.Fprintf(&b, "# apply the keys that reload: cc-controlplane config reload (or systemctl reload cc-controlplane).\n\n")
	fmt.Fprintf(&b, "data_dir = %q\n", dataDir)
	switch {
	case c.Bool("bootstrap"):
		fmt.Fprintf(&b, "# Creates the cluster on the first start; later starts find it in data_dir.\nbootstrap = true\n")
	case c.String("join") != "":
		fmt.Fprintf(&b, "# Joins on the first start; later starts find the cluster in data_dir.\njoin = %q\njoin_token = %q\n", c.String("join"), c.String("token"))
	default:
		return nil, errors.New("a new config file needs --bootstrap (the first server of a cluster) or --join ADDR --token TOKEN (the others)")
	}
	fmt.Fprintf(&b, "\n[log]\nlevel = \"info\"\nformat = \"text\"\n")
	return []byte(b.String()), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
