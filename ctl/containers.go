package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name: "run", Usage: "create and start a container on a node; prints its id",
		ArgsUsage: "IMAGE [COMMAND [ARG...]]",
		Description: "Flags go before IMAGE: everything after it (or after --) is the container's command.\n" +
			"Without -d, ccctl prints the container's output until it ends and exits with its exit\n" +
			"code, as `docker run` does (Ctrl-C leaves it running). With -d it starts in the\n" +
			"background and ccctl prints its id; see `ccctl logs`.\n\n" +
			"Examples:\n" +
			"  ccctl run --name web -p 8080:80 --memory 128m --cpus 0.5 nginx:1.27\n" +
			"  ccctl run -e GREETING=hi --restart on-failure alpine:3.20 sh -c 'echo $GREETING'\n" +
			"  ccctl run -d --node node-1 --network none --read-only busybox -- sleep 3600\n" +
			"  ccctl run -d --disk 1g --cap-drop NET_RAW --userns private alpine:3.20 sh\n\n" +
			"Disk limits and security profiles (--disk, --cap-add, --cap-drop, --security-opt, --userns,\n" +
			"--privileged): docs/containers.md.",
		OnUsageError: usageError,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "container `NAME`, unique in the cluster (default: generated)"},
			&cli.StringFlag{Name: "node", Usage: "run on node `ID|NAME` (default: any ready node with room)"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable: `VAR`=VALUE, or VAR alone for its value here; repeatable"},
			&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit `SIZE`: bytes or with b, k, m, g (e.g. 64m, 1g)"},
			&cli.StringFlag{Name: "cpus", Usage: "CPU limit in `CORES` (e.g. 0.5, 2)"},
			&cli.Int64Flag{Name: "pids", Aliases: []string{"pids-limit"}, Usage: "limit the processes to `N`"},
			&cli.BoolFlag{Name: "read-only", Usage: "mount the root file system read-only"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "run as `USER` (uid, uid:gid or a name known to the image)"},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working `DIR` in the container"},
			&cli.StringFlag{Name: "restart", Usage: "restart `POLICY`: no, on-failure or always (default: no)"},
			&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a container `PORT` on the node: HOSTPORT:PORT[/udp] (e.g. 8080:80); repeatable"},
			&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "`MODE`: bridge (the node's bridge) or none (loopback only) (default: bridge)"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the container's id"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep the container's stdin open and pass ccctl's on (ccctl attach)"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "give the container a terminal"},
		}, append(securityFlags(false), mountFlags(false)...)...),
		Action: runCmd,
	}
}

// runRequest builds the CreateContainerRequest of `ccctl run`.
func runRequest(c *cli.Context) (*ccv1.CreateContainerRequest, error) {
	if c.NArg() == 0 {
		return nil, errors.New("run needs an IMAGE (see `ccctl run --help`)")
	}
	args := c.Args().Slice()
	image, command := args[0], args[1:]
	if image == "" {
		return nil, errors.New("run: the IMAGE is empty")
	}
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	spec := &ccv1.ContainerSpec{
		Image: image, Command: command,
		ReadOnly: c.Bool("read-only"), User: c.String("user"), Workdir: c.String("workdir"),
		Tty: c.Bool("tty"), StdinOpen: c.Bool("interactive"),
	}
	var err error
	if spec.Env, err = parseEnv(c.StringSlice("env"), os.LookupEnv); err != nil {
		return nil, err
	}
	res := &ccv1.ContainerResources{Pids: c.Int64("pids")}
	if res.Pids < 0 {
		return nil, fmt.Errorf("--pids %d: must be positive", res.Pids)
	}
	if s := c.String("memory"); s != "" {
		if res.MemoryBytes, err = parseSize("memory", s); err != nil {
			return nil, err
		}
	}
	if s := c.String("cpus"); s != "" {
		if res.CpuMillis, err = parseCPUs("cpus", s); err != nil {
			return nil, err
		}
	}
	if res.MemoryBytes != 0 || res.CpuMillis != 0 || res.Pids != 0 {
		spec.Resources = res
	}
	if spec.Restart, err = parseRestart(c.String("restart")); err != nil {
		return nil, err
	}
	if spec.Network, err = parseNetwork(c.String("network")); err != nil {
		return nil, err
	}
	for _, p := range c.StringSlice("publish") {
		pm, err := parsePort(p)
		if err != nil {
			return nil, err
		}
		spec.Ports = append(spec.Ports, pm)
	}
	if spec.Mounts, err = parseMounts(c.StringSlice("volume"), c.StringSlice("mount")); err != nil {
		return nil, err
	}
	if err := applySecurityFlags(c, spec); err != nil {
		return nil, err
	}
	return &ccv1.CreateContainerRequest{Name: c.String("name"), Node: c.String("node"), Spec: spec}, nil
}

