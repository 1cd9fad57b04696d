// Package cli is the command line of cc-agent: join (once) and run the node,
// with flags or a TOML file of the same names (reloaded on SIGHUP or
// `config reload`), its readiness on --status-addr, `install` and its
// siblings to run it as a systemd service, and the hidden `logger` command
// that containerd's shim runs to write a container's output to rotated
// files.
package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/containercodes/cc/agent/identity"
	"github.com/containercodes/cc/agent/metrics"
	"github.com/containercodes/cc/agent/runtime"
	"github.com/containercodes/cc/agent/sandboxinit"
	"github.com/containercodes/cc/agent/worker"
	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/control"
	"github.com/containercodes/cc/internal/logging"
	imetrics "github.com/containercodes/cc/internal/metrics"
	"github.com/containercodes/cc/internal/tracing"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// DefaultMetricsAddr is where cc-agent serves its metrics unless
// --metrics-addr says otherwise: loopback only, since it is plain HTTP
// without authentication.
const DefaultMetricsAddr = "127.0.0.1:7445"

// Main runs the command and returns the exit code. Errors print as one line.
func Main(args []string, stdout, stderr io.Writer) int {
	// containerd's shim starts the logger with its own arguments; it must
	// not go through flag parsing.
	if len(args) > 1 && args[1] == "logger" {
		if err := runtime.RunLogger(args[2:]); err != nil {
			fmt.Fprintf(stderr, "cc-agent logger: %v\n", err)
			return 1
		}
		return 0
	}
	// A job sandbox's first process (see package sandboxinit).
	if len(args) > 1 && args[1] == "init" {
		return sandboxinit.Run(args[2:])
	}
	if err := app(stdout, stderr).Run(args); err != nil {
		fmt.Fprintf(stderr, "cc-agent: %v\n", err)
		return 1
	}
	return 0
}

func usageError(c *ucli.Context, err error, _ bool) error {
	return fmt.Errorf("%v (see `%s --help`)", err, c.Command.HelpName)
}

