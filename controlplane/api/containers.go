package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/orchestrator"
	"github.com/containercodes/cc/internal/imagearchive"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/secprofile"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ContainerService implements cc.v1.ContainerService: containers placed
// by the API on a node.
type ContainerService struct {
	ccv1.UnimplementedContainerServiceServer
	core *Core
}

// NewContainerService returns the container API.
func NewContainerService(core *Core) *ContainerService { return &ContainerService{core: core} }

// Register adds the service to a gRPC server.
func (s *ContainerService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterContainerServiceServer(g, s)
}

var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// CreateContainer validates the spec, resolves the image, places the
// container on a node and records it.
func (s *ContainerService) CreateContainer(ctx context.Context, req *ccv1.CreateContainerRequest) (*ccv1.CreateContainerResponse, error) {
	spec := req.GetSpec()
	caps, err := s.core.caps(false)
	if err != nil {
		return nil, err
	}
	if err := ValidateSpec(spec, caps); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.core.mayUsePrivilege(ctx, spec); err != nil {
		return nil, err
	}
	ref, err := imagearchive.Normalize(spec.Image)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "image %q: %v", spec.Image, err)
	}
	id := newContainerID()
	name := req.GetName()
	if name == "" {
		name = generatedName(id)
	}
	if !containerNameRE.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "name %q: use letters, digits, '_', '.' or '-' (at most 128), starting with a letter or digit", name)
	}
	c := &ccv1.Container{Id: id, Name: name, Spec: cloneSpec(spec)}
	c.Spec.Image = ref
	if err := s.core.resolveMounts(ctx, c.Spec); err != nil {
		return nil, err
	}
	if img, err := s.core.ResolveImage(ref); err == nil {
		c.ImageDigest = img.Digest
	}
	nodes, err := s.core.FSM.Nodes()
	if err != nil {
		return nil, err
	}
	containers, err := s.core.FSM.Containers()
	if err != nil {
		return nil, err
	}
	node, err := Place(nodes, containers, req.GetNode(), c.Spec)
	if err != nil {
		return nil, err
	}
	c.NodeId = node.Id
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CREATE_CONTAINER, &statev1.CreateContainer{Container: c}); err != nil {
		return nil, err
	}
	rec, err := s.core.FSM.Container(id)
	if err != nil {
		return nil, err
	}
	return &ccv1.CreateContainerResponse{Container: rec.Container}, nil
}

func cloneSpec(s *ccv1.ContainerSpec) *ccv1.ContainerSpec {
	out := proto.Clone(s).(*ccv1.ContainerSpec)
	if out.Restart == ccv1.RestartPolicy_RESTART_POLICY_UNSPECIFIED {
		out.Restart = ccv1.RestartPolicy_RESTART_POLICY_NO
	}
	if out.Network == ccv1.NetworkMode_NETWORK_MODE_UNSPECIFIED {
		out.Network = ccv1.NetworkMode_NETWORK_MODE_BRIDGE
	}
	for _, p := range out.Ports {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
	}
	return out
}

