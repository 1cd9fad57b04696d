package ctl

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func serviceCommand() *cli.Command {
	return &cli.Command{
		Name: "service", Aliases: []string{"svc"},
		Usage: "run services: replicas of a container, placed by the cluster, replaced when they fail, updated in rolling fashion",
		Description: "As `docker service`. Examples:\n" +
			"  ccctl service create web --image nginx:1.27 --replicas 3 -p 8080:80 --health-http /\n" +
			"  ccctl service ls\n" +
			"  ccctl service ps web\n" +
			"  ccctl service scale web=5\n" +
			"  ccctl service update web --image nginx:1.28\n" +
			"  ccctl service rollback web\n" +
			"  ccctl service logs -f web\n" +
			"  ccctl service rm web",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a service; prints its id", ArgsUsage: "NAME [COMMAND [ARG...]]", OnUsageError: usageError,
				Description: "Flags go before NAME or right after it: the first argument after NAME (or\n" +
					"everything after --) starts the command, and what follows belongs to it, flags too.\n" +
					"Without a command the image's own runs. Tasks restart always unless --restart-policy says otherwise.\n\n" +
					"Examples:\n" +
					"  ccctl service create web --image nginx:1.27 --replicas 3 -p 8080:80 --memory 256m --cpus 0.5\n" +
					"  ccctl service create api --image app:1.0 -e MODE=prod --constraint node.labels.zone==a \\\n" +
					"      --spread node.labels.rack --health-http /healthz --health-port 8080 \\\n" +
					"      --update-parallelism 2 --update-failure-action rollback\n" +
					"  ccctl service create agent --mode global --image busybox -- sh -c 'while true; do date; sleep 60; done'",
				Flags:  serviceSpecFlags(false),
				Action: serviceCreate,
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list services: replicas running/desired, image, ports, update state", OnUsageError: usageError,
				Description: "Examples:\n  ccctl service ls\n  ccctl service ls -w     # then a row per change (replicas running, updates), until Ctrl-C",
				Flags:       []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the service ids"}, watchFlag},
				Action:      serviceList,
			},
			{
				Name: "inspect", Usage: "print a service as JSON", ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "ID may be a unique prefix. Examples:\n  ccctl service inspect web\n  ccctl service inspect web | jq .spec.task",
				Action:      serviceInspect,
			},
			{
				Name: "ps", Usage: "list a service's tasks: node, desired and current state, why a task is pending or failed",
				ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "Examples:\n  ccctl service ps web\n  ccctl service ps -a web",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also the history: tasks stopped, failed or replaced"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "print whole ids and errors"},
				},
				Action: servicePs,
			},
			{
				Name: "scale", Usage: "set the number of replicas of services", ArgsUsage: "NAME=REPLICAS...", OnUsageError: usageError,
				Description: "Examples:\n  ccctl service scale web=3\n  ccctl service scale web=5 api=2\n  ccctl service scale worker=0",
				Action:      serviceScale,
			},
			{
				Name: "update", Usage: "change a service; a new image or task setting rolls out a batch of tasks at a time",
				ArgsUsage: "ID|NAME [-- COMMAND [ARG...]]", OnUsageError: usageError,
				Description: "Only what the flags name changes. List flags add (--env-add, or -e as in create) and\n" +
					"remove (--env-rm). A new command goes after --; a -- with nothing after it returns to the\n" +
					"image's own command. With no flags, a paused update starts again.\n\n" +
					"The update is refused, not lost, when someone else changed the service since ccctl read it.\n\n" +
					"Examples:\n" +
					"  ccctl service update web --image nginx:1.28\n" +
					"  ccctl service update web --env-add MODE=debug --env-rm OLD --replicas 5\n" +
					"  ccctl service update web --constraint-rm node.labels.zone==a --constraint-add node.labels.zone==b\n" +
					"  ccctl service update web --health-cmd 'wget -q -O- localhost/' --update-delay 10s\n" +
					"  ccctl service update worker -- sh -c 'exec worker --fast'",
				Flags:  serviceSpecFlags(true),
				Action: serviceUpdate,
			},
			{
				Name: "rollback", Usage: "return services to their spec before the last update", ArgsUsage: "ID|NAME...", OnUsageError: usageError,
				Description: "Example:\n  ccctl service rollback web",
				Action: func(c *cli.Context) error {
					return eachArg(c, "service rollback", 0, func(ctx context.Context, cl *Client, id string) error {
						resp, err := cl.Services.RollbackService(ctx, &ccv1.RollbackServiceRequest{Id: id})
						if err != nil {
							return err
						}
						return done(c, id, resp)
					})
				},
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove services; their tasks are stopped and removed", ArgsUsage: "ID|NAME...", OnUsageError: usageError,
				Description: "Examples:\n  ccctl service rm web\n  ccctl service rm $(ccctl service ls -q)",
				Action: func(c *cli.Context) error {
					return eachArg(c, "service rm", 0, func(ctx context.Context, cl *Client, id string) error {
						resp, err := cl.Services.RemoveService(ctx, &ccv1.RemoveServiceRequest{Id: id})
						if err != nil {
							return err
						}
						return done(c, id, resp)
					})
				},
			},
			{
				Name: "logs", Usage: "print the output of a service's tasks, each line after its task's name",
				ArgsUsage: "ID|NAME", OnUsageError: usageError,
				Description: "Stdout goes to stdout, stderr to stderr. With -f, ccctl follows the output until Ctrl-C.\n" +
					"--timeout bounds only connecting, not the streaming.\n\n" +
					"Examples:\n  ccctl service logs web\n  ccctl service logs -f --tail 20 web\n  ccctl service logs --raw web | grep GET",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming while the tasks run"},
					&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "start with the last `N` lines of each task, or all"},
					&cli.BoolFlag{Name: "raw", Aliases: []string{"no-task-ids"}, Usage: "print the lines without the task names"},
				},
				Action: serviceLogs,
			},
		},
	}
}

