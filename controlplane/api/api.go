// Package api implements the cc.v1 gRPC services of the control plane. Reads
// come from the local state machine; writes are commands proposed through
// raft. Errors are mapped to gRPC status codes in one place, ErrorInterceptor.
package api

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/session"
	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ErrInvalidArgument marks a request the caller must fix.
var ErrInvalidArgument = errors.New("invalid argument")

// Server implements the cc.v1 services for users: cluster, nodes, tokens
// and containers.
type Server struct {
	ccv1.UnimplementedClusterServiceServer
	ccv1.UnimplementedNodeServiceServer
	ccv1.UnimplementedTokenServiceServer
	ccv1.UnimplementedContainerServiceServer
	ccv1.UnimplementedServiceServiceServer

	raft     *raftstore.Store
	fsm      *fsm.FSM
	sessions *session.Hub
	images   ImageResolver
	peers    PeerClient
	caDigest func() string
	log      *slog.Logger
	now      func() time.Time
	name     string
}

// ImageResolver finds a loaded image by name.
type ImageResolver interface {
	Resolve(name string) (*ccv1.Image, error)
}

// Options are what the API needs.
type Options struct {
	Raft     *raftstore.Store
	FSM      *fsm.FSM
	Sessions *session.Hub
	Images   ImageResolver
	Peers    PeerClient
	// CADigest returns the digest of the cluster CA (join tokens carry it).
	CADigest func() string
	// Name is the server's human name.
	Name   string
	Logger *slog.Logger
}

// New returns the API.
func New(o Options) *Server {
	return &Server{raft: o.Raft, fsm: o.FSM, sessions: o.Sessions, images: o.Images, peers: o.Peers, caDigest: o.CADigest,
		log: o.Logger, now: time.Now, name: o.Name}
}

// Register adds the user-facing services to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterClusterServiceServer(g, s)
	ccv1.RegisterNodeServiceServer(g, s)
	ccv1.RegisterTokenServiceServer(g, s)
	ccv1.RegisterContainerServiceServer(g, s)
	ccv1.RegisterServiceServiceServer(g, s)
}

// propose encodes and applies one command.
func (s *Server) propose(ctx context.Context, t statev1.CommandType, payload proto.Message) error {
	data, err := fsm.Encode(t, payload, s.now())
	if err != nil {
		return err
	}
	_, err = s.raft.Apply(ctx, data)
	return err
}

// GetStatus implements ClusterService.
func (s *Server) GetStatus(ctx context.Context, _ *ccv1.GetStatusRequest) (*ccv1.GetStatusResponse, error) {
	st, err := s.raft.Status()
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
	if st, err := s.fsm.Settings(); err == nil {
		resp.Settings = st
	}
	cl, err := s.fsm.Cluster()
	switch {
	case err == nil:
		resp.ClusterId = cl.ClusterId
		resp.CreatedAt = cl.CreatedAt
	case !errors.Is(err, fsm.ErrNotInitialized):
		return nil, err
	}
	return resp, nil
}

// ListNodes implements NodeService.
func (s *Server) ListNodes(ctx context.Context, _ *ccv1.ListNodesRequest) (*ccv1.ListNodesResponse, error) {
	nodes, err := s.fsm.Nodes()
	if err != nil {
		return nil, err
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		s.withLastSeen(n)
		if err := s.withAllocation(n); err != nil {
			return nil, err
		}
	}
	return &ccv1.ListNodesResponse{Nodes: nodes}, nil
}

// CreateToken implements TokenService. Roles admin and viewer make API
// tokens; role agent makes a join token (CCTKN-1-<CA digest>-<secret>).
func (s *Server) CreateToken(ctx context.Context, req *ccv1.CreateTokenRequest) (*ccv1.CreateTokenResponse, error) {
	role := req.GetRole()
	if role == ccv1.Role_ROLE_UNSPECIFIED {
		role = ccv1.Role_ROLE_VIEWER
	}
	if role != ccv1.Role_ROLE_ADMIN && role != ccv1.Role_ROLE_VIEWER && role != ccv1.Role_ROLE_AGENT && role != ccv1.Role_ROLE_SERVER && role != ccv1.Role_ROLE_JOBS {
		return nil, status.Errorf(codes.InvalidArgument, "role %v: use ROLE_ADMIN, ROLE_VIEWER, ROLE_JOBS, ROLE_AGENT or ROLE_SERVER", req.GetRole())
	}
	join := role == ccv1.Role_ROLE_AGENT || role == ccv1.Role_ROLE_SERVER
	if len(req.GetDescription()) > 256 {
		return nil, status.Error(codes.InvalidArgument, "description: at most 256 characters")
	}
	if req.GetTtl() != nil && (req.GetTtl().AsDuration() < 0 || !req.GetTtl().IsValid()) {
		return nil, status.Error(codes.InvalidArgument, "ttl: must be zero (no expiry) or positive")
	}
	if req.GetMaxUses() > 0 && !join {
		return nil, status.Error(codes.InvalidArgument, "max_uses: only join tokens (roles agent and server) have a use limit")
	}
	var rec *statev1.TokenRecord
	var secret string
	var err error
	if join {
		rec, secret, err = NewJoinTokenRecord(s.caDigest(), req.GetDescription(), req.GetTtl().AsDuration(), s.now())
		if err == nil {
			rec.Role = int32(role)
			rec.MaxUses = req.GetMaxUses()
		}
	} else {
		rec, secret, err = NewTokenRecord(role, req.GetDescription(), req.GetTtl().AsDuration(), s.now())
	}
	if err != nil {
		return nil, err
	}
	if err := s.propose(ctx, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: rec}); err != nil {
		return nil, err
	}
	stored, err := s.fsm.Token(rec.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.CreateTokenResponse{Token: TokenView(stored), Secret: secret}, nil
}

