package auth

import (
	"context"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Call is what the interceptors know of an API call beyond its caller: the
// method and where it came from. The API puts it, with the Principal, into
// the audit context of the commands the call proposes.
type Call struct {
	// Method is the full gRPC method ("/cc.v1.JobService/SubmitJob").
	Method string
	// Source is the caller's address, without the port.
	Source string
}

type callKey struct{}

// WithCall returns ctx carrying c.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFromContext returns the call the interceptors recorded: only calls
// that came in through the API have one.
func CallFromContext(ctx context.Context) (Call, bool) {
	c, ok := ctx.Value(callKey{}).(Call)
	return c, ok
}

// SourceOf is the address a gRPC call came from. A call of the REST
// gateway (over the server's in-memory connection) comes from the address
// the gateway saw, the last X-Forwarded-For entry, which the gateway
// appends itself; that header is believed from the gateway only.
func SourceOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() == "bufconn" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("x-forwarded-for"); len(v) > 0 {
				last := v[len(v)-1]
				return strings.TrimSpace(last[strings.LastIndex(last, ",")+1:])
			}
		}
		return "local"
	}
	return hostOf(p.Addr.String())
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Refusal outcomes of audit events.
const (
	OutcomeUnauthenticated  = "unauthenticated"
	OutcomePermissionDenied = "permission_denied"
)

// WithRefusals makes the authenticator report every refused call (a bad
// credential, or a role that may not call the method) to fn: such calls
// never reach raft, so they are audited by the server that refused them.
func (a *Authenticator) WithRefusals(fn func(*ccv1.AuditEvent)) *Authenticator {
	a.refused = fn
	return a
}

func (a *Authenticator) refuse(method, source, outcome, reason string, p Principal) {
	if a.refused == nil {
		return
	}
	a.refused(&ccv1.AuditEvent{
		Time: timestamppb.New(a.now()), TokenId: p.TokenID, Role: p.Role, NodeId: p.NodeID, ServerId: p.ServerID,
		Method: method, Source: source, Outcome: outcome, Error: reason,
	})
}

func httpMethod(r *http.Request) string { return "HTTP " + r.Method + " " + r.URL.Path }