// serviceSpecFlags are the flags of service create, or of service update,
// where each changes only what it names and list flags come as -add (with
// create's name as an alias) and -rm.
func serviceSpecFlags(update bool) []cli.Flag {
	list := func(name string, aliases []string, what, usage string) []cli.Flag {
		if !update {
			return []cli.Flag{&cli.StringSliceFlag{Name: name, Aliases: aliases, Usage: usage + "; repeatable"}}
		}
		return []cli.Flag{
			&cli.StringSliceFlag{Name: name + "-add", Aliases: append([]string{name}, aliases...), Usage: "add or replace: " + usage + "; repeatable"},
			&cli.StringSliceFlag{Name: name + "-rm", Usage: "remove " + what + "; repeatable"},
		}
	}
	image := "image `REF` to run: loaded with `ccctl image load`, or pulled from its registry (required)"
	replicas := "run `N` tasks (replicated mode) (default: 1)"
	restart := "restart tasks that exit: `POLICY` any (always), on-failure or none (no) (default: any)"
	readOnly := "mount the root file system read-only"
	if update {
		image = "run image `REF` from now on"
		replicas = "run `N` tasks (replicated mode)"
		restart = "restart tasks that exit: `POLICY` any (always), on-failure or none (no)"
		readOnly += " (--read-only=false: writable)"
	}
	var flags []cli.Flag
	flags = append(flags,
		&cli.StringFlag{Name: "image", Usage: image},
		&cli.StringFlag{Name: "replicas", Usage: replicas},
		&cli.StringFlag{Name: "mode", Usage: "`MODE`: replicated (--replicas tasks) or global (one task on every node that matches)"},
	)
	flags = append(flags, list("env", []string{"e"}, "the variable `VAR`", "environment variable `VAR`=VALUE, or VAR alone for its value here")...)
	flags = append(flags,
		&cli.StringFlag{Name: "memory", Aliases: []string{"m", "limit-memory"}, Usage: "memory limit of a task `SIZE`: bytes or with b, k, m, g (e.g. 256m); 0: none"},
		&cli.StringFlag{Name: "cpus", Aliases: []string{"limit-cpu"}, Usage: "CPU limit of a task in `CORES` (e.g. 0.5); 0: none"},
		&cli.StringFlag{Name: "reserve-memory", Usage: "memory `SIZE` the scheduler sets aside for a task on its node (default: the limit)"},
		&cli.StringFlag{Name: "reserve-cpus", Aliases: []string{"reserve-cpu"}, Usage: "CPU `CORES` the scheduler sets aside for a task on its node (default: the limit)"},
	)
	flags = append(flags, list("publish", []string{"p"}, "the published `PORT`[/udp]", "publish a container `PORT` on the nodes of the tasks: PUBLISHED:PORT[/udp] (e.g. 8080:80)")...)
	flags = append(flags, list("constraint", nil, "the constraint `EXPR`", "run only on nodes that match `EXPR`: node.labels.KEY (an operator's label, ccctl node label), node.reported.KEY (a label the agent reports), node.name or node.id, == or != a value (e.g. node.labels.zone==a)")...)
	flags = append(flags, list("spread", nil, "the attribute `ATTR`", "spread the tasks evenly over the values of node attribute `ATTR` (e.g. node.labels.zone)")...)
	flags = append(flags,
		&cli.StringFlag{Name: "health-cmd", Usage: "health check: run `CMD` in the task with /bin/sh -c; exit 0 is healthy"},
		&cli.StringFlag{Name: "health-http", Usage: "health check: GET `PATH` (e.g. /healthz) on the task; 2xx or 3xx is healthy"},
		&cli.StringFlag{Name: "health-port", Usage: "container `PORT` of --health-http (default: the first published container port, else 80)"},
		&cli.StringFlag{Name: "health-interval", Usage: "run the check every `DURATION` (default: 5s)"},
		&cli.StringFlag{Name: "health-timeout", Usage: "a check that takes longer than `DURATION` fails (default: 3s)"},
		&cli.StringFlag{Name: "health-retries", Usage: "`N` failures in a row make the task unhealthy; it is then restarted (default: 3)"},
		&cli.StringFlag{Name: "health-start-period", Usage: "failures in the first `DURATION` after the start do not count (default: 0s)"},
	)
	if update {
		flags = append(flags, &cli.BoolFlag{Name: "no-healthcheck", Usage: "remove the health check"},
			&cli.BoolFlag{Name: "force", Usage: "replace every task (rolling) even when nothing changed, like docker service update --force"})
	}
	flags = append(flags,
		&cli.StringFlag{Name: "restart-policy", Aliases: []string{"restart", "restart-condition"}, Usage: restart},
		&cli.StringFlag{Name: "update-parallelism", Usage: "replace `N` tasks at a time in an update (default: 1)"},
		&cli.StringFlag{Name: "update-delay", Usage: "wait `DURATION` between batches of an update (default: 0s)"},
		&cli.StringFlag{Name: "update-failure-action", Usage: "when a new task fails during an update: `ACTION` rollback, pause or continue"},
		&cli.StringFlag{Name: "update-monitor", Usage: "a new task must run (and be healthy) for `DURATION` to count as up (default: 5s)"},
		&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "`MODE`: bridge (the node's bridge) or none (loopback only) (default: bridge)"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "run as `USER` (uid, uid:gid or a name known to the image)"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working `DIR` in the container"},
		&cli.BoolFlag{Name: "read-only", Usage: readOnly},
		&cli.StringFlag{Name: "stop-grace-period", Usage: "wait `DURATION` after SIGTERM before SIGKILL when a task is stopped (default: 10s)"},
	)
	flags = append(flags, mountFlags(update)...)
	return append(flags, securityFlags(update)...)
}