// ValidateSpec checks a container spec against the bounds of every spec
// and the cluster's caps, and says what to fix.
func ValidateSpec(s *ccv1.ContainerSpec, caps jobspec.Caps) error {
	if s == nil || strings.TrimSpace(s.Image) == "" {
		return errors.New("image: required")
	}
	var probs []string
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			probs = append(probs, fmt.Sprintf("env %q: use KEY=VALUE", shorten(e)))
		}
	}
	probs = append(probs, jobspec.CheckCommand(s.Command, s.Env)...)
	if len(s.User) > 256 || len(s.Workdir) > jobspec.MaxWorkdirLen {
		probs = append(probs, fmt.Sprintf("user and workdir: at most 256 and %d characters", jobspec.MaxWorkdirLen))
	}
	if r := s.Resources; r != nil {
		if r.MemoryBytes < 0 || r.MemoryBytes != 0 && r.MemoryBytes < jobspec.MinMemoryBytes {
			probs = append(probs, "memory: at least 4m")
		}
		if r.CpuMillis < 0 || r.CpuMillis > jobspec.MaxCPUMillis {
			probs = append(probs, "cpus: between 0.001 and 1000")
		}
		if r.Pids < 0 {
			probs = append(probs, "pids: must be positive")
		}
		if r.MemoryReservationBytes < 0 || r.CpuReservationMillis < 0 {
			probs = append(probs, "reservations must not be negative")
		}
		if r.MemoryBytes > 0 && r.MemoryReservationBytes > r.MemoryBytes || r.CpuMillis > 0 && r.CpuReservationMillis > r.CpuMillis {
			probs = append(probs, "a reservation is more than its limit: a task cannot reserve more than it may use")
		}
		probs = append(probs, caps.Check(r)...)
		// A reservation alone (no limit) is what the scheduler counts:
		// it is capped like a limit.
		probs = append(probs, caps.Check(&ccv1.ContainerResources{
			MemoryBytes: reservationOnly(r.MemoryReservationBytes, r.MemoryBytes),
			CpuMillis:   reservationOnly(r.CpuReservationMillis, r.CpuMillis),
		})...)
	}
	seen := map[string]bool{}
	for _, p := range s.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			probs = append(probs, fmt.Sprintf("port protocol %q: use tcp or udp", p.Protocol))
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			probs = append(probs, fmt.Sprintf("port %d:%d: ports are 1-65535", p.HostPort, p.ContainerPort))
		}
		key := fmt.Sprintf("%d/%s", p.HostPort, proto)
		if seen[key] {
			probs = append(probs, "port "+key+" published twice")
		}
		seen[key] = true
	}
	probs = append(probs, healthProblems(s.Health)...)
	if g := s.GetStopGracePeriod(); g != nil && (!g.IsValid() || g.AsDuration() < 0 || g.AsDuration() > time.Hour) {
		probs = append(probs, "stop grace period: between 0s and 1h")
	}
	if d := s.GetResources().GetDiskBytes(); d < 0 || d > 0 && d < MinDiskBytes {
		probs = append(probs, "disk: at least 16m (the writable layer's filesystem needs room for its metadata)")
	}
	if s.Sandbox == nil {
		probs = append(probs, secprofile.Check(s.Security)...)
	}
	if len(s.Ports) > 0 && s.Network == ccv1.NetworkMode_NETWORK_MODE_NONE {
		probs = append(probs, "ports: a container with --network none cannot publish ports")
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// MinDiskBytes is the smallest disk limit of a container (the agent's
// runtime.MinDiskBytes).
const MinDiskBytes = 16 << 20

// reservationOnly is a reservation that has no limit above it; 0
// otherwise.
func reservationOnly(reserve, limit int64) int64 {
	if limit == 0 {
		return reserve
	}
	return 0
}

// shorten cuts a long value for an error message.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Place chooses the node of a new container: the node asked for (which
// must be ready and have its host ports free), or the one the scheduler
// picks, as it does for service tasks.
func Place(nodes []*ccv1.Node, containers []*statev1.ContainerRecord, want string, spec *ccv1.ContainerSpec) (*ccv1.Node, error) {
	if want != "" {
		n, err := FindNode(nodes, want)
		if err != nil {
			return nil, err
		}
		if vn := volumeNodeOf(spec); vn != "" && vn != n.Id {
			return nil, status.Errorf(codes.FailedPrecondition, "the container mounts a volume whose data lives on node %s, not on %s: leave out --node, or choose that node", vn, n.Name)
		}
		if n.State != ccv1.NodeState_NODE_STATE_READY {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s (%s) is %s, not ready", n.Name, n.Id, enumWord(n.State.String(), "NODE_STATE_"))
		}
		for _, r := range containers {
			c := r.Container
			if c.NodeId != n.Id || c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING {
				continue
			}
			for _, used := range c.GetSpec().GetPorts() {
				for _, p := range spec.GetPorts() {
					if used.HostPort == p.HostPort && used.Protocol == p.Protocol {
						return nil, status.Errorf(codes.FailedPrecondition, "host port %d/%s is already published on node %s", p.HostPort, p.Protocol, n.Name)
					}
				}
			}
		}
		return n, nil
	}
	if len(nodes) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "no node has joined the cluster: start an agent with `cc-agent --join ADDR --token TOKEN` (token from `ccctl token create`)")
	}
	const newID = "\x00new"
	c := &ccv1.Container{Id: newID, Spec: spec}
	res := orchestrator.PlaceOne(nodes, containers, c)
	id, ok := res.Assigned[newID]
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "no node can run it: %s", res.Pending[newID])
	}
	for _, n := range nodes {
		if n.Id == id {
			return n, nil
		}
	}
	return nil, status.Errorf(codes.Internal, "the scheduler chose an unknown node %s", id)
}

// findContainer resolves an id, unique id prefix or name.
func (s *ContainerService) findContainer(want string) (*statev1.ContainerRecord, error) {
	return resolve(want, "container", "ccctl ps -a", s.core.FSM.Container, s.core.FSM.ContainerIDByName, s.core.FSM.Containers,
		func(r *statev1.ContainerRecord) string { return r.Container.Id })
}

