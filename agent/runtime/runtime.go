// Package runtime runs the node's containers on containerd: images, OCI spec
// with limits and hardening, CNI networking, log files, status.
//
// Everything it needs to know about a container lives in containerd (labels
// on the container record, the task's status) or in files under StateDir,
// never only in memory: a new Runtime, after an agent restart, sees and
// drives the containers an earlier one started (they keep running, and keep
// logging, because the logger is a child of containerd's shim).
//
// Every container it creates carries the labels cc.container-id, cc.name
// and cc.generation (see the Label* constants) in the containerd namespace
// Config.Namespace ("cc"); a job sandbox also carries cc.job (LabelJob).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	gocni "github.com/containerd/go-cni"
	"go.opentelemetry.io/otel/trace"

	"github.com/containercodes/cc/internal/tracing"

	"github.com/containercodes/cc/agent/metrics"
)

// Labels on every container the runtime creates.
const (
	LabelContainerID = "cc.container-id"
	LabelOwner       = "cc.owner"
	LabelName        = "cc.name"
	LabelGeneration  = "cc.generation"
	// LabelNetwork is "bridge", "job" (a job sandbox on the job bridge) or
	// "none".
	LabelNetwork = "cc.network"
	// LabelNetNS is the path of the container's network namespace.
	LabelNetNS = "cc.netns"
	// LabelIP is the container's address on the bridge.
	LabelIP = "cc.ip"
	// LabelPorts holds the published ports, "host:container/proto,..." (for CNI teardown).
	LabelPorts = "cc.ports"
	// LabelStartedAt is when the task was started (RFC 3339), on the
	// containers of agents before the started-at file (starttime.go).
	LabelStartedAt = "cc.started-at"
)

// Defaults of Config.
const (
	DefaultSocket     = "/run/containerd/containerd.sock"
	DefaultNamespace  = "cc"
	DefaultStateDir   = "/var/lib/cc/agent"
	DefaultCNIBinDir  = "/usr/lib/cni"
	DefaultBridgeName = "cc0"
	DefaultSubnet     = "10.213.0.0/24"
	// DefaultNetNSDir is where network namespaces are mounted, as
	// `ip netns` does.
	DefaultNetNSDir = "/var/run/netns"
)

// Config configures a Runtime. Zero fields take the defaults above.
type Config struct {
	// Socket is containerd's socket.
	Socket string
	// Namespace is the containerd namespace of the node's containers.
	Namespace string
	// Owner, when set, is recorded on every container the runtime creates
	// (label cc.owner, the node id), and List reports only containers with
	// the same owner: two agents on one host never touch each other's.
	Owner string
	// StateDir holds logs/<container-id>/, cni/ (network config and IPAM
	// leases), oom/ (OOM marks), containers/<id>/ (hosts, resolv.conf),
	// fifo/ (the FIFOs of processes run by Exec, while they run) and
	// jobs/<id>/ (a job sandbox's /output mount, input and archives).
	StateDir string
	// CNIBinDir holds the CNI plugins (bridge, portmap, firewall, loopback,
	// host-local).
	CNIBinDir string
	// BridgeName is the Linux bridge containers attach to.
	BridgeName string
	// Subnet is the bridge network's IPv4 subnet (host-local IPAM).
	Subnet string
	// JobBridgeName is the Linux bridge job sandboxes with network attach
	// to (see jobnet.go); it must differ from BridgeName.
	JobBridgeName string
	// JobSubnet is the job bridge's IPv4 subnet; it must not overlap
	// Subnet.
	JobSubnet string
	// JobEgressAllow lists the IPv4 CIDRs (or addresses) jobs may reach
	// although they are private, link-local or the node's own.
	JobEgressAllow []string
	// NetNSDir is where the runtime mounts the containers' network
	// namespaces, as <NetNSDir>/<namespace>-<container-id>.
	NetNSDir string
	// LoggerPath is the absolute path of the binary that serves containerd's
	// binary log protocol: cc-agent itself, run as `cc-agent logger ARGS`,
	// which calls RunLogger(ARGS).
	LoggerPath string
	// InitPath is a statically linked binary that serves as a job
	// sandbox's first process (`InitPath init -- CMD...`, see package
	// sandboxinit), bind-mounted read-only into the sandbox; empty runs the
	// job's command as PID 1, which ignores signals it does not handle.
	InitPath string
	// UsernsBase is the first host id of the job sandboxes' user
	// namespace ranges (DefaultUsernsBase); each sandbox gets UsernsSize
	// ids of its own from there (see userns.go). It must be at least
	// UsernsSize.
	UsernsBase uint32
	// UsernsDisabled runs job sandboxes without a user namespace: uid 0 in
	// a job is then uid 0 on the host.
	UsernsDisabled bool
	// LogMaxBytes rotates a container's log file at this size (10 MiB).
	LogMaxBytes int64
	// LogMaxFiles is how many rotated files are kept beside the current one
	// (3). Negative keeps none.
	LogMaxFiles int
	// Auth returns the credentials for a registry host when pulling; nil
	// pulls anonymously.
	Auth func(host string) (user, secret string, err error)
	// BindMountAllow lists the host path prefixes containers may bind
	// mount (cc-agent --bind-mount-allow); empty allows none.
	BindMountAllow []string
	// PlainHTTP lists registry hosts ("host:port") reached over plain HTTP,
	// e.g. a test registry on 127.0.0.1.
	PlainHTTP []string
	// Logger gets the runtime's own messages.
	Logger *slog.Logger
	// Tracing starts spans of the steps of a start (image, network,
	// containerd's create and start) under the caller's span; nil: none.
	Tracing trace.TracerProvider
	// Metrics counts image fetches and times sandbox set-ups; nil: none.
	Metrics *metrics.Metrics
}