// serviceCreateRequest builds the request of `service create`.
func serviceCreateRequest(c *cli.Context) (*ccv1.CreateServiceRequest, error) {
	args := c.Args().Slice()
	if len(args) == 0 || args[0] == "--" || args[0] == "" {
		return nil, errors.New("service create needs a NAME (e.g. ccctl service create web --image nginx:1.27)")
	}
	name, command := args[0], args[1:]
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	if !c.IsSet("image") {
		return nil, fmt.Errorf("service create needs --image IMAGE (e.g. ccctl service create %s --image nginx:1.27)", name)
	}
	spec := &ccv1.ServiceSpec{
		Mode: ccv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 1,
		Task: &ccv1.ContainerSpec{Command: command, Restart: ccv1.RestartPolicy_RESTART_POLICY_ALWAYS},
	}
	if err := applyServiceFlags(c, spec); err != nil {
		return nil, err
	}
	return &ccv1.CreateServiceRequest{Name: name, Spec: spec}, nil
}

func serviceCreate(c *cli.Context) error {
	req, err := serviceCreateRequest(c)
	if err != nil {
		return err
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Services.CreateService(ctx, req)
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetService())
		}
		_, err = fmt.Fprintln(c.App.Writer, resp.GetService().GetId())
		return err
	})
}

