package api

import (
	"context"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TokenService implements cc.v1.TokenService: API tokens and join tokens.
type TokenService struct {
	ccv1.UnimplementedTokenServiceServer
	core *Core
	// caDigest returns the digest of the cluster CA (join tokens carry it).
	caDigest func() string
}

// NewTokenService returns the token API; caDigest returns the digest of
// the cluster CA, which join tokens carry.
func NewTokenService(core *Core, caDigest func() string) *TokenService {
	return &TokenService{core: core, caDigest: caDigest}
}

// Register adds the service to a gRPC server.
func (s *TokenService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterTokenServiceServer(g, s)
}

// CreateToken implements TokenService. Roles admin and viewer make API
// tokens; role agent makes a join token (CCTKN-1-<CA digest>-<secret>).
func (s *TokenService) CreateToken(ctx context.Context, req *ccv1.CreateTokenRequest) (*ccv1.CreateTokenResponse, error) {
	role := req.GetRole()
	if role == ccv1.Role_ROLE_UNSPECIFIED {
		role = ccv1.Role_ROLE_VIEWER
	}
	if role != ccv1.Role_ROLE_ADMIN && role != ccv1.Role_ROLE_VIEWER && role != ccv1.Role_ROLE_AGENT && role != ccv1.Role_ROLE_SERVER && role != ccv1.Role_ROLE_JOBS && role != ccv1.Role_ROLE_METRICS {
		return nil, status.Errorf(codes.InvalidArgument, "role %v: use ROLE_ADMIN, ROLE_VIEWER, ROLE_JOBS, ROLE_METRICS, ROLE_AGENT or ROLE_SERVER", req.GetRole())
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
		rec, secret, err = NewJoinTokenRecord(s.caDigest(), req.GetDescription(), req.GetTtl().AsDuration(), s.core.now())
		if err == nil {
			rec.Role = int32(role)
			rec.MaxUses = req.GetMaxUses()
		}
	} else {
		rec, secret, err = NewTokenRecord(role, req.GetDescription(), req.GetTtl().AsDuration(), s.core.now())
	}
	if err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CREATE_TOKEN, &statev1.CreateToken{Token: rec}); err != nil {
		return nil, err
	}
	stored, err := s.core.FSM.Token(rec.Id)
	if err != nil {
		return nil, err
	}
	return &ccv1.CreateTokenResponse{Token: TokenView(stored), Secret: secret}, nil
}

// ListTokens implements TokenService.
func (s *TokenService) ListTokens(ctx context.Context, _ *ccv1.ListTokensRequest) (*ccv1.ListTokensResponse, error) {
	recs, err := s.core.FSM.Tokens()
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
func (s *TokenService) RevokeToken(ctx context.Context, req *ccv1.RevokeTokenRequest) (*ccv1.RevokeTokenResponse, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id: required (see `ccctl token ls`)")
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REVOKE_TOKEN, &statev1.RevokeToken{Id: req.GetId()}); err != nil {
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