// ListContainers implements ContainerService.
func (s *ContainerService) ListContainers(ctx context.Context, req *ccv1.ListContainersRequest) (*ccv1.ListContainersResponse, error) {
	all, err := s.core.FSM.Containers()
	if err != nil {
		return nil, err
	}
	nodeID := ""
	if req.GetNode() != "" {
		n, err := s.core.node(req.GetNode())
		if err != nil {
			return nil, err
		}
		nodeID = n.Id
	}
	resp := &ccv1.ListContainersResponse{}
	for _, r := range all {
		c := r.Container
		if nodeID != "" && c.NodeId != nodeID {
			continue
		}
		if !req.GetAll() && (c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING || isFinished(c.GetStatus().GetState())) {
			continue
		}
		resp.Containers = append(resp.Containers, s.publicContainer(ctx, c))
	}
	sort.SliceStable(resp.Containers, func(i, j int) bool {
		return resp.Containers[i].CreatedAt.AsTime().After(resp.Containers[j].CreatedAt.AsTime())
	})
	return resp, nil
}

func isFinished(st ccv1.ContainerState) bool {
	return st == ccv1.ContainerState_CONTAINER_STATE_EXITED || st == ccv1.ContainerState_CONTAINER_STATE_FAILED
}

// GetContainer implements ContainerService.
func (s *ContainerService) GetContainer(ctx context.Context, req *ccv1.GetContainerRequest) (*ccv1.GetContainerResponse, error) {
	rec, err := s.findContainer(req.GetId())
	if err != nil {
		return nil, err
	}
	return &ccv1.GetContainerResponse{Container: s.publicContainer(ctx, rec.Container)}, nil
}

// containerJobID is the job a container is an attempt of, or "".
func containerJobID(c *ccv1.Container) string {
	if id := c.GetJobId(); id != "" {
		return id
	}
	return c.GetSpec().GetSandbox().GetJobId()
}

// mayReadAttempt applies JobLogs' rule to a job attempt's container: only
// the job's owner or an admin may read its logs (viewers may not, as they
// may not call JobLogs). A container of no job is anyone's to read; an
// attempt whose job record is gone is an admin's only.
func (s *ContainerService) mayReadAttempt(ctx context.Context, c *ccv1.Container) error {
	if containerJobID(c) == "" {
		return nil
	}
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	return mayReadAttemptOf(s.core.FSM, p, c, "logs")
}

// mayReadAttemptOf is the rule of mayReadAttempt for principal p, for
// reading what (logs, stats) of container c.
func mayReadAttemptOf(f *fsm.FSM, p auth.Principal, c *ccv1.Container, what string) error {
	jobID := containerJobID(c)
	if jobID == "" || p.Role == ccv1.Role_ROLE_ADMIN {
		return nil
	}
	rec, err := f.Job(jobID)
	if errors.Is(err, fsm.ErrNotFound) {
		return status.Errorf(codes.PermissionDenied, "container %s is an attempt of job %s, which no longer exists: only an admin token may read its %s (this is token %s, role %s)",
			c.Name, jobID, what, p.TokenID, auth.RoleName(p.Role))
	}
	if err != nil {
		return err
	}
	if err := mayTouch(p, rec.Job, "read the "+what+" of"); err != nil {
		return status.Errorf(codes.PermissionDenied, "container %s is an attempt of a job: %s", c.Name, status.Convert(err).Message())
	}
	return nil
}

// publicContainer is a container as reads return it to the caller of ctx:
// a job attempt hides from a jobs token that did not submit the job what
// publicJob hides of the job (env values and input), whoever may call the
// container reads.
func (s *ContainerService) publicContainer(ctx context.Context, c *ccv1.Container) *ccv1.Container {
	jobID := containerJobID(c)
	p, _ := auth.FromContext(ctx)
	if jobID == "" || p.Role != ccv1.Role_ROLE_JOBS {
		return c
	}
	if rec, err := s.core.FSM.Job(jobID); err == nil && rec.Job.GetOwnerTokenId() == p.TokenID {
		return c
	}
	c = proto.Clone(c).(*ccv1.Container)
	if c.Spec == nil {
		return c
	}
	for i, e := range c.Spec.Env {
		k, _, _ := strings.Cut(e, "=")
		c.Spec.Env[i] = k + "=(hidden)"
	}
	if sb := c.Spec.Sandbox; sb != nil && sb.InputDigest != "" {
		sb.InputDigest = "(hidden)"
	}
	return c
}