// applyServiceFlags changes spec as the flags given say: create starts it
// with the defaults, update with the service's current spec.
func applyServiceFlags(c *cli.Context, spec *ccv1.ServiceSpec) error {
	if spec.Task == nil {
		spec.Task = &ccv1.ContainerSpec{}
	}
	t := spec.Task
	var err error
	if err := applyMountFlags(c, t); err != nil {
		return err
	}
	if c.IsSet("image") {
		if t.Image = strings.TrimSpace(c.String("image")); t.Image == "" {
			return errors.New("--image is empty: give an image like nginx:1.27")
		}
	}
	if c.IsSet("mode") {
		was := spec.Mode
		if spec.Mode, err = parseServiceMode(c.String("mode")); err != nil {
			return err
		}
		if was == ccv1.ServiceMode_SERVICE_MODE_GLOBAL && spec.Mode == ccv1.ServiceMode_SERVICE_MODE_REPLICATED && !c.IsSet("replicas") {
			return errors.New("--mode replicated: the service is global now; add --replicas N")
		}
	}
	if c.IsSet("replicas") {
		if spec.Mode == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
			return errors.New("--replicas: a global service runs one task on every node that matches; drop --replicas, or use --mode replicated")
		}
		if spec.Replicas, err = parseCount("replicas", c.String("replicas"), 1<<20); err != nil {
			return err
		}
	}
	if spec.Mode == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
		spec.Replicas = 0
	}
	if err := applyEnv(c, t); err != nil {
		return err
	}
	if err := applyResources(c, t); err != nil {
		return err
	}
	if err := applyPorts(c, t); err != nil {
		return err
	}
	if err := applyPlacement(c, spec); err != nil {
		return err
	}
	if err := applyHealth(c, t); err != nil {
		return err
	}
	if err := applyUpdateConfig(c, spec); err != nil {
		return err
	}
	if c.IsSet("restart-policy") {
		if t.Restart, err = parseServiceRestart(c.String("restart-policy")); err != nil {
			return err
		}
	}
	if c.IsSet("network") {
		if t.Network, err = parseNetwork(c.String("network")); err != nil {
			return err
		}
	}
	if c.IsSet("user") {
		t.User = c.String("user")
	}
	if c.IsSet("workdir") {
		t.Workdir = c.String("workdir")
	}
	if c.IsSet("read-only") {
		t.ReadOnly = c.Bool("read-only")
	}
	if c.IsSet("stop-grace-period") {
		g, err := durationFlag(c, "stop-grace-period", false)
		if err != nil {
			return err
		}
		t.StopGracePeriod = g
	}
	return applySecurityFlags(c, t)
}

// envKey is the name of a KEY=VALUE entry.
func envKey(e string) string {
	k, _, _ := strings.Cut(e, "=")
	return k
}

// applyEnv removes the --env-rm variables, then sets the --env(-add) ones,
// replacing those of the same name.
func applyEnv(c *cli.Context, t *ccv1.ContainerSpec) error {
	for _, k := range c.StringSlice("env-rm") {
		k = envKey(k)
		n := len(t.Env)
		t.Env = removeWhere(t.Env, func(e string) bool { return envKey(e) == k })
		if len(t.Env) == n {
			return fmt.Errorf("--env-rm %s: the service sets no %s", k, k)
		}
	}
	add, err := parseEnv(c.StringSlice("env"), os.LookupEnv)
	if err != nil {
		return err
	}
	for _, e := range add {
		t.Env = append(removeWhere(t.Env, func(old string) bool { return envKey(old) == envKey(e) }), e)
	}
	return nil
}

// removeWhere returns s without the elements for which drop is true.
func removeWhere[T any](s []T, drop func(T) bool) []T {
	var out []T
	for _, v := range s {
		if !drop(v) {
			out = append(out, v)
		}
	}
	return out
}

func applyResources(c *cli.Context, t *ccv1.ContainerSpec) error {
	res := &ccv1.ContainerResources{}
	if t.Resources != nil {
		res = proto.Clone(t.Resources).(*ccv1.ContainerResources)
	}
	var err error
	for _, f := range []struct {
		flag string
		to   *int64
		cpu  bool
	}{
		{"memory", &res.MemoryBytes, false},
		{"cpus", &res.CpuMillis, true},
		{"reserve-memory", &res.MemoryReservationBytes, false},
		{"reserve-cpus", &res.CpuReservationMillis, true},
	} {
		if !c.IsSet(f.flag) {
			continue
		}
		if f.cpu {
			*f.to, err = parseCPUs(f.flag, c.String(f.flag))
		} else {
			*f.to, err = parseSize(f.flag, c.String(f.flag))
		}
		if err != nil {
			return err
		}
	}
	if res.MemoryBytes > 0 && res.MemoryReservationBytes > res.MemoryBytes {
		return fmt.Errorf("--reserve-memory %s is more than the memory limit %s: a task cannot reserve more than it may use", humanSize(res.MemoryReservationBytes), humanSize(res.MemoryBytes))
	}
	if res.CpuMillis > 0 && res.CpuReservationMillis > res.CpuMillis {
		return fmt.Errorf("--reserve-cpus %s is more than the CPU limit %s: a task cannot reserve more than it may use", formatCPU(res.CpuReservationMillis), formatCPU(res.CpuMillis))
	}
	if proto.Equal(res, &ccv1.ContainerResources{}) {
		res = nil
	}
	t.Resources = res
	return nil
}