// ListTokens implements TokenService.
func (s *Server) ListTokens(ctx context.Context, _ *ccv1.ListTokensRequest) (*ccv1.ListTokensResponse, error) {
	recs, err := s.fsm.Tokens()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].CreatedAt.AsTime().Before(recs[j].CreatedAt.AsTime()) })
	resp := &ccv1.ListTokensResponse{}
	for _, r := range recs {
		resp.Tokens = append(resp.Tokens, TokenView(r))
	}
	return resp, nil
}

// RevokeToken implements TokenService.
func (s *Server) RevokeToken(ctx context.Context, req *ccv1.RevokeTokenRequest) (*ccv1.RevokeTokenResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id: required (see `ccctl token ls`)")
	}
	if err := s.propose(ctx, statev1.CommandType_COMMAND_TYPE_REVOKE_TOKEN, &statev1.RevokeToken{Id: req.GetId()}); err != nil {
		return nil, err
	}
	return &ccv1.RevokeTokenResponse{}, nil
}

// NewTokenRecord makes a new token: the record to store (holding only the
// secret's hash) and the bearer string to hand out once.
func NewTokenRecord(role ccv1.Role, description string, ttl time.Duration, now time.Time) (*statev1.TokenRecord, string, error) {
	id, secret, bearer, err := auth.NewToken()
	if err != nil {
		return nil, "", err
	}
	rec := &statev1.TokenRecord{
		Id:           id,
		Role:         int32(role),
		Description:  description,
		SecretSha256: auth.HashSecret(secret),
	}
	if ttl > 0 {
		rec.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	return rec, bearer, nil
}

// NewJoinTokenRecord makes a join token for the cluster whose CA has
// caDigest: the record to store and the token to hand out once.
func NewJoinTokenRecord(caDigest, description string, ttl time.Duration, now time.Time) (*statev1.TokenRecord, string, error) {
	tok, err := pki.NewJoinToken(caDigest)
	if err != nil {
		return nil, "", err
	}
	rec := &statev1.TokenRecord{
		Id:           tok.ID(),
		Role:         int32(ccv1.Role_ROLE_AGENT),
		Description:  description,
		SecretSha256: tok.SecretHash(),
	}
	if ttl > 0 {
		rec.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	return rec, tok.String(), nil
}

// TokenView is the public view of a stored token: no hash.
func TokenView(r *statev1.TokenRecord) *ccv1.Token {
	return &ccv1.Token{
		Id:          r.Id,
		Role:        ccv1.Role(r.Role),
		Description: r.Description,
		CreatedAt:   r.CreatedAt,
		ExpiresAt:   r.ExpiresAt,
		Revoked:     r.Revoked,
		Uses:        r.Uses,
		MaxUses:     r.MaxUses,
	}
}

// ErrorInterceptor turns the errors handlers return into gRPC status codes.
func ErrorInterceptor(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	resp, err := handler(ctx, req)
	return resp, ToStatus(err)
}

// StreamErrorInterceptor is ErrorInterceptor for streaming calls.
func StreamErrorInterceptor(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return ToStatus(handler(srv, ss))
}

// ToStatus maps an error to a gRPC status error; a status error passes through.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, fsm.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, fsm.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, fsm.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, fsm.ErrUnknownCommand), errors.Is(err, fsm.ErrUnsupportedVersion):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, fsm.ErrNotInitialized):
		return status.Error(codes.Unavailable, "the cluster is still starting: "+err.Error())
	case errors.Is(err, raftstore.ErrNotLeader):
		return status.Error(codes.Unavailable, err.Error()+"; retry shortly")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
