package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/internal/sysunit"
)

// Where an installed agent keeps its files, unless told otherwise.
const (
	DefaultDataDir = "/var/lib/cc-agent"
	DefaultEnvFile = "/etc/cc/agent.env"
)

// dataDirFlag finds a running agent's control socket.
func dataDirFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "data-dir", Value: DefaultDataDir, Usage: "the agent's data `DIR` (its control socket is control.sock there)"}
}

// serviceCommands are install, uninstall, start, stop, restart, status and
// logs: cc-agent as a systemd service.
func serviceCommands() []*ucli.Command {
	return sysunit.Commands(sysunit.Program{
		Name:         "cc-agent",
		InstallUsage: "write a systemd unit for this node, enable it, and with --now start it",
		InstallDescription: "The unit runs `cc-agent --data-dir DIR [--config FILE]` after containerd, which it wants\n" +
			"started too. The join address and token go to an environment file (--env-file, mode 0600):\n" +
			"the first start joins with them; later starts find the node's identity in the data dir.\n" +
			"The unit restarts the agent when it fails and raises its file, process and task limits.\n" +
			"It is not confined much: the agent runs containers as root, sets up their network\n" +
			"namespaces, mounts and firewall rules, which must be the host's (a private mount\n" +
			"namespace would hide them from containerd). Stopping it leaves the containers running.\n" +
			"Without systemd as init (in a container, say) the unit is still written, and install\n" +
			"says how to start the agent; --now fails.\n\n" +
			"  cc-agent install --join 10.0.0.5:7443 --token CCTKN-1-... --now\n" +
			"  cc-agent install --join 10.0.0.5:7443 --token CCTKN-1-... --config /etc/cc/agent.toml --now\n" +
			"Then: cc-agent status; cc-agent logs -f; systemctl reload cc-agent (re-reads --config)",
		InstallFlags: []ucli.Flag{
			&ucli.StringFlag{Name: "join", Usage: "control plane API `ADDR` (host:port) to join", EnvVars: []string{"CC_JOIN"}},
			&ucli.StringFlag{Name: "token", Usage: "agent join `TOKEN` (`ccctl token create --role agent`), kept in --env-file", EnvVars: []string{"CC_JOIN_TOKEN"}},
			&ucli.StringFlag{Name: "data-dir", Value: DefaultDataDir, Usage: "the agent's data `DIR` (created, mode 0700)"},
			&ucli.StringFlag{Name: "config", Usage: "run with the agent config `FILE` (TOML, see `cc-agent --help`); checked now"},
			&ucli.StringFlag{Name: "env-file", Value: DefaultEnvFile, Usage: "write the join address and token to `FILE`"},
		},
		Prepare:      prepareUnit,
		DataDirFlags: []ucli.Flag{dataDirFlag()},
		DataDir:      func(c *ucli.Context) (string, error) { return c.String("data-dir"), nil },
	}, usageError)
}

func prepareUnit(c *ucli.Context, bin string) (sysunit.Unit, []string, error) {
	var notes []string
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return sysunit.Unit{}, nil, err
	}
	args := []string{bin, "--data-dir", dataDir}
	if cfg := c.String("config"); cfg != "" {
		if cfg, err = filepath.Abs(cfg); err != nil {
			return sysunit.Unit{}, nil, err
		}
		file, err := readConfigFile(cfg, app(io.Discard, io.Discard).Flags)
		if err == nil {
			err = checkFileValues(cfg, file)
		}
		if err != nil {
			return sysunit.Unit{}, nil, err
		}
		args = append(args, "--config", cfg)
	}
	joined := fileExists(filepath.Join(dataDir, "identity", "node.json"))
	envFile, err := filepath.Abs(c.String("env-file"))
	if err != nil {
		return sysunit.Unit{}, nil, err
	}
	switch {
	case c.String("join") != "" && c.String("token") != "":
		env := fmt.Sprintf("# Read by cc-agent.service: the first start joins with these.\nCC_JOIN=%s\nCC_JOIN_TOKEN=%s\n", c.String("join"), c.String("token"))
		if err := sysunit.WriteFile(envFile, []byte(env), 0o600); err != nil {
			return sysunit.Unit{}, nil, fmt.Errorf("write %s: %w", envFile, err)
		}
		notes = append(notes, fmt.Sprintf("Wrote %s (mode 0600) with the join address and token.", envFile))
	case joined:
		notes = append(notes, fmt.Sprintf("%s holds a joined node: it starts as that node, without a token.", dataDir))
	case c.String("join") != "":
		return sysunit.Unit{}, nil, errors.New("--join needs --token: an agent join token (`ccctl token create --role agent`)")
	default:
		return sysunit.Unit{}, nil, errors.New("install needs --join ADDR --token TOKEN for a node that has not joined yet (`ccctl token create --role agent` makes the token)")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return sysunit.Unit{}, nil, fmt.Errorf("data dir: %w", err)
	}
	return AgentUnit(args, envFile), notes, nil
}

// AgentUnit is the unit that runs the agent with args, reading envFile.
func AgentUnit(args []string, envFile string) sysunit.Unit {
	return sysunit.Unit{
		Name:            "cc-agent",
		Description:     "Container Codes node agent (cc-agent)",
		After:           []string{"network-online.target", "containerd.service"},
		Wants:           []string{"network-online.target", "containerd.service"},
		ExecStart:       args,
		EnvironmentFile: envFile,
		Service: []string{
			"LimitNPROC=infinity",
			"LimitCORE=infinity",
			"TasksMax=infinity",
			"# The node's work must outlive a memory squeeze longer than its containers.",
			"OOMScoreAdjust=-500",
			"# Little confinement: the agent runs containers as root and sets up their network",
			"# namespaces, mounts and iptables rules, which must be the host's. A private mount",
			"# namespace (ProtectSystem, PrivateTmp, ReadWritePaths...) would hide them from",
			"# containerd, so none is used. Its containers belong to containerd's shims: stopping",
			"# this unit leaves them running, as on any restart of the agent.",
			"LockPersonality=yes",
			"RestrictRealtime=yes",
			"SystemCallArchitectures=native",
		},
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