// applyPorts removes the --publish-rm ports (by published port and
// protocol), then adds the --publish(-add) ones, replacing those published
// on the same port.
func applyPorts(c *cli.Context, t *ccv1.ContainerSpec) error {
	samePublished := func(a, b *ccv1.PortMapping) bool {
		return a.GetHostPort() == b.GetHostPort() && strings.EqualFold(cmp.Or(a.GetProtocol(), "tcp"), cmp.Or(b.GetProtocol(), "tcp"))
	}
	for _, s := range c.StringSlice("publish-rm") {
		rm, err := parsePublishedPort(s)
		if err != nil {
			return err
		}
		n := len(t.Ports)
		t.Ports = removeWhere(t.Ports, func(p *ccv1.PortMapping) bool { return samePublished(p, rm) })
		if len(t.Ports) == n {
			return fmt.Errorf("--publish-rm %s: the service publishes no port %d/%s", s, rm.HostPort, rm.Protocol)
		}
	}
	for _, s := range c.StringSlice("publish") {
		pm, err := parsePort(s)
		if err != nil {
			return err
		}
		t.Ports = append(removeWhere(t.Ports, func(p *ccv1.PortMapping) bool { return samePublished(p, pm) }), pm)
	}
	return nil
}

// parsePublishedPort reads --publish-rm: PUBLISHED[/udp], or a whole
// PUBLISHED:PORT[/udp] as given to --publish.
func parsePublishedPort(s string) (*ccv1.PortMapping, error) {
	if strings.Contains(s, ":") {
		return parsePort(s)
	}
	published, protocol, _ := strings.Cut(s, "/")
	pm, err := parsePort(published + ":1/" + cmp.Or(protocol, "tcp"))
	if err != nil {
		return nil, fmt.Errorf("--publish-rm %q: use the published port, PUBLISHED[/udp] (e.g. 8080)", s)
	}
	return pm, nil
}

// applyPlacement removes, then adds constraints and spread attributes.
func applyPlacement(c *cli.Context, spec *ccv1.ServiceSpec) error {
	p := &ccv1.Placement{}
	if spec.Placement != nil {
		p = proto.Clone(spec.Placement).(*ccv1.Placement)
	}
	for _, l := range []struct {
		name  string
		list  *[]string
		parse func(flag, s string) (string, error)
	}{
		{"constraint", &p.Constraints, parseConstraint},
		{"spread", &p.Spread, parseSpread},
	} {
		for _, s := range c.StringSlice(l.name + "-rm") {
			v, err := l.parse(l.name+"-rm", s)
			if err != nil {
				return err
			}
			n := len(*l.list)
			*l.list = removeWhere(*l.list, func(old string) bool { return old == v })
			if len(*l.list) == n {
				return fmt.Errorf("--%s-rm %q: the service has no such %s (it has %q)", l.name, s, l.name, *l.list)
			}
		}
		for _, s := range c.StringSlice(l.name) {
			v, err := l.parse(l.name, s)
			if err != nil {
				return err
			}
			*l.list = append(removeWhere(*l.list, func(old string) bool { return old == v }), v)
		}
	}
	if len(p.Constraints) == 0 && len(p.Spread) == 0 {
		p = nil
	}
	spec.Placement = p
	return nil
}

// healthFlags are the flags that tune a health check.
var healthFlags = []string{"health-port", "health-interval", "health-timeout", "health-retries", "health-start-period"}