func runCmd(c *cli.Context) error {
	req, err := runRequest(c)
	if err != nil {
		return err
	}
	var created *ccv1.Container
	err = call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Containers.CreateContainer(ctx, req)
		if err != nil {
			return err
		}
		created = resp.GetContainer()
		if c.Bool("detach") {
			if jsonOut(c) {
				return printJSON(c, resp)
			}
			fmt.Fprintln(c.App.Writer, resp.GetContainer().GetId())
		}
		return nil
	})
	if err != nil || c.Bool("detach") {
		return err
	}
	if created.GetSpec().GetTty() || created.GetSpec().GetStdinOpen() {
		return attachMain(c, created, 0)
	}
	return attachOutput(c, created)
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name: "ps", Usage: "list containers (running and starting ones; -a for all)", OnUsageError: usageError,
		Description: "Examples:\n  ccctl ps\n  ccctl ps -a --node node-1\n  ccctl rm -f $(ccctl ps -aq)\n" +
			"  ccctl ps -w     # then a row per change until Ctrl-C; one that leaves the list (it ended, without -a, or was removed) as gone",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also exited, failed and stopped containers"},
			&cli.StringFlag{Name: "node", Usage: "only those on node `ID|NAME`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the container ids"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "print whole ids and errors"},
			watchFlag,
		},
		Action: psCmd,
	}
}

const psHeader = "CONTAINER ID\tNAME\tIMAGE\tNODE\tSTATE\tCREATED\tPORTS"

// psRow is a container's row of ps, its node named from nodes; one that
// left the list is "gone".
func psRow(c *cli.Context, ct *ccv1.Container, nodes map[string]string, gone bool) string {
	id := shortID(ct.GetId())
	if c.Bool("no-trunc") {
		id = ct.GetId()
	}
	node := ct.GetNodeId()
	if n := nodes[node]; n != "" {
		node = n
	} else if node == "" {
		node = "-"
	}
	state := containerState(ct)
	if c.Bool("no-trunc") && ct.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
		state = "failed: " + shorten(ct.GetStatus().GetError(), 1<<20)
	}
	if gone {
		state = "gone"
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", id, ct.GetName(), ct.GetSpec().GetImage(),
		node, state, ago(ct.GetCreatedAt(), time.Now()), formatPorts(ct.GetSpec().GetPorts()))
}

func psCmd(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("ps takes no arguments, got %q (filter with --node)", c.Args().Slice())
	}
	if c.Bool("watch") {
		if c.Bool("quiet") {
			return errors.New("ps: --quiet and --watch do not go together")
		}
		return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
			st, err := cl.Containers.WatchContainers(ctx, &ccv1.WatchContainersRequest{All: c.Bool("all"), Node: c.String("node")})
			if err != nil {
				return err
			}
			var nodes map[string]string
			if !jsonOut(c) {
				nodes = nodeNames(ctx, cl)
			}
			newest := func(a, b *ccv1.Container) bool { return a.GetCreatedAt().AsTime().After(b.GetCreatedAt().AsTime()) }
			return watchTable(c, psHeader, func(ct *ccv1.Container, gone bool) string { return psRow(c, ct, nodes, gone) }, newest,
				func() (watchEvent[*ccv1.Container], error) {
					m, err := st.Recv()
					return watchEvent[*ccv1.Container]{m.GetEvent(), m.GetId(), m.GetContainer(), m}, err
				})
		})
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Containers.ListContainers(ctx, &ccv1.ListContainersRequest{All: c.Bool("all"), Node: c.String("node")})
		if err != nil {
			return err
		}
		if c.Bool("quiet") {
			for _, ct := range resp.Containers {
				if c.Bool("no-trunc") {
					fmt.Fprintln(c.App.Writer, ct.GetId())
				} else {
					fmt.Fprintln(c.App.Writer, shortID(ct.GetId()))
				}
			}
			return nil
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		nodes := nodeNames(ctx, cl)
		w := table(c)
		fmt.Fprintln(w, psHeader)
		for _, ct := range resp.Containers {
			fmt.Fprintln(w, psRow(c, ct, nodes, false))
		}
		return w.Flush()
	})
}