func (s *ContainerService) setDesired(ctx context.Context, want string, d ccv1.DesiredState, timeout time.Duration) (*ccv1.Container, error) {
	rec, err := s.findContainer(want)
	if err != nil {
		return nil, err
	}
	if err := s.notTask(rec.Container); err != nil {
		return nil, err
	}
	err = s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_SET_CONTAINER_DESIRED, &statev1.SetContainerDesired{Id: rec.Container.Id, Desired: d, StopTimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return nil, err
	}
	rec, err = s.core.FSM.Container(rec.Container.Id)
	if err != nil {
		return nil, err
	}
	return rec.Container, nil
}

// StartContainer implements ContainerService.
func (s *ContainerService) StartContainer(ctx context.Context, req *ccv1.StartContainerRequest) (*ccv1.StartContainerResponse, error) {
	c, err := s.setDesired(ctx, req.GetId(), ccv1.DesiredState_DESIRED_STATE_RUNNING, 0)
	if err != nil {
		return nil, err
	}
	return &ccv1.StartContainerResponse{Container: c}, nil
}

// StopContainer implements ContainerService.
func (s *ContainerService) StopContainer(ctx context.Context, req *ccv1.StopContainerRequest) (*ccv1.StopContainerResponse, error) {
	timeout := 10 * time.Second
	if t := req.GetTimeout(); t != nil {
		if !t.IsValid() || t.AsDuration() < 0 {
			return nil, status.Error(codes.InvalidArgument, "timeout: must be zero or positive")
		}
		timeout = t.AsDuration()
	}
	c, err := s.setDesired(ctx, req.GetId(), ccv1.DesiredState_DESIRED_STATE_STOPPED, timeout)
	if err != nil {
		return nil, err
	}
	return &ccv1.StopContainerResponse{Container: c}, nil
}

// RemoveContainer implements ContainerService. The agent stops and deletes
// the container when its assignment disappears.
func (s *ContainerService) RemoveContainer(ctx context.Context, req *ccv1.RemoveContainerRequest) (*ccv1.RemoveContainerResponse, error) {
	rec, err := s.findContainer(req.GetId())
	if err != nil {
		return nil, err
	}
	c := rec.Container
	if err := s.notTask(c); err != nil {
		return nil, err
	}
	running := c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING || c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_PREPARING
	if running && c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is running: stop it first (`ccctl stop %s`) or remove it with --force", c.Name, c.Name)
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_CONTAINER, &statev1.RemoveContainer{Id: c.Id}); err != nil {
		return nil, err
	}
	return &ccv1.RemoveContainerResponse{}, nil
}

// notTask refuses to drive a service's task as a plain container.
func (s *ContainerService) notTask(c *ccv1.Container) error {
	if c.GetServiceId() == "" {
		return nil
	}
	name := c.ServiceId
	if svc, err := s.core.FSM.Service(c.ServiceId); err == nil {
		name = svc.Name
	}
	return status.Errorf(codes.FailedPrecondition, "container %s is a task of service %s, which the cluster manages: use `ccctl service scale %s=N`, `ccctl service update` or `ccctl service rm %s`", c.Name, name, name, name)
}

// ContainerLogs streams a container's logs from its node. A job attempt's
// logs are its job's: only the job's owner or an admin reads them, as with
// JobLogs.
func (s *ContainerService) ContainerLogs(req *ccv1.ContainerLogsRequest, stream ccv1.ContainerService_ContainerLogsServer) error {
	rec, err := s.findContainer(req.GetId())
	if err != nil {
		return err
	}
	c := rec.Container
	if err := s.mayReadAttempt(stream.Context(), c); err != nil {
		return err
	}
	if c.NodeId == "" {
		return status.Errorf(codes.FailedPrecondition, "container %s has not been placed on a node yet", c.Name)
	}
	return s.core.nodeLogs(stream.Context(), c.NodeId, c.Id, req.GetFollow(), req.GetTail(), stream.Send)
}

func newContainerID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nameWords = [...]string{"amber", "brisk", "calm", "deft", "eager", "fond", "glad", "hale", "keen", "lucid", "merry", "noble", "prime", "quick", "sage", "tidy", "vivid", "witty"}
var nameNouns = [...]string{"ant", "bee", "crane", "dove", "elk", "finch", "gecko", "heron", "ibis", "jay", "koala", "lynx", "moth", "newt", "otter", "pika", "quail", "robin", "seal", "tern", "vole", "wren"}

// generatedName is docker-like (adjective_noun) with a bit of the id, so
// two containers never race for the same generated name.
func generatedName(id string) string {
	b, _ := hex.DecodeString(id[:4])
	return nameWords[int(b[0])%len(nameWords)] + "_" + nameNouns[int(b[1])%len(nameNouns)] + "_" + id[4:8]
}

func enumWord(s, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(s, prefix))
}