// applyHealth sets the health check: --health-cmd or --health-http choose
// the check, the other health flags tune it (the one the service has, in
// an update), --no-healthcheck removes it.
func applyHealth(c *cli.Context, t *ccv1.ContainerSpec) error {
	setCmd, setHTTP := c.IsSet("health-cmd"), c.IsSet("health-http")
	tuned := ""
	for _, f := range healthFlags {
		if c.IsSet(f) {
			tuned = f
			break
		}
	}
	if c.Bool("no-healthcheck") {
		if setCmd || setHTTP || tuned != "" {
			return errors.New("--no-healthcheck removes the health check: drop the other --health flags")
		}
		t.Health = nil
		return nil
	}
	if !setCmd && !setHTTP && tuned == "" {
		return nil
	}
	h := &ccv1.HealthCheck{}
	if t.Health != nil {
		h = proto.Clone(t.Health).(*ccv1.HealthCheck)
	}
	switch {
	case setCmd && setHTTP:
		return errors.New("--health-cmd and --health-http: a service has one health check; give one of them")
	case setCmd:
		cmd := strings.TrimSpace(c.String("health-cmd"))
		if cmd == "" {
			return errors.New("--health-cmd is empty: give a command like 'wget -q -O- localhost/healthz'")
		}
		h.Exec, h.HttpPath, h.HttpPort = []string{"/bin/sh", "-c", cmd}, "", 0
	case setHTTP:
		path := c.String("health-http")
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("--health-http %q: give a path like /healthz", path)
		}
		h.Exec, h.HttpPath = nil, path
	}
	if len(h.Exec) == 0 && h.HttpPath == "" {
		return fmt.Errorf("--%s tunes a health check: add --health-cmd CMD or --health-http PATH", tuned)
	}
	var err error
	if c.IsSet("health-port") {
		if h.HttpPath == "" {
			return errors.New("--health-port is the port of --health-http: add --health-http PATH, or drop --health-port")
		}
		var n uint64
		if n, err = parseCount("health-port", c.String("health-port"), 65535); err != nil || n == 0 {
			return fmt.Errorf("--health-port %q: use a container port (1-65535)", c.String("health-port"))
		}
		h.HttpPort = int32(n)
	}
	for _, d := range []struct {
		flag string
		to   **durationpb.Duration
		pos  bool
	}{
		{"health-interval", &h.Interval, true},
		{"health-timeout", &h.Timeout, true},
		{"health-start-period", &h.StartPeriod, false},
	} {
		if c.IsSet(d.flag) {
			if *d.to, err = durationFlag(c, d.flag, d.pos); err != nil {
				return err
			}
		}
	}
	if c.IsSet("health-retries") {
		n, err := parseCount("health-retries", c.String("health-retries"), 1000)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New(`--health-retries "0": use 1 or more failures in a row`)
		}
		h.Retries = uint32(n)
	}
	t.Health = h
	return nil
}

// applyUpdateConfig sets how rolling updates proceed.
func applyUpdateConfig(c *cli.Context, spec *ccv1.ServiceSpec) error {
	u := &ccv1.UpdateConfig{}
	if spec.Update != nil {
		u = proto.Clone(spec.Update).(*ccv1.UpdateConfig)
	}
	var err error
	if c.IsSet("update-parallelism") {
		n, err := parseCount("update-parallelism", c.String("update-parallelism"), 1<<20)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New(`--update-parallelism "0": use 1 or more tasks at a time`)
		}
		u.Parallelism = uint32(n)
	}
	if c.IsSet("update-delay") {
		if u.Delay, err = durationFlag(c, "update-delay", false); err != nil {
			return err
		}
	}
	if c.IsSet("update-monitor") {
		if u.Monitor, err = durationFlag(c, "update-monitor", true); err != nil {
			return err
		}
	}
	if c.IsSet("update-failure-action") {
		if u.FailureAction, err = parseFailureAction(c.String("update-failure-action")); err != nil {
			return err
		}
	}
	if proto.Equal(u, &ccv1.UpdateConfig{}) {
		u = nil
	}
	spec.Update = u
	return nil
}

func serviceUpdate(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || args[0] == "--" {
		return errors.New("service update needs a service ID or NAME (see `ccctl service ls`)")
	}
	name, rest := args[0], args[1:]
	if len(rest) > 0 && rest[0] != "--" {
		return fmt.Errorf("service update: unexpected %q; a new command goes after --: ccctl service update %s -- COMMAND [ARG...]", rest[0], name)
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		got, err := cl.Services.GetService(ctx, &ccv1.GetServiceRequest{Id: name})
		if err != nil {
			return err
		}
		svc := got.GetService()
		spec := &ccv1.ServiceSpec{}
		if svc.GetSpec() != nil {
			spec = proto.Clone(svc.GetSpec()).(*ccv1.ServiceSpec)
		}
		if err := applyServiceFlags(c, spec); err != nil {
			return err
		}
		if len(rest) > 0 {
			spec.Task.Command = rest[1:]
		}
		resp, err := cl.Services.UpdateService(ctx, &ccv1.UpdateServiceRequest{Id: svc.GetId(), Spec: spec, Revision: svc.GetRevision(), Force: c.Bool("force")})
		if status.Code(err) == codes.Aborted {
			return fmt.Errorf("service update %s: someone changed the service since ccctl read it; run the command again (%s)", name, status.Convert(err).Message())
		}
		if err != nil {
			return err
		}
		return done(c, name, resp.GetService())
	})
}

const serviceHeader = "ID\tNAME\tMODE\tREPLICAS\tIMAGE\tPORTS\tUPDATE"

// serviceRow is a service's row of service ls; a removed service's update
// state is "removed".
func serviceRow(s *ccv1.Service, removed bool) string {
	update := updateState(s.GetUpdate().GetState())
	if removed {
		update = "removed"
	}
	return fmt.Sprintf("%s\t%s\t%s\t%d/%d\t%s\t%s\t%s", shortID(s.GetId()), s.GetName(),
		serviceMode(s.GetSpec().GetMode()), s.GetCounts().GetRunning(), s.GetCounts().GetDesired(),
		s.GetSpec().GetTask().GetImage(), cmp.Or(formatPorts(s.GetSpec().GetTask().GetPorts()), "-"), update)
}

