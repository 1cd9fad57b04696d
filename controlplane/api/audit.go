package api

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// auditContext is the audit context of a command proposed for the API call
// of ctx: who called which method from where, and what the command
// changes. Nil when ctx is not an API call's (a command the control plane
// writes on its own), which is not audited.
func (c *Core) auditContext(ctx context.Context, payload proto.Message) *statev1.AuditContext {
	call, ok := auth.CallFromContext(ctx)
	if !ok {
		return nil
	}
	p, _ := auth.FromContext(ctx)
	a := &statev1.AuditContext{
		TokenId: p.TokenID, Role: int32(p.Role), NodeId: p.NodeID, ServerId: p.ServerID,
		Method: call.Method, Source: call.Source, Target: auditTarget(payload),
	}
	if c.Raft != nil {
		a.Server = c.Raft.ID()
	}
	// Joins are made with a join token, not an API token: it is the
	// principal.
	switch m := payload.(type) {
	case *statev1.JoinNode:
		if a.TokenId == "" {
			a.TokenId, a.Role = m.TokenId, int32(ccv1.Role_ROLE_AGENT)
		}
	case *statev1.PutServer:
		if a.TokenId == "" && m.TokenId != "" {
			a.TokenId, a.Role = m.TokenId, int32(ccv1.Role_ROLE_SERVER)
		}
	}
	return a
}

// auditTarget names what a command changes: the id (with the name, when
// there is one) of the payload or of the record it carries.
func auditTarget(m proto.Message) string {
	if e, ok := m.(*statev1.RecordExec); ok {
		return execTarget(e)
	}
	return targetOf(m.ProtoReflect(), 2)
}

// execTarget names an exec for the audit trail: the container, the
// command, and how it ended ("box (c-1): exec [/bin/sh] exit 3").
func execTarget(e *statev1.RecordExec) string {
	t := targetOf(e.ProtoReflect(), 0) + ": exec " + fmt.Sprintf("%q", e.GetCommand())
	if e.GetTty() {
		t += " tty"
	}
	switch {
	case e.GetPhase() != "exit":
		t += " started"
	case e.GetError() != "":
		t += " failed: " + e.GetError()
	default:
		t += fmt.Sprintf(" exit %d", e.GetExitCode())
	}
	return t
}

func targetOf(r protoreflect.Message, depth int) string {
	fields := r.Descriptor().Fields()
	str := func(name string) string {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			return ""
		}
		return r.Get(fd).String()
	}
	id, name := str("id"), str("name")
	switch {
	case id != "" && name != "" && id != name:
		return name + " (" + id + ")"
	case id != "":
		return id
	case name != "":
		return name
	}
	if d := str("digest"); d != "" {
		return d
	}
	if depth == 0 {
		return ""
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && r.Has(fd) {
			if t := targetOf(r.Get(fd).Message(), depth-1); t != "" {
				return t
			}
		}
	}
	return ""
}

// AuditService reads the audit trail the state machine keeps.
type AuditService struct {
	ccv1.UnimplementedAuditServiceServer
	core *Core
	// poll bounds how long a watch waits between looks at the state
	// (it also wakes on every applied batch).
	poll time.Duration
}

// NewAuditService returns the audit service over core.
func NewAuditService(core *Core) *AuditService {
	return &AuditService{core: core, poll: 5 * time.Second}
}

// Register adds the service to a gRPC server.
func (s *AuditService) Register(g *grpc.Server) { ccv1.RegisterAuditServiceServer(g, s) }

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// ListAudit lists audit events, newest first, a page at a time. The read
// is linearizable (a call audited through another server a moment ago is
// listed), unless the caller accepts stale data (cc-stale).
func (s *AuditService) ListAudit(ctx context.Context, req *ccv1.ListAuditRequest) (*ccv1.ListAuditResponse, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("cc-stale")) == 0 || md.Get("cc-stale")[0] != "true" {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.core.Raft.Barrier(bctx)
		cancel()
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "cannot serve a linearizable read now (%v): retry, or accept stale data with --stale", err)
		}
	}
	limit := int(req.GetLimit())
	switch {
	case limit < 0:
		return nil, status.Error(codes.InvalidArgument, "limit must not be negative")
	case limit == 0:
		limit = defaultAuditLimit
	case limit > maxAuditLimit:
		limit = maxAuditLimit
	}
	var before uint64
	if req.GetPageToken() != "" {
		n, err := strconv.ParseUint(req.GetPageToken(), 10, 64)
		if err != nil || n == 0 {
			return nil, status.Error(codes.InvalidArgument, "page_token: not one this API gave")
		}
		before = n
	}
	filter := fsm.AuditFilter{Principal: req.GetPrincipal(), Method: req.GetMethod()}
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		filter.Since = req.GetSince().AsTime()
	}
	evs, next, err := s.core.FSM.Audit(filter, before, limit)
	if err != nil {
		return nil, err
	}
	resp := &ccv1.ListAuditResponse{Events: evs}
	if next != 0 {
		resp.NextPageToken = strconv.FormatUint(next, 10)
	}
	return resp, nil
}

// WatchAudit streams the events written after the call (or after
// after_index) that pass the filter, oldest first.
func (s *AuditService) WatchAudit(req *ccv1.WatchAuditRequest, stream ccv1.AuditService_WatchAuditServer) error {
	ctx := stream.Context()
	filter := fsm.AuditFilter{Principal: req.GetPrincipal(), Method: req.GetMethod()}
	after := req.GetAfterIndex()
	if after == 0 {
		last, err := s.core.FSM.LastAuditIndex()
		if err != nil {
			return err
		}
		after = last
	}
	if err := stream.SendHeader(metadata.Pairs(StreamOpenHeader, "true")); err != nil {
		return err
	}
	for {
		changed := s.core.FSM.Watch()
		for {
			evs, last, err := s.core.FSM.AuditAfter(filter, after, 500)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if err := stream.Send(&ccv1.WatchAuditResponse{Event: ev}); err != nil {
					return err
				}
			}
			if last == after {
				break
			}
			after = last
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// refuseJoin records a join refused for its token in the local audit trail.
func (c *Core) refuseJoin(ctx context.Context, tokenID string, role ccv1.Role, err error) {
	if c.Refused == nil {
		return
	}
	call, _ := auth.CallFromContext(ctx)
	c.Refused(&ccv1.AuditEvent{
		Time: timestamppb.New(c.now()), TokenId: tokenID, Role: role, Method: call.Method, Source: call.Source,
		Outcome: auth.OutcomeUnauthenticated, Error: err.Error(),
	})
}