func app(stdout, stderr io.Writer) *ucli.App {
	return &ucli.App{
		Name:    "cc-agent",
		Usage:   "run a Container Codes node",
		Version: buildinfo.Version,
		Writer:  stdout, ErrWriter: stderr,
		Description: "The first start joins the cluster with a join token and keeps the node's identity in\n" +
			"--data-dir; later starts rejoin as the same node without a token.\n" +
			"  cc-agent --join 10.0.0.5:7443 --token CCTKN-1-... --data-dir /var/lib/cc-agent\n" +
			"  cc-agent --data-dir /var/lib/cc-agent\n\n" +
			"--config FILE (TOML) sets any flag below by its name with _ for - (edge_http_addr = \":80\",\n" +
			"label = [\"zone=a\"]); the command line and the environment win over it. SIGHUP or\n" +
			"`cc-agent config reload` re-reads it: " + strings.Join(append(reloadKeys[:len(reloadKeys):len(reloadKeys)], egressKey), ", ") + " apply at once.\n" +
			"/healthz and /readyz (containerd, session, edge) answer on --status-addr.\n" +
			"As a service: cc-agent install --join ADDR --token T --now (see `cc-agent install --help`).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "config", Usage: "TOML config `FILE` whose keys are these flags' names with _ (see above)", EnvVars: []string{"CC_AGENT_CONFIG"}},
			&ucli.StringFlag{Name: "join", Usage: "control plane API `ADDR` (host:port) to join", EnvVars: []string{"CC_JOIN"}},
			&ucli.StringFlag{Name: "token", Usage: "join `TOKEN` (from `ccctl token create`)", EnvVars: []string{"CC_JOIN_TOKEN"}},
			&ucli.StringFlag{Name: "data-dir", Value: "/var/lib/cc-agent", Usage: "`DIR` for the node identity, logs and state"},
			&ucli.StringFlag{Name: "name", Usage: "node `NAME` (default: host name)"},
			&ucli.StringSliceFlag{Name: "label", Usage: "report the node label `KEY=VALUE` (repeatable); constraints see it as node.reported.KEY, not node.labels.KEY (operator labels, ccctl node label)"},
			&ucli.Float64Flag{Name: "cpus", Usage: "offer `CORES` to the scheduler instead of the host's count (e.g. 3.5)"},
			&ucli.StringFlag{Name: "memory", Usage: "offer `SIZE` of memory to the scheduler instead of the host's total (e.g. 16g)"},
			&ucli.StringFlag{Name: "containerd-socket", Value: "/run/containerd/containerd.sock", Usage: "containerd `SOCKET`"},
			&ucli.StringFlag{Name: "advertise-addr", Usage: "`IP` where published ports are reached (default: first non-loopback IPv4)"},
			&ucli.StringFlag{Name: "subnet", Value: "10.213.0.0/24", Usage: "container bridge `CIDR` on this host"},
			&ucli.StringFlag{Name: "bridge", Value: "cc0", Usage: "container bridge `NAME` on this host"},
			&ucli.StringFlag{Name: "job-subnet", Value: "10.89.0.0/24", Usage: "job bridge `CIDR` on this host (jobs with --network; must not overlap --subnet)"},
			&ucli.StringFlag{Name: "job-bridge", Value: "ccjob0", Usage: "job bridge `NAME` on this host; its egress is filtered in the iptables chains CC-JOB-{FWD,HOST,RET}-NAME"},
			&ucli.StringSliceFlag{Name: "job-egress-allow", Usage: "let jobs reach `CIDR` although it is private, link-local or this node's own (comma-separated or repeatable)"},
			&ucli.UintFlag{Name: "userns-base", Value: runtime.DefaultUsernsBase, Usage: "first host `ID` of the job sandboxes' user namespaces: each sandbox maps uids and gids 0-65535 to a private range of 65536 ids from here (0: no user namespaces, uid 0 in a job is root on the host)"},
			&ucli.StringSliceFlag{Name: "bind-mount-allow", Usage: "let containers bind mount host paths under `PREFIX` (repeatable; default none); only admin tokens may ask for bind mounts"},
			&ucli.StringFlag{Name: "registry-auth", Usage: "registry credentials `FILE` (docker config.json format) for pulls"},
			&ucli.StringSliceFlag{Name: "insecure-registry", Usage: "registry `HOST:PORT` reached over plain HTTP (repeatable)"},
			&ucli.StringFlag{Name: "namespace", Value: "cc", Usage: "containerd `NAMESPACE`", Hidden: true},
			&ucli.StringFlag{Name: "edge-http-addr", Value: ":80", Usage: "`ADDR` (host:port) where the edge serves HTTP routes and sites"},
			&ucli.StringFlag{Name: "edge-https-addr", Value: ":443", Usage: "`ADDR` (host:port) where the edge serves HTTPS (and HTTP/3 on its UDP port when the cluster turns it on); off: no HTTPS"},
			&ucli.IntFlag{Name: "edge-https-public-port", Usage: "`PORT` clients reach HTTPS on, for redirects and Alt-Svc, when a port forward makes it differ from --edge-https-addr's"},
			&ucli.BoolFlag{Name: "edge", Value: true, Usage: "serve the edge on this node (--edge=false: none; its routed tasks are still relayed)"},
			&ucli.StringFlag{Name: "edge-access-log", Value: "-", Usage: "where the edge writes a JSON line per request: `FILE` (appended), - (standard error) or off"},
			&ucli.StringFlag{Name: "tracing-endpoint", Usage: "send OpenTelemetry traces to the OTLP/gRPC receiver at `HOST:PORT` (a Collector, Jaeger, Tempo; default: tracing off)", EnvVars: []string{"CC_TRACING_ENDPOINT"}},
			&ucli.Float64Flag{Name: "tracing-sample-ratio", Value: 0.1, Usage: "share of new traces kept, `RATIO` from 0 to 1; a start requested by a traced call follows the call's decision", EnvVars: []string{"CC_TRACING_SAMPLE_RATIO"}},
			&ucli.BoolFlag{Name: "tracing-insecure", Usage: "send traces in plaintext (a collector on this host) instead of TLS", EnvVars: []string{"CC_TRACING_INSECURE"}},
			&ucli.StringFlag{Name: "metrics-addr", Value: DefaultMetricsAddr, Usage: "`ADDR` (host:port) where the agent serves its Prometheus metrics (GET /metrics) over plain HTTP, without authentication; empty: none"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "`LEVEL`: debug, info, warn or error"},
			&ucli.StringFlag{Name: "log-format", Value: "text", Usage: "`FORMAT`: text or json"},
			&ucli.StringFlag{Name: "status-addr", Value: DefaultStatusAddr, Usage: "`ADDR` (host:port) where /healthz and /readyz answer over plain HTTP; off: nowhere (the control socket still answers)"},
		},
		OnUsageError: usageError,
		Action:       run,
		Commands: append([]*ucli.Command{{
			Name:  "config",
			Usage: "work with the config file",
			Subcommands: []*ucli.Command{{
				Name: "validate", Usage: "check a config file and say what is wrong, line by line", ArgsUsage: "FILE",
				OnUsageError: usageError,
				Action:       validateCommand,
			}, {
				Name:  "reload",
				Usage: "make the running agent re-read its config file, and say what changed",
				Description: "Asks the agent through its control socket (control.sock in its data dir; run as root), as\n" +
					"SIGHUP does, and prints what it did. Applied at once: " + strings.Join(append(reloadKeys[:len(reloadKeys):len(reloadKeys)], egressKey), ", ") + "\n" +
					"(the edge moves to new listeners; requests in flight finish on the old ones). Other\n" +
					"changed keys are named: they take effect at the next start. A file with a problem is\n" +
					"refused whole, with the problems by line; the exit status is then 1.",
				Flags:        []ucli.Flag{dataDirFlag()},
				OnUsageError: usageError,
				Action:       reloadCommand,
			}},
		}}, serviceCommands()...),
	}
}