func serviceList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("service ls takes no arguments, got %q", c.Args().Slice())
	}
	if c.Bool("watch") {
		if c.Bool("quiet") {
			return errors.New("service ls: --quiet and --watch do not go together")
		}
		return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
			st, err := cl.Services.WatchServices(ctx, &ccv1.WatchServicesRequest{})
			if err != nil {
				return err
			}
			return watchTable(c, serviceHeader, serviceRow, func(a, b *ccv1.Service) bool { return a.GetName() < b.GetName() },
				func() (watchEvent[*ccv1.Service], error) {
					m, err := st.Recv()
					return watchEvent[*ccv1.Service]{m.GetEvent(), m.GetId(), m.GetService(), m}, err
				})
		})
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Services.ListServices(ctx, &ccv1.ListServicesRequest{})
		if err != nil {
			return err
		}
		if c.Bool("quiet") {
			for _, s := range resp.Services {
				fmt.Fprintln(c.App.Writer, shortID(s.GetId()))
			}
			return nil
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		w := table(c)
		fmt.Fprintln(w, serviceHeader)
		for _, s := range resp.Services {
			fmt.Fprintln(w, serviceRow(s, false))
		}
		return w.Flush()
	})
}

func serviceMode(m ccv1.ServiceMode) string {
	if m == ccv1.ServiceMode_SERVICE_MODE_UNSPECIFIED {
		return "replicated"
	}
	return enumWord(m.String(), "SERVICE_MODE_")
}

// updateState prints an update state as "rolling-back"; "-" when none.
func updateState(s ccv1.UpdateState) string {
	if s == ccv1.UpdateState_UPDATE_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.ReplaceAll(enumWord(s.String(), "UPDATE_STATE_"), "_", "-")
}

func serviceInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("service inspect needs exactly one service ID or NAME (see `ccctl service ls`)")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Services.GetService(ctx, &ccv1.GetServiceRequest{Id: c.Args().First()})
		if err != nil {
			return err
		}
		return printJSON(c, resp.GetService())
	})
}

func servicePs(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("service ps needs exactly one service ID or NAME (see `ccctl service ls`)")
	}
	return call(c, func(ctx context.Context, cl *Client) error {
		resp, err := cl.Services.ListServiceTasks(ctx, &ccv1.ListServiceTasksRequest{Id: c.Args().First(), All: c.Bool("all")})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp)
		}
		id, errLen := shortID, 60
		if c.Bool("no-trunc") {
			id, errLen = func(s string) string { return s }, 1<<20
		}
		nodes := nodeNames(ctx, cl)
		now := time.Now()
		w := table(c)
		fmt.Fprintf(w, "ID\tNAME\tIMAGE\tNODE\tDESIRED STATE\tCURRENT STATE\tERROR\n")
		prev := ""
		for _, t := range resp.Tasks {
			node := t.GetNodeId()
			if n := nodes[node]; n != "" {
				node = n
			}
			// The server lists a slot's current task, then its history: docker
			// marks the history with \_.
			name := taskSlot(t)
			if name == prev {
				name = ` \_ ` + name
			} else {
				prev = name
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id(t.GetId()), name, t.GetSpec().GetImage(), cmp.Or(node, "-"),
				desiredState(t.GetDesired()), taskState(t, now), cmp.Or(shorten(taskReason(t), errLen), "-"))
		}
		return w.Flush()
	})
}

// taskSlot is a task's name without its id: "web.1" of "web.1.0a1b2c3d",
// "agent.node-1" of a global service's task.
func taskSlot(t *ccv1.Container) string {
	name := t.GetName()
	if i := strings.LastIndexByte(name, '.'); i > 0 && strings.HasPrefix(t.GetId(), name[i+1:]) {
		return name[:i]
	}
	return name
}

func desiredState(d ccv1.DesiredState) string {
	if d == ccv1.DesiredState_DESIRED_STATE_UNSPECIFIED {
		return "-"
	}
	return enumWord(d.String(), "DESIRED_STATE_")
}

