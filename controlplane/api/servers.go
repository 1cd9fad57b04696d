package api

import (
	"context"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/internal/buildinfo"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// healthyContact is how recently a follower must have heard from the
// leader to count as healthy.
const healthyContact = 5 * time.Second

// ListServers reports every voter of the raft configuration with what its
// record and its own raft view say.
func (s *ClusterService) ListServers(ctx context.Context, _ *ccv1.ListServersRequest) (*ccv1.ListServersResponse, error) {
	infos, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	return &ccv1.ListServersResponse{Servers: infos}, nil
}

func (s *ClusterService) servers(ctx context.Context) ([]*ccv1.ServerInfo, error) {
	st, err := s.core.Raft.Status()
	if err != nil {
		return nil, err
	}
	recs, err := s.core.FSM.Servers()
	if err != nil {
		return nil, err
	}
	byID := map[string]*statev1.ServerRecord{}
	for _, r := range recs {
		byID[r.Id] = r
	}
	var out []*ccv1.ServerInfo
	for _, srv := range st.Servers {
		info := &ccv1.ServerInfo{Id: srv.ID, RaftAddress: srv.Address, Leader: srv.ID == st.LeaderID}
		if r := byID[srv.ID]; r != nil {
			info.Name, info.ApiAddress = r.Name, r.ApiAddress
		}
		if srv.ID == st.ID {
			info.Version = buildinfo.Version
			info.Checks, info.Ready = s.core.readiness(ctx)
			info.RaftRole, info.LastIndex, info.Healthy = st.State, st.LastIndex, st.LeaderID != ""
			if !info.Leader && st.LeaderID != "" {
				lc := time.Since(s.core.Raft.LastContact())
				info.LastContact = durationpb.New(lc)
				info.Healthy = lc < healthyContact
			}
		} else if s.core.Peers != nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ps, err := s.core.Peers.PeerStatus(pctx, srv.ID)
			cancel()
			if err == nil {
				info.RaftRole, info.LastIndex = ps.RaftState, ps.LastIndex
				info.LastContact = durationpb.New(time.Duration(ps.LastContactMs) * time.Millisecond)
				info.Healthy = info.Leader || time.Duration(ps.LastContactMs)*time.Millisecond < healthyContact
				info.Version, info.Checks, info.Ready = ps.Version, ps.Checks, readyOf(ps.Checks)
			} else {
				info.RaftRole = "unreachable"
			}
		}
		if srv.Suffrage != "Voter" {
			info.RaftRole = srv.Suffrage
		}
		out = append(out, info)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Leader && !out[j].Leader })
	return out, nil
}

// readyOf says whether every required check passed (false for none:
// a server that did not say).
func readyOf(checks []*ccv1.ReadinessCheck) bool {
	for _, c := range checks {
		if c.Required && !c.Ok {
			return false
		}
	}
	return len(checks) > 0
}

// leaderClient returns nil when this server is the leader, else a client of
// the leader's ClusterService and a context that carries the caller's token:
// membership changes can only be made there, and the caller need not know
// which server leads.
func (s *ClusterService) leaderClient(ctx context.Context) (ccv1.ClusterServiceClient, context.Context, error) {
	st, err := s.core.Raft.Status()
	if err != nil {
		return nil, nil, err
	}
	if st.LeaderID == st.ID {
		return nil, nil, nil
	}
	if st.LeaderID == "" || s.core.Peers == nil {
		return nil, nil, status.Error(codes.Unavailable, "the cluster has no leader; retry shortly")
	}
	cl, err := s.core.Peers.Cluster(st.LeaderID)
	if err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "cannot reach the leader %s: %v", st.LeaderID, err)
	}
	out := ctx
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		out = metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", strings.Join(md.Get("authorization"), "")))
	}
	return cl, out, nil
}

// RemoveServer removes a server from raft and marks its record removed, so
// that its identity cannot come back. Refused when the remaining healthy
// voters would not make a quorum, unless forced.
func (s *ClusterService) RemoveServer(ctx context.Context, req *ccv1.RemoveServerRequest) (*ccv1.RemoveServerResponse, error) {
	if cl, fctx, err := s.leaderClient(ctx); err != nil {
		return nil, err
	} else if cl != nil {
		return cl.RemoveServer(fctx, req)
	}
	infos, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	var target *ccv1.ServerInfo
	healthyLeft, votersLeft := 0, 0
	for _, in := range infos {
		if in.Id == req.GetId() || in.Name == req.GetId() {
			target = in
			continue
		}
		votersLeft++
		if in.Healthy {
			healthyLeft++
		}
	}
	if target == nil {
		return nil, status.Errorf(codes.NotFound, "no server %q in the raft configuration (see `ccctl server ls`)", req.GetId())
	}
	if target.Leader {
		return nil, status.Error(codes.FailedPrecondition, "that is the leader: transfer leadership first (`ccctl server transfer-leadership`)")
	}
	if healthyLeft < votersLeft/2+1 && !req.GetForce() {
		return nil, status.Errorf(codes.FailedPrecondition, "removing %s would leave %d healthy of %d voters, no quorum: bring servers back or use --force", target.Id, healthyLeft, votersLeft)
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_SERVER, &statev1.RemoveServer{Id: target.Id}); err != nil {
		return nil, err
	}
	if err := s.core.Raft.RemoveServer(target.Id, 30*time.Second); err != nil {
		return nil, status.Errorf(codes.Unavailable, "remove %s from raft: %v", target.Id, err)
	}
	return &ccv1.RemoveServerResponse{}, nil
}

// TransferLeadership hands leadership to another voter.
func (s *ClusterService) TransferLeadership(ctx context.Context, req *ccv1.TransferLeadershipRequest) (*ccv1.TransferLeadershipResponse, error) {
	if cl, fctx, err := s.leaderClient(ctx); err != nil {
		return nil, err
	} else if cl != nil {
		return cl.TransferLeadership(fctx, req)
	}
	addr := ""
	if req.GetId() != "" {
		st, err := s.core.Raft.Status()
		if err != nil {
			return nil, err
		}
		for _, srv := range st.Servers {
			if srv.ID == req.GetId() {
				addr = srv.Address
			}
		}
		if addr == "" {
			return nil, status.Errorf(codes.NotFound, "no server %q in the raft configuration", req.GetId())
		}
	}
	if err := s.core.Raft.TransferLeadership(req.GetId(), addr); err != nil {
		return nil, status.Errorf(codes.Unavailable, "transfer leadership: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		st, _ := s.core.Raft.Status()
		if st.LeaderID != "" && st.LeaderID != st.ID {
			return &ccv1.TransferLeadershipResponse{LeaderId: st.LeaderID}, nil
		}
		select {
		case <-wctx.Done():
			return nil, status.Error(codes.DeadlineExceeded, "no new leader in time")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