func run(c *ucli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see `cc-agent --help`)", c.Args().First())
	}
	cmdline, file, err := applyConfigFile(c, c.String("config"))
	if err != nil {
		return err
	}
	log, level, err := logging.NewLeveled(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	labels := map[string]string{}
	for _, l := range c.StringSlice("label") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: use KEY=VALUE", l)
		}
		labels[k] = v
	}
	name := c.String("name")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return fmt.Errorf("no --name and no host name: %w", err)
		}
	}
	addr := c.String("advertise-addr")
	if addr == "" {
		addr = firstIPv4()
	} else if net.ParseIP(addr) == nil {
		return fmt.Errorf("--advertise-addr %q: want an IP address", addr)
	}
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return err
	}
	metricsAddr := c.String("metrics-addr")
	if metricsAddr != "" {
		if _, _, err := net.SplitHostPort(metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: want host:port, or empty for none (%v)", metricsAddr, err)
		}
	}
	edgeOpts := EdgeOptions{
		Enabled: c.Bool("edge"), HTTPAddr: c.String("edge-http-addr"), AccessLog: c.String("edge-access-log"),
		HTTPSAddr: c.String("edge-https-addr"), HTTPSPublicPort: c.Int("edge-https-public-port"),
	}
	if err := edgeOpts.Validate(); err != nil {
		return err
	}
	traceSettings := tracing.Settings{Endpoint: c.String("tracing-endpoint"), SampleRatio: c.Float64("tracing-sample-ratio"), Insecure: c.Bool("tracing-insecure")}
	if err := traceSettings.Validate(); err != nil {
		return errors.New(strings.NewReplacer("tracing.endpoint", "--tracing-endpoint", "tracing.sample_ratio", "--tracing-sample-ratio", "\n", "; ").Replace(err.Error()))
	}
	res := &ccv1.Resources{CpuMillis: int64(goruntime.NumCPU()) * 1000, MemoryBytes: memTotal()}
	if c.IsSet("cpus") {
		cpus := c.Float64("cpus")
		if cpus <= 0 || cpus > 100_000 {
			return fmt.Errorf("--cpus %v: give a number of cores above 0, like 2 or 3.5", cpus)
		}
		res.CpuMillis = int64(cpus * 1000)
	}
	if c.IsSet("memory") {
		if res.MemoryBytes, err = parseSize(c.String("memory")); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	idDir := filepath.Join(dataDir, "identity")
	id, err := identity.Load(idDir)
	switch {
	case errors.Is(err, identity.ErrNotJoined):
		if c.String("join") == "" || c.String("token") == "" {
			return err
		}
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		id, err = identity.Join(jctx, idDir, identity.JoinOptions{
			Addr: c.String("join"), Token: c.String("token"), Name: name, Labels: labels,
			Resources: res, Address: addr, Version: buildinfo.Version,
		})
		cancel()
		if err != nil {
			return err
		}
		log.Info("joined the cluster", "node_id", id.NodeID, "name", name)
	case err != nil:
		return err
	default:
		if c.IsSet("token") {
			log.Info("already joined; ignoring --token", "node_id", id.NodeID)
		}
		if c.IsSet("join") && c.String("join") != id.Servers[0] {
			id.Servers = append([]string{c.String("join")}, id.Servers...)
		}
	}

	tp, err := StartTracing(traceSettings, id.NodeID, name)
	if err != nil {
		return err
	}
	tracing.LogErrors(log.With("component", "tracing"))
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: the last spans were not sent", "err", err)
		}
	}()
	if traceSettings.On() {
		log.Info("tracing on", "endpoint", traceSettings.Endpoint, "sample_ratio", traceSettings.SampleRatio, "insecure", traceSettings.Insecure)
	}

	var auth func(string) (string, string, error)
	if p := c.String("registry-auth"); p != "" {
		if auth, err = registryAuth(p); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	initPath := exe
	if static, err := sandboxinit.Static(exe); err != nil || !static {
		initPath = ""
		log.Warn("this cc-agent is not statically linked, so job sandboxes run without an init: a job's command is PID 1 and may ignore SIGTERM until the kill grace ends; build it with CGO_ENABLED=0", "binary", exe, "err", err)
	}
	m := metrics.New(imetrics.NewRegistry(), buildinfo.Version, id.NodeID)
	if metricsAddr != "" {
		ml, err := imetrics.Listen(metricsAddr, imetrics.Handler(m.Registry(), log), log.With("component", "metrics"))
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ml.Close(sctx)
		}()
		log.Info("serving metrics", "addr", "http://"+ml.Addr().String()+"/metrics")
	}
	edgeOpts.Metrics = m
	if c.Uint("userns-base") > math.MaxUint32 {
		return fmt.Errorf("--userns-base %d: host ids are below 2^32", c.Uint("userns-base"))
	}
	rt, err := runtime.New(ctx, runtime.Config{
		Socket:         c.String("containerd-socket"),
		Namespace:      c.String("namespace"),
		Owner:          id.NodeID,
		StateDir:       filepath.Join(dataDir, "runtime"),
		CNIBinDir:      "/usr/lib/cni",
		BridgeName:     c.String("bridge"),
		Subnet:         c.String("subnet"),
		JobBridgeName:  c.String("job-bridge"),
		JobSubnet:      c.String("job-subnet"),
		JobEgressAllow: c.StringSlice("job-egress-allow"),
		LoggerPath:     exe,
		InitPath:       initPath,
		UsernsBase:     uint32(c.Uint("userns-base")),
		UsernsDisabled: c.Uint("userns-base") == 0,
		Auth:           auth,
		PlainHTTP:      c.StringSlice("insecure-registry"),
		BindMountAllow: c.StringSlice("bind-mount-allow"),
		Logger:         log.With("component", "runtime"),
		Tracing:        tp,
		Metrics:        m,
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	edgeOpts.Tracing = tp
	var edge *Edge
	var workerEdge worker.Edge // stays a nil interface without an edge
	if edgeOpts.Enabled {
		if edge, err = NewEdge(edgeOpts, id.NodeID, log.With("component", "edge")); err != nil {
			return err
		}
		defer edge.Close()
		workerEdge = edge
	}
	w, err := worker.New(worker.Config{
		Identity: id,
		Runtime:  rt,
		Hello:    &ccv1.SessionHello{Version: buildinfo.Version, Resources: res, Labels: labels, Address: addr, Edge: edgeOpts.Enabled},
		Logger:   log,
		DataDir:  dataDir,
		Edge:     workerEdge,
		Tracing:  tp,
		Metrics:  m,
	})
	if err != nil {
		return err
	}
	agent := &Agent{Runtime: rt, Worker: w, Identity: id, Edge: edge}
	stopStatus, statusAddr, err := serveStatus(c.String("status-addr"), agent.HealthHandler())
	if err != nil {
		return err
	}
	defer stopStatus()

	// Reloads: SIGHUP, and `cc-agent config reload` on the control socket.
	rl := newAgentReloader(c, cmdline, file, level, edge, rt, log)
	rl.tracer = tp
	mux := http.NewServeMux()
	mux.Handle("POST "+control.PathReload, control.ReloadHandler(rl.reload))
	mux.Handle("/", agent.HealthHandler())
	if sock, err := control.Listen(dataDir, mux, log.With("component", "control")); err != nil {
		log.Warn("no control socket: `cc-agent config reload` and `status` cannot reach this agent (SIGHUP still reloads)", "err", err)
	} else {
		defer sock.Close()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var wg sync.WaitGroup
	defer wg.Wait()
	hupCtx, stopHup := context.WithCancel(ctx)
	defer stopHup()
	wg.Go(func() {
		for {
			select {
			case <-hupCtx.Done():
				return
			case <-hup:
				rl.reload()
			}
		}
	})

	log.Info("agent running", "node_id", id.NodeID, "control_plane", id.Servers[0], "status_addr", statusAddr)
	err = w.Run(ctx)
	log.Info("agent stopped; its containers keep running")
	return err
}

func validateCommand(c *ucli.Context) error {
	if c.NArg() != 1 {
		return errors.New("config validate needs exactly one FILE")
	}
	path := c.Args().First()
	file, err := readConfigFile(path, app(io.Discard, io.Discard).Flags)
	if err == nil {
		err = checkFileValues(path, file)
	}
	if err != nil {
		if fe, ok := err.(*configFileError); ok {
			for _, p := range fe.problems {
				fmt.Fprintf(c.App.ErrWriter, "%s: %s\n", path, p)
			}
			return fmt.Errorf("%s: %d problem(s)", path, len(fe.problems))
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
	return nil
}

func reloadCommand(c *ucli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("config reload takes no arguments, got %q (see `cc-agent config reload --help`)", c.Args().Slice())
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	res, err := control.Reload(ctx, c.String("data-dir"))
	if err != nil {
		return err
	}
	res.Print(c.App.Writer)
	if !res.OK() {
		return errors.New("the config file was refused")
	}
	return nil
}

func firstIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// parseSize reads a size such as 512m, 16g or 1073741824 (bytes).
func parseSize(v string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<60 {
		return 0, fmt.Errorf("%q is not a size; use bytes or a number with k, m, g or t (e.g. 16g)", v)
	}
	return int64(f * float64(mult)), nil
}