// taskState is a task's current state and since when, as docker's service
// ps prints it: "running (healthy) 2 minutes ago", "exited (1) 5 seconds
// ago".
func taskState(t *ccv1.Container, now time.Time) string {
	st := t.GetStatus()
	state, since := containerState(t), t.GetUpdatedAt()
	switch st.GetState() {
	case ccv1.ContainerState_CONTAINER_STATE_RUNNING:
		since = st.GetStartedAt()
	case ccv1.ContainerState_CONTAINER_STATE_EXITED, ccv1.ContainerState_CONTAINER_STATE_FAILED:
		since = st.GetFinishedAt()
		if st.GetState() == ccv1.ContainerState_CONTAINER_STATE_FAILED {
			state = "failed" // the error has its own column
		}
	case ccv1.ContainerState_CONTAINER_STATE_ASSIGNED:
		since = t.GetAssignedAt()
	case ccv1.ContainerState_CONTAINER_STATE_PENDING:
		since = t.GetCreatedAt()
	}
	if since = cmp.Or(since, t.GetUpdatedAt(), t.GetCreatedAt()); since == nil {
		return state
	}
	return state + " " + strings.ToLower(ago(since, now))
}

// taskReason says what went wrong with a task or why it is where it is: its
// error, why it is pending, why the cluster stopped it, its failing health
// check.
func taskReason(t *ccv1.Container) string {
	st := t.GetStatus()
	var parts []string
	if e := st.GetError(); e != "" {
		parts = append(parts, e)
	}
	if r := t.GetPendingReason(); r != "" && t.GetNodeId() == "" {
		parts = append(parts, r)
	}
	if m := t.GetMessage(); m != "" && m != st.GetError() {
		parts = append(parts, m)
	}
	if st.GetHealth() == ccv1.HealthState_HEALTH_STATE_UNHEALTHY && len(parts) == 0 {
		parts = append(parts, "health check: "+cmp.Or(st.GetHealthOutput(), "failed"))
	}
	return strings.Join(parts, "; ")
}

func serviceScale(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("service scale needs NAME=REPLICAS (e.g. ccctl service scale web=3)")
	}
	// All are checked before any is scaled.
	for _, a := range c.Args().Slice() {
		if _, _, err := parseScale(a); err != nil {
			return err
		}
	}
	return eachArg(c, "service scale", 0, func(ctx context.Context, cl *Client, arg string) error {
		name, replicas, _ := parseScale(arg)
		resp, err := cl.Services.ScaleService(ctx, &ccv1.ScaleServiceRequest{Id: name, Replicas: replicas})
		if err != nil {
			return err
		}
		if jsonOut(c) {
			return printJSON(c, resp.GetService())
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s scaled to %d\n", name, replicas)
		return err
	})
}

func serviceLogs(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("service logs needs exactly one service ID or NAME (see `ccctl service ls`)")
	}
	tail, err := parseTail(c.String("tail"))
	if err != nil {
		return err
	}
	req := &ccv1.ServiceLogsRequest{Id: c.Args().First(), Follow: c.Bool("follow"), Tail: tail}
	return callStream(c, true, nil, func(ctx context.Context, cl *Client) error {
		stream, err := cl.Services.ServiceLogs(ctx, req)
		if err != nil {
			return err
		}
		lw := &taskLines{out: func(stream string) io.Writer { return outputFor(c, stream) }, raw: c.Bool("raw"), partial: map[[2]string][]byte{}}
		defer lw.flush()
		return recvAll(stream, func(msg *ccv1.ServiceLogsResponse) error {
			return lw.write(msg.GetTask(), msg.GetStream(), msg.GetData())
		})
	})
}

// taskLines writes the output of many tasks line by line, each line after
// its task's name ("web.1 | GET /"), so that the lines of tasks do not mix.
// A line's start waits for its end.
type taskLines struct {
	out func(stream string) io.Writer
	raw bool
	// partial holds the unfinished last line of each (task, stream).
	partial map[[2]string][]byte
}

func (l *taskLines) write(task, stream string, data []byte) error {
	key := [2]string{task, stream}
	buf := append(l.partial[key], data...)
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 {
		l.partial[key] = buf
		return nil
	}
	l.partial[key] = append([]byte(nil), buf[i+1:]...)
	return l.emit(task, stream, buf[:i+1])
}

// emit writes whole lines.
func (l *taskLines) emit(task, stream string, lines []byte) error {
	w := l.out(stream)
	if l.raw {
		_, err := w.Write(lines)
		return err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(lines), "\n") {
		if line != "" {
			b.WriteString(task + " | " + line)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// flush writes the unfinished lines, ended, when the stream ends.
func (l *taskLines) flush() {
	for key, rest := range l.partial {
		if len(rest) > 0 {
			l.emit(key[0], key[1], append(rest, '\n'))
		}
	}
}

// durationFlag reads flag as a duration; positive refuses 0.
func durationFlag(c *cli.Context, flag string, positive bool) (*durationpb.Duration, error) {
	d, err := parseDuration(flag, c.String(flag), positive)
	if err != nil {
		return nil, err
	}
	return durationpb.New(d), nil
}