// MinHealthInterval is the shortest interval between health checks.
const MinHealthInterval = 100 * time.Millisecond

// healthProblems checks a health check as the agent will run it.
func healthProblems(h *ccv1.HealthCheck) []string {
	if h == nil {
		return nil
	}
	var probs []string
	switch {
	case len(h.Exec) > 0 && h.HttpPath != "":
		probs = append(probs, "health: give a command or an HTTP path, not both")
	case len(h.Exec) == 0 && h.HttpPath == "":
		probs = append(probs, "health: give a command (--health-cmd) or an HTTP path (--health-http)")
	case len(h.Exec) > 0 && strings.TrimSpace(h.Exec[0]) == "":
		probs = append(probs, "health: the command is empty")
	case h.HttpPath != "" && !strings.HasPrefix(h.HttpPath, "/"):
		probs = append(probs, fmt.Sprintf("health: HTTP path %q must start with /", h.HttpPath))
	}
	if h.HttpPort < 0 || h.HttpPort > 65535 {
		probs = append(probs, "health: port is 1-65535")
	}
	if iv := h.GetInterval(); iv != nil && iv.AsDuration() < MinHealthInterval {
		probs = append(probs, fmt.Sprintf("health: interval %s is too short; at least %s", iv.AsDuration(), MinHealthInterval))
	}
	if h.GetTimeout().AsDuration() < 0 || h.GetStartPeriod().AsDuration() < 0 {
		probs = append(probs, "health: timeout and start period must not be negative")
	}
	return probs
}

// WatchContainers implements ContainerService: the containers a list with
// the same filters shows, then each change; one that stops matching (it
// ended, without all; it was removed) goes out as REMOVED.
func (s *ContainerService) WatchContainers(req *ccv1.WatchContainersRequest, stream ccv1.ContainerService_WatchContainersServer) error {
	ctx := stream.Context()
	var nodeID, serviceID, id string
	if req.GetNode() != "" {
		n, err := s.core.node(req.GetNode())
		if err != nil {
			return err
		}
		nodeID = n.Id
	}
	if req.GetService() != "" {
		svc, err := resolve(req.GetService(), "service", "ccctl service ls", s.core.FSM.Service, s.core.FSM.ServiceIDByName, s.core.FSM.Services,
			func(svc *ccv1.Service) string { return svc.Id })
		if err != nil {
			return err
		}
		serviceID = svc.Id
	}
	if req.GetId() != "" {
		rec, err := s.findContainer(req.GetId())
		if err != nil {
			return err
		}
		id = rec.Container.Id
	}
	match := func(c *ccv1.Container) bool {
		switch {
		case nodeID != "" && c.NodeId != nodeID, serviceID != "" && c.ServiceId != serviceID, id != "" && c.Id != id:
			return false
		}
		return req.GetAll() || (c.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING && !isFinished(c.GetStatus().GetState()))
	}
	return runWatch(ctx, s.core.FSM, stream, watchSource[*ccv1.Container]{
		all: func() (map[string]*ccv1.Container, error) {
			var (
				recs []*statev1.ContainerRecord
				err  error
			)
			switch {
			case id != "":
				var byID map[string]*statev1.ContainerRecord
				byID, err = s.core.FSM.ContainersByID([]string{id})
				for _, r := range byID {
					recs = append(recs, r)
				}
			case serviceID != "":
				recs, err = s.core.FSM.ServiceTasks(serviceID)
			case nodeID != "":
				recs, err = s.core.FSM.NodeContainers(nodeID)
			default:
				recs, err = s.core.FSM.Containers()
			}
			if err != nil {
				return nil, err
			}
			out := map[string]*ccv1.Container{}
			for _, r := range recs {
				if match(r.Container) {
					out[r.Container.Id] = s.publicContainer(ctx, r.Container)
				}
			}
			return out, nil
		},
		changed: func(ch fsm.Changes) (map[string]*ccv1.Container, []string, error) {
			ids := changedIDs(ch.Containers, id)
			recs, err := s.core.FSM.ContainersByID(ids)
			if err != nil {
				return nil, nil, err
			}
			put := map[string]*ccv1.Container{}
			var gone []string
			for _, cid := range ids {
				if r := recs[cid]; r != nil && match(r.Container) {
					put[cid] = s.publicContainer(ctx, r.Container)
				} else {
					gone = append(gone, cid)
				}
			}
			return put, gone, nil
		},
		send: func(ev ccv1.WatchEvent, id string, c *ccv1.Container) error {
			return stream.Send(&ccv1.WatchContainersResponse{Event: ev, Id: id, Container: c})
		},
	})
}
