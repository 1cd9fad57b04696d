package api

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/scheduler"
	"github.com/containercodes/cc/internal/imagearchive"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ServiceService implements cc.v1.ServiceService: services whose tasks
// the orchestrator keeps running.
type ServiceService struct {
	ccv1.UnimplementedServiceServiceServer
	core *Core
}

// NewServiceService returns the service API.
func NewServiceService(core *Core) *ServiceService { return &ServiceService{core: core} }

// Register adds the service to a gRPC server.
func (s *ServiceService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterServiceServiceServer(g, s)
}

// A service name becomes part of its tasks' names ("web.1.ab12cd34"), so
// it has no dots.
var serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)

// MaxReplicas bounds one service.
const MaxReplicas = 100_000

// normalizeServiceSpec validates a service spec, fills its defaults and
// resolves its image. It returns the spec to store and the image digest.
func (s *ServiceService) normalizeServiceSpec(ctx context.Context, in *ccv1.ServiceSpec) (*ccv1.ServiceSpec, string, error) {
	if in == nil || in.Task == nil {
		return nil, "", status.Error(codes.InvalidArgument, "spec.task: required (the image and command the tasks run)")
	}
	spec := proto.Clone(in).(*ccv1.ServiceSpec)
	caps, err := s.core.caps(false)
	if err != nil {
		return nil, "", err
	}
	var probs []string
	if err := ValidateSpec(spec.Task, caps); err != nil {
		probs = append(probs, err.Error())
	}
	switch spec.Mode {
	case ccv1.ServiceMode_SERVICE_MODE_UNSPECIFIED:
		spec.Mode = ccv1.ServiceMode_SERVICE_MODE_REPLICATED
	case ccv1.ServiceMode_SERVICE_MODE_REPLICATED, ccv1.ServiceMode_SERVICE_MODE_GLOBAL:
	default:
		probs = append(probs, "mode: use replicated or global")
	}
	if spec.Mode == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
		spec.Replicas = 0
	} else if spec.Replicas > MaxReplicas {
		probs = append(probs, fmt.Sprintf("replicas: at most %d", MaxReplicas))
	}
	for _, c := range spec.GetPlacement().GetConstraints() {
		if _, err := scheduler.ParseConstraint(c); err != nil {
			probs = append(probs, err.Error())
		}
	}
	for _, a := range spec.GetPlacement().GetSpread() {
		if err := scheduler.ValidateSpread(a); err != nil {
			probs = append(probs, err.Error())
		}
	}
	if u := spec.Update; u != nil {
		if u.GetDelay().AsDuration() < 0 || u.GetMonitor().AsDuration() < 0 {
			probs = append(probs, "update: delay and monitor must not be negative")
		}
		switch u.FailureAction {
		case ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED, ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
			ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE:
		default:
			probs = append(probs, "update: failure action is pause, rollback or continue")
		}
	}
	if len(probs) > 0 {
		return nil, "", status.Error(codes.InvalidArgument, strings.Join(probs, "; "))
	}
	if err := s.core.resolveMounts(ctx, spec.Task); err != nil {
		return nil, "", err
	}
	ref, err := imagearchive.Normalize(spec.Task.Image)
	if err != nil {
		return nil, "", status.Errorf(codes.InvalidArgument, "image %q: %v", spec.Task.Image, err)
	}
	spec.Task = cloneSpec(spec.Task)
	spec.Task.Image = ref
	if in.Task.Restart == ccv1.RestartPolicy_RESTART_POLICY_UNSPECIFIED {
		spec.Task.Restart = ccv1.RestartPolicy_RESTART_POLICY_ALWAYS
	}
	if spec.Update == nil {
		spec.Update = &ccv1.UpdateConfig{}
	}
	if spec.Update.Parallelism == 0 {
		spec.Update.Parallelism = 1
	}
	if spec.Update.FailureAction == ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED {
		spec.Update.FailureAction = ccv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	}
	digest := ""
	if img, err := s.core.ResolveImage(ref); err == nil {
		digest = img.Digest
	}
	return spec, digest, nil
}

// CreateService implements ServiceService.
func (s *ServiceService) CreateService(ctx context.Context, req *ccv1.CreateServiceRequest) (*ccv1.CreateServiceResponse, error) {
	if !serviceNameRE.MatchString(req.GetName()) {
		return nil, status.Errorf(codes.InvalidArgument, "service name %q: use letters, digits, '_' or '-' (at most 63), starting with a letter or digit", req.GetName())
	}
	spec, digest, err := s.normalizeServiceSpec(ctx, req.GetSpec())
	if err != nil {
		return nil, err
	}
	if err := s.core.mayUsePrivilege(ctx, spec.GetTask()); err != nil {
		return nil, err
	}
	svc := &ccv1.Service{Id: newContainerID(), Name: req.GetName(), Spec: spec, ImageDigest: digest}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CREATE_SERVICE, &statev1.CreateService{Service: svc}); err != nil {
		return nil, err
	}
	out, err := s.serviceWithCounts(svc.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.CreateServiceResponse{Service: out}, nil
}