// Runtime drives the node's containers on containerd.
type Runtime struct {
	cfg    Config
	client *containerd.Client
	log    *slog.Logger
	tracer trace.Tracer

	cniBridge gocni.CNI
	cniJob    gocni.CNI
	cniLo     gocni.CNI
	fwMu      sync.Mutex // guards jobFW against SetJobEgressAllow
	jobFW     jobFirewall
	volMu     sync.Mutex // serializes making, mounting and removing volumes (volumes.go)
	// images are the images starts read, by name (imagecache.go).
	images imageCache
	// starts are the start times of the containers this process started
	// (starttime.go), by id.
	starts sync.Map
}

// New connects to containerd and prepares the state directory and the CNI
// configuration.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.CNIBinDir == "" {
		cfg.CNIBinDir = DefaultCNIBinDir
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridgeName
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.JobBridgeName == "" {
		cfg.JobBridgeName = DefaultJobBridgeName
	}
	if cfg.JobSubnet == "" {
		cfg.JobSubnet = DefaultJobSubnet
	}
	if cfg.NetNSDir == "" {
		cfg.NetNSDir = DefaultNetNSDir
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = DefaultLogMaxFiles
	} else if cfg.LogMaxFiles < 0 {
		cfg.LogMaxFiles = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UsernsBase == 0 {
		cfg.UsernsBase = DefaultUsernsBase
	}
	if !cfg.UsernsDisabled && (cfg.UsernsBase < UsernsSize || uint64(cfg.UsernsBase)+UsernsSize-1 > uint64(^uint32(0))) {
		return nil, fmt.Errorf("runtime: the user namespace base %d must be at least %d and leave room for one range of %d ids below 2^32", cfg.UsernsBase, UsernsSize, UsernsSize)
	}
	if err := identifiers.Validate(cfg.Namespace); err != nil {
		return nil, fmt.Errorf("runtime: namespace %q: %w", cfg.Namespace, err)
	}
	jobFW, err := jobFirewallFor(cfg)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(cfg.LoggerPath) {
		return nil, fmt.Errorf("runtime: LoggerPath %q must be the absolute path of cc-agent (it runs as `cc-agent logger` under containerd's shim)", cfg.LoggerPath)
	}
	if st, err := os.Stat(cfg.LoggerPath); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runtime: LoggerPath %s is not an executable file (%v); point it at the cc-agent binary", cfg.LoggerPath, err)
	}
	for _, d := range []string{"logs", "cni", "oom", "containers", "jobs"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o750); err != nil {
			return nil, fmt.Errorf("runtime: create state directory: %w", err)
		}
	}

	client, err := containerd.New(cfg.Socket, containerd.WithDefaultNamespace(cfg.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("runtime: connect to containerd at %s: %w; is it running? (scripts/prereqs.sh starts it)", cfg.Socket, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.Version(vctx); err != nil {
		client.Close()
		return nil, fmt.Errorf("runtime: containerd at %s does not answer: %w; is it running? (scripts/prereqs.sh starts it)", cfg.Socket, err)
	}
	r := &Runtime{cfg: cfg, client: client, log: cfg.Logger.With("component", "runtime"), jobFW: jobFW,
		tracer: tracing.Tracer(cfg.Tracing, "github.com/containercodes/cc/agent/runtime")}
	if err := r.initCNI(); err != nil {
		client.Close()
		return nil, err
	}
	if err := r.cleanOrphanJobs(ctx); err != nil {
		r.log.Warn("clean the files of removed jobs", "err", err)
	}
	if err := r.cleanOrphanDisks(ctx); err != nil {
		r.log.Warn("clean the disks of removed containers", "err", err)
	}
	return r, nil
}

// Close closes the connection to containerd. Containers keep running.
func (r *Runtime) Close() error {
	return r.client.Close()
}

// Client returns the containerd client (for tests and diagnostics).
func (r *Runtime) Client() *containerd.Client { return r.client }

// Namespace returns the containerd namespace the runtime works in.
func (r *Runtime) Namespace() string { return r.cfg.Namespace }

func (r *Runtime) withNS(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

func (r *Runtime) logDir(id string) string {
	return filepath.Join(r.cfg.StateDir, "logs", id)
}

func (r *Runtime) oomMark(id string) string {
	return filepath.Join(r.cfg.StateDir, "oom", id)
}

func (r *Runtime) filesDir(id string) string {
	return filepath.Join(r.cfg.StateDir, "containers", id)
}

// RemoveLogs deletes the log files of a container.
func (r *Runtime) RemoveLogs(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := os.RemoveAll(r.logDir(id)); err != nil {
		return fmt.Errorf("runtime: remove logs of %s: %w", id, err)
	}
	return nil
}

// validID checks a container id before it becomes a containerd id and a
// file name.
func validID(id string) error {
	if id == "" {
		return errors.New("runtime: empty container id")
	}
	if len(id) > 64 {
		return fmt.Errorf("runtime: container id %q is longer than 64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("runtime: container id %q may hold only letters, digits, '-', '_' and '.'", id)
		}
	}
	if strings.HasPrefix(id, ".") || strings.HasPrefix(id, "-") {
		return fmt.Errorf("runtime: container id %q must start with a letter or digit", id)
	}
	return nil
}
