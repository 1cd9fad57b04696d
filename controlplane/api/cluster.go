package api

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/buildinfo"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ClusterService implements cc.v1.ClusterService: status, settings, the
// servers (servers.go) and snapshots (snapshot.go).
type ClusterService struct {
	ccv1.UnimplementedClusterServiceServer
	core *Core
	name string
	// overview caches the job counts and edge traffic of the status.
	overview overviewCounts
}

// NewClusterService returns the cluster API of the server called name.
func NewClusterService(core *Core, name string) *ClusterService {
	return &ClusterService{core: core, name: name}
}

// Register adds the service to a gRPC server.
func (s *ClusterService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterClusterServiceServer(g, s)
}

// GetStatus implements ClusterService.
func (s *ClusterService) GetStatus(ctx context.Context, _ *ccv1.GetStatusRequest) (*ccv1.GetStatusResponse, error) {
	st, err := s.core.Raft.Status()
	if err != nil {
		return nil, err
	}
	resp := &ccv1.GetStatusResponse{
		Version:       buildinfo.Version,
		ServerId:      st.ID,
		ServerName:    s.name,
		LeaderId:      st.LeaderID,
		LeaderAddress: st.LeaderAddress,
		RaftState:     st.State,
		Term:          st.Term,
		LastIndex:     st.LastIndex,
		CommitIndex:   st.CommitIndex,
		AppliedIndex:  st.AppliedIndex,
	}
	for _, srv := range st.Servers {
		resp.Servers = append(resp.Servers, &ccv1.Server{Id: srv.ID, Address: srv.Address, Suffrage: srv.Suffrage, Leader: srv.ID == st.LeaderID})
	}
	if st, err := s.core.FSM.Settings(); err == nil {
		resp.Settings = RedactSettings(st)
	}
	jobs, err := s.jobCounts()
	if err != nil {
		return nil, err
	}
	resp.JobsByState = jobs
	resp.Edge, resp.EdgeNodes = s.edgeTraffic(ctx)
	cl, err := s.core.FSM.Cluster()
	switch {
	case err == nil:
		resp.ClusterId = cl.ClusterId
		resp.CreatedAt = cl.CreatedAt
	case !errors.Is(err, fsm.ErrNotInitialized):
		return nil, err
	}
	return resp, nil
}

// UpdateSettings implements ClusterService.
func (s *ClusterService) UpdateSettings(ctx context.Context, req *ccv1.UpdateSettingsRequest) (*ccv1.UpdateSettingsResponse, error) {
	st := req.GetSettings()
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "settings: required")
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_UPDATE_SETTINGS, &statev1.UpdateSettings{Settings: st}); err != nil {
		if errors.Is(err, fsm.ErrInvalid) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, err
	}
	out, err := s.core.FSM.Settings()
	if err != nil {
		return nil, err
	}
	return &ccv1.UpdateSettingsResponse{Settings: RedactSettings(out)}, nil
}

// watchStatusEvery is how often a WatchStatus stream looks at the status.
const watchStatusEvery = time.Second

// WatchStatus implements ClusterService: GetStatus's answer, then again
// each time it differs from the one sent last (the raft indexes change
// with every write, so a busy cluster sends one a second).
func (s *ClusterService) WatchStatus(_ *ccv1.WatchStatusRequest, stream ccv1.ClusterService_WatchStatusServer) error {
	ctx := stream.Context()
	return sendWhenChanged(ctx, stream, watchStatusEvery, nil,
		func() (*ccv1.WatchStatusResponse, error) {
			st, err := s.GetStatus(ctx, &ccv1.GetStatusRequest{})
			return &ccv1.WatchStatusResponse{Status: st}, err
		}, stream.Send)
}