// findService resolves an id, a unique id prefix or a name.
func (s *ServiceService) findService(want string) (*ccv1.Service, error) {
	return resolve(want, "service", "ccctl service ls", s.core.FSM.Service, s.core.FSM.ServiceIDByName, s.core.FSM.Services,
		func(svc *ccv1.Service) string { return svc.Id })
}

// resolve finds one object by id, by name, or by a unique id prefix of at
// least three characters; kind and listCmd make the errors.
func resolve[T any](want, kind, listCmd string, byID func(string) (T, error), idByName func(string) (string, error),
	all func() ([]T, error), idOf func(T) string) (T, error) {
	var zero T
	if want == "" {
		return zero, status.Errorf(codes.InvalidArgument, "%s id or name: required", kind)
	}
	if x, err := byID(want); err == nil {
		return x, nil
	}
	if id, err := idByName(want); err == nil {
		return byID(id)
	}
	list, err := all()
	if err != nil {
		return zero, err
	}
	var match []T
	for _, x := range list {
		if len(want) >= 3 && strings.HasPrefix(idOf(x), want) {
			match = append(match, x)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return zero, status.Errorf(codes.NotFound, "no %s %q (see `%s`)", kind, want, listCmd)
	default:
		return zero, status.Errorf(codes.InvalidArgument, "%q matches %d %ss: give more of the id", want, len(match), kind)
	}
}

// countTasks fills a service's counts from its tasks.
func countTasks(svc *ccv1.Service, tasks []*statev1.ContainerRecord) {
	n := &ccv1.ServiceCounts{Desired: svc.GetSpec().GetReplicas()}
	global := svc.GetSpec().GetMode() == ccv1.ServiceMode_SERVICE_MODE_GLOBAL
	for _, r := range tasks {
		c := r.Container
		if c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING {
			continue
		}
		if global {
			n.Desired++
		}
		switch {
		case c.NodeId == "":
			n.Pending++
		case c.GetStatus().GetState() == ccv1.ContainerState_CONTAINER_STATE_RUNNING:
			n.Running++
		}
		if c.ServiceVersion == svc.Version {
			n.Updated++
		}
	}
	svc.Counts = n
}

func (s *ServiceService) serviceWithCounts(id string) (*ccv1.Service, error) {
	svc, err := s.core.FSM.Service(id)
	if err != nil {
		return nil, err
	}
	tasks, err := s.core.FSM.ServiceTasks(id)
	if err != nil {
		return nil, err
	}
	countTasks(svc, tasks)
	return svc, nil
}

// ListServices implements ServiceService.
func (s *ServiceService) ListServices(ctx context.Context, _ *ccv1.ListServicesRequest) (*ccv1.ListServicesResponse, error) {
	all, err := s.core.FSM.Services()
	if err != nil {
		return nil, err
	}
	for _, svc := range all {
		tasks, err := s.core.FSM.ServiceTasks(svc.Id)
		if err != nil {
			return nil, err
		}
		countTasks(svc, tasks)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return &ccv1.ListServicesResponse{Services: all}, nil
}

// GetService implements ServiceService.
func (s *ServiceService) GetService(ctx context.Context, req *ccv1.GetServiceRequest) (*ccv1.GetServiceResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	out, err := s.serviceWithCounts(svc.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.GetServiceResponse{Service: out}, nil
}

// UpdateService implements ServiceService.
func (s *ServiceService) UpdateService(ctx context.Context, req *ccv1.UpdateServiceRequest) (*ccv1.UpdateServiceResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	spec, digest, err := s.normalizeServiceSpec(ctx, req.GetSpec())
	if err != nil {
		return nil, err
	}
	if err := s.core.mayUsePrivilege(ctx, spec.GetTask()); err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: svc.Id, Spec: spec, ImageDigest: digest,
		ExpectedVersion: req.GetVersion(), ExpectedRevision: req.GetRevision(), Force: req.GetForce()}); err != nil {
		return nil, err
	}
	out, err := s.serviceWithCounts(svc.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.UpdateServiceResponse{Service: out}, nil
}

// ScaleService implements ServiceService.
func (s *ServiceService) ScaleService(ctx context.Context, req *ccv1.ScaleServiceRequest) (*ccv1.ScaleServiceResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	if svc.GetSpec().GetMode() == ccv1.ServiceMode_SERVICE_MODE_GLOBAL {
		return nil, status.Errorf(codes.FailedPrecondition, "service %s is global (one task per node): it cannot be scaled", svc.Name)
	}
	if req.GetReplicas() > MaxReplicas {
		return nil, status.Errorf(codes.InvalidArgument, "replicas: at most %d", MaxReplicas)
	}
	spec := proto.Clone(svc.Spec).(*ccv1.ServiceSpec)
	spec.Replicas = req.GetReplicas()
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: svc.Id, Spec: spec, ImageDigest: svc.ImageDigest, ExpectedRevision: svc.Revision}); err != nil {
		return nil, err
	}
	out, err := s.serviceWithCounts(svc.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.ScaleServiceResponse{Service: out}, nil
}

// RollbackService implements ServiceService.
func (s *ServiceService) RollbackService(ctx context.Context, req *ccv1.RollbackServiceRequest) (*ccv1.RollbackServiceResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_SERVICE, &statev1.UpdateService{Id: svc.Id, Rollback: true}); err != nil {
		return nil, err
	}
	out, err := s.serviceWithCounts(svc.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.RollbackServiceResponse{Service: out}, nil
}

// RemoveService implements ServiceService.
func (s *ServiceService) RemoveService(ctx context.Context, req *ccv1.RemoveServiceRequest) (*ccv1.RemoveServiceResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_SERVICE, &statev1.RemoveService{Id: svc.Id}); err != nil {
		return nil, err
	}
	return &ccv1.RemoveServiceResponse{}, nil
}