// nodeNames maps node ids to names for ps; on error, ps shows ids.
func nodeNames(ctx context.Context, cl *Client) map[string]string {
	names := map[string]string{}
	resp, err := cl.Nodes.ListNodes(ctx, &ccv1.ListNodesRequest{})
	if err != nil {
		return names
	}
	for _, n := range resp.Nodes {
		names[n.GetId()] = n.GetName()
	}
	return names
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name: "inspect", Usage: "print a container as JSON", ArgsUsage: "ID|NAME", OnUsageError: usageError,
		Description: "ID may be a unique prefix. Example:\n  ccctl inspect web | jq .status",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("inspect needs exactly one container ID or NAME (see `ccctl ps -a`)")
			}
			return call(c, func(ctx context.Context, cl *Client) error {
				resp, err := cl.Containers.GetContainer(ctx, &ccv1.GetContainerRequest{Id: c.Args().First()})
				if err != nil {
					return err
				}
				return printInspect(c, resp.GetContainer())
			})
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name: "logs", Usage: "print a container's output: stdout to stdout, stderr to stderr",
		ArgsUsage: "ID|NAME", OnUsageError: usageError,
		Description: "With -f, ccctl follows the output while the container runs, until Ctrl-C.\n" +
			"--timeout bounds only connecting, not the streaming.\n\n" +
			"Examples:\n  ccctl logs web\n  ccctl logs -f --tail 100 web\n  ccctl logs web 2>/dev/null | grep GET",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming while the container runs"},
			&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "start with the last `N` lines, or all"},
		},
		Action: logsCmd,
	}
}

func logsCmd(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("logs needs exactly one container ID or NAME (see `ccctl ps -a`)")
	}
	tail, err := parseTail(c.String("tail"))
	if err != nil {
		return err
	}
	req := &ccv1.ContainerLogsRequest{Id: c.Args().First(), Follow: c.Bool("follow"), Tail: tail}
	return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
		stream, err := cl.Containers.ContainerLogs(ctx, req)
		if err != nil {
			return err
		}
		return recvAll(stream, func(msg *ccv1.ContainerLogsResponse) error {
			_, err := outputFor(c, msg.GetStream()).Write(msg.GetData())
			return err
		})
	})
}

func startCommand() *cli.Command {
	return &cli.Command{
		Name: "start", Usage: "start stopped or exited containers", ArgsUsage: "ID|NAME...", OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			return eachArg(c, "start", 0, func(ctx context.Context, cl *Client, id string) error {
				resp, err := cl.Containers.StartContainer(ctx, &ccv1.StartContainerRequest{Id: id})
				if err != nil {
					return err
				}
				return done(c, id, resp)
			})
		},
	}
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name: "stop", Usage: "stop containers: SIGTERM, then SIGKILL after --timeout", ArgsUsage: "ID|NAME...", OnUsageError: usageError,
		Description: "Examples:\n  ccctl stop web\n  ccctl stop -t 30 web worker",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "timeout", Aliases: []string{"t", "time"}, Value: "10s", Usage: "wait `DURATION` (or seconds) for the container to exit before SIGKILL"},
		},
		Action: func(c *cli.Context) error {
			d, err := parseStopTimeout(c.String("timeout"))
			if err != nil {
				return err
			}
			return eachArg(c, "stop", d, func(ctx context.Context, cl *Client, id string) error {
				resp, err := cl.Containers.StopContainer(ctx, &ccv1.StopContainerRequest{Id: id, Timeout: durationpb.New(d)})
				if err != nil {
					return err
				}
				return done(c, id, resp)
			})
		},
	}
}

func rmCommand() *cli.Command {
	return &cli.Command{
		Name: "rm", Usage: "remove containers", ArgsUsage: "ID|NAME...", OnUsageError: usageError,
		Description: "Examples:\n  ccctl rm web\n  ccctl rm -f $(ccctl ps -aq)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove running containers too (they are killed)"},
		},
		Action: func(c *cli.Context) error {
			return eachArg(c, "rm", 0, func(ctx context.Context, cl *Client, id string) error {
				resp, err := cl.Containers.RemoveContainer(ctx, &ccv1.RemoveContainerRequest{Id: id, Force: c.Bool("force")})
				if err != nil {
					return err
				}
				return done(c, id, resp)
			})
		},
	}
}