// ListServiceTasks implements ServiceService: current tasks by slot, then
// (with all) the history, newest first.
func (s *ServiceService) ListServiceTasks(ctx context.Context, req *ccv1.ListServiceTasksRequest) (*ccv1.ListServiceTasksResponse, error) {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return nil, err
	}
	tasks, err := s.core.FSM.ServiceTasks(svc.Id)
	if err != nil {
		return nil, err
	}
	resp := &ccv1.ListServiceTasksResponse{}
	for _, r := range tasks {
		if req.GetAll() || r.Container.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING {
			resp.Tasks = append(resp.Tasks, r.Container)
		}
	}
	sort.SliceStable(resp.Tasks, func(i, j int) bool {
		a, b := resp.Tasks[i], resp.Tasks[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if a.Slot == 0 && a.NodeId != b.NodeId {
			return a.NodeId < b.NodeId
		}
		if ar, br := a.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING, b.Desired == ccv1.DesiredState_DESIRED_STATE_RUNNING; ar != br {
			return ar
		}
		return a.GetCreatedAt().AsTime().After(b.GetCreatedAt().AsTime())
	})
	return resp, nil
}

// ServiceLogs implements ServiceService: the logs of the current tasks
// that have a node, merged as they arrive, each chunk named by its task.
func (s *ServiceService) ServiceLogs(req *ccv1.ServiceLogsRequest, stream ccv1.ServiceService_ServiceLogsServer) error {
	svc, err := s.findService(req.GetId())
	if err != nil {
		return err
	}
	tasks, err := s.core.FSM.ServiceTasks(svc.Id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errs   []string
	)
	for _, r := range tasks {
		c := r.Container
		if c.NodeId == "" || c.Desired != ccv1.DesiredState_DESIRED_STATE_RUNNING {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func(m *ccv1.ContainerLogsResponse) error {
				sendMu.Lock()
				defer sendMu.Unlock()
				return stream.Send(&ccv1.ServiceLogsResponse{Task: c.Name, Stream: m.Stream, Data: m.Data})
			}
			err := s.taskLogs(ctx, c, req, send)
			if err != nil && ctx.Err() == nil {
				errMu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", c.Name, status.Convert(err).Message()))
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 && ctx.Err() == nil {
		sort.Strings(errs)
		return status.Errorf(codes.Unavailable, "logs of some tasks could not be read: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (s *ServiceService) taskLogs(ctx context.Context, c *ccv1.Container, req *ccv1.ServiceLogsRequest, send func(*ccv1.ContainerLogsResponse) error) error {
	return s.core.nodeLogs(ctx, c.NodeId, c.Id, req.GetFollow(), req.GetTail(), send)
}

// WatchServices implements ServiceService: the services (or one) with their
// counts, then each change of a service or of one of its tasks.
func (s *ServiceService) WatchServices(req *ccv1.WatchServicesRequest, stream ccv1.ServiceService_WatchServicesServer) error {
	want := ""
	if req.GetId() != "" {
		svc, err := s.findService(req.GetId())
		if err != nil {
			return err
		}
		want = svc.Id
	}
	read := func(ids []string) (map[string]*ccv1.Service, []string, error) {
		return readEach(ids, s.serviceWithCounts)
	}
	return runWatch(stream.Context(), s.core.FSM, stream, watchSource[*ccv1.Service]{
		all: func() (map[string]*ccv1.Service, error) {
			if want != "" {
				put, _, err := read([]string{want})
				return put, err
			}
			list, err := s.core.FSM.Services()
			if err != nil {
				return nil, err
			}
			ids := make([]string, len(list))
			for i, svc := range list {
				ids[i] = svc.Id
			}
			put, _, err := read(ids)
			return put, err
		},
		changed: func(ch fsm.Changes) (map[string]*ccv1.Service, []string, error) {
			return read(changedIDs(ch.Services, want))
		},
		send: func(ev ccv1.WatchEvent, id string, svc *ccv1.Service) error {
			return stream.Send(&ccv1.WatchServicesResponse{Event: ev, Id: id, Service: svc})
		},
	})
}
