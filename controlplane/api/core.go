package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/session"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/secprofile"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Sessions is what the API uses of the agent sessions this server holds
// (the session package's dispatcher).
type Sessions interface {
	// Session serves a node's stream until it ends.
	Session(nodeID string, stream ccv1.AgentService_SessionServer) error
	// SendLogs relays a node's answer to a log request.
	SendLogs(nodeID string, stream ccv1.AgentService_SendLogsServer) error
	// Logs streams a container's logs from a node whose session is here.
	Logs(ctx context.Context, nodeID, containerID string, follow bool, tail int64, fn func(*ccv1.ContainerLogsResponse) error) error
	// Stats samples containers on a node whose session is here.
	Stats(ctx context.Context, nodeID string, containerIDs []string) ([]*ccv1.ContainerStats, error)
	// SendStats relays a node's answer to a stats request.
	SendStats(nodeID string, req *ccv1.SendStatsRequest) error
	// OpenExec asks a node whose session is here to open an exec stream
	// for a container, and returns it.
	OpenExec(ctx context.Context, nodeID, containerID string) (*session.ExecPipe, error)
	// ServeExec hands a node's exec stream to the caller waiting for it.
	ServeExec(nodeID string, stream ccv1.AgentService_ServeExecServer) error
	// Connected says whether the node's session is here.
	Connected(nodeID string) bool
	// LastSeen is when this server last heard from the node.
	LastSeen(nodeID string) (time.Time, bool)
	// Sessions lists the nodes with a session here and when each was last
	// heard from.
	Sessions() map[string]time.Time
	// EdgeTraffic lists, for the nodes with a session here that run the
	// edge, what their edge served as of their last heartbeat (the
	// returned values are not changed afterwards).
	EdgeTraffic() map[string]*ccv1.EdgeTraffic
	// EdgeTrafficOf is EdgeTraffic of one node (nil: none here).
	EdgeTrafficOf(nodeID string) *ccv1.EdgeTraffic
}

// Core is what every service of the API shares: the raft node, its state
// machine, the agent sessions this server holds and the other servers.
// Services read its fields and write through Propose; none reaches into
// another service.
type Core struct {
	Raft     *raftstore.Store
	FSM      *fsm.FSM
	Sessions Sessions
	// Peers reaches the other servers; nil on a lone server.
	Peers PeerClient
	Log   *slog.Logger
	// Now is the clock commands are stamped with; nil is time.Now.
	Now func() time.Time
	// JoinLimiter throttles failed joins per source address; nil: none.
	JoinLimiter *JoinLimiter
	// Refused records a call refused before raft (a join with a bad
	// token) in the server's local audit trail; nil: not recorded.
	Refused func(*ccv1.AuditEvent)
	// Disk is the free-space floor of the data disk; nil: none.
	Disk *DiskFloor
	// Health runs this server's readiness checks (/readyz); nil: none
	// reported.
	Health func(ctx context.Context) []*ccv1.ReadinessCheck
	// OtherSessions lists the agent sessions the other servers hold (one
	// that does not answer lists none); nil on a lone server.
	OtherSessions func(ctx context.Context) []*ccv1.NodeSession
}

// readiness runs the server's checks, and says whether every required
// one passed.
func (c *Core) readiness(ctx context.Context) ([]*ccv1.ReadinessCheck, bool) {
	if c.Health == nil {
		return nil, false
	}
	checks := c.Health(ctx)
	for _, ch := range checks {
		if ch.Required && !ch.Ok {
			return checks, false
		}
	}
	return checks, true
}

// now reads the core's clock.
func (c *Core) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Propose encodes one command stamped with the core's clock and applies it
// through raft (forwarded to the leader when this server is not). A
// command proposed for an API call carries the call's audit context (the
// caller, method, source and target from ctx), from which the state
// machine writes its audit record.
func (c *Core) Propose(ctx context.Context, t statev1.CommandType, payload proto.Message) error {
	_, err := c.Raft.ProposeAudited(ctx, t, payload, c.now(), c.auditContext(ctx, payload))
	return err
}

// joinCAPEM is what a join answers as the cluster's CAs: every trusted CA,
// the one the token names first. A token naming no trusted CA is refused
// (Unauthenticated); role is the token's role, for the message.
func (c *Core) joinCAPEM(tok pki.JoinToken, role string) ([]byte, error) {
	cl, err := c.FSM.Cluster()
	if err != nil {
		return nil, err
	}
	caPEM, ok := fsm.TrustedCAPEMFirst(cl, tok.CADigest)
	if !ok {
		return nil, status.Errorf(codes.Unauthenticated, "the join token is for another cluster, or for a cluster CA retired since: its CA digest matches no CA this cluster trusts (create a new one with `ccctl token create --role %s`)", role)
	}
	return caPEM, nil
}

// checkJoinToken checks a join token against this server's state before
// anything is signed or proposed, so that a wrong guess costs no
// certificate and no raft entry. A token this server does not know yet
// (created a moment ago through another server) is looked for again after
// catching up with the leader. The error is Unauthenticated and says why.
func (c *Core) checkJoinToken(ctx context.Context, tok pki.JoinToken, role ccv1.Role) error {
	rec, err := c.FSM.Token(tok.ID())
	if errors.Is(err, fsm.ErrNotFound) {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		berr := c.Raft.Barrier(bctx)
		cancel()
		if berr == nil {
			rec, err = c.FSM.Token(tok.ID())
		}
	}
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return err
	}
	if err != nil {
		rec = nil
	}
	if err := fsm.CheckJoinToken(rec, tok.SecretHash(), role, c.now()); err != nil {
		c.refuseJoin(ctx, tok.ID(), role, err)
		return status.Error(codes.Unauthenticated, err.Error())
	}
	return nil
}

// ResolveImage finds the loaded image a user-typed name (like "busybox")
// refers to, after normalizing it. Errors wrap ErrInvalidArgument or
// fsm.ErrNotFound.
func (c *Core) ResolveImage(name string) (*ccv1.Image, error) {
	return resolveImage(c.FSM, name)
}

// nodeLogs streams a container's logs from its node, through the server
// that holds the node's session when it is not this one.
func (c *Core) nodeLogs(ctx context.Context, nodeID, containerID string, follow bool, tail int64, send func(*ccv1.ContainerLogsResponse) error) error {
	if c.Sessions.Connected(nodeID) || c.Peers == nil {
		return c.Sessions.Logs(ctx, nodeID, containerID, follow, tail, send)
	}
	return c.relayLogs(ctx, nodeID, containerID, follow, tail, send)
}

// relayLogs finds the server that holds the node's session and streams the
// logs through it.
func (c *Core) relayLogs(ctx context.Context, nodeID, containerID string, follow bool, tail int64, send func(*ccv1.ContainerLogsResponse) error) error {
	st, err := c.Raft.Status()
	if err != nil {
		return err
	}
	rreq := &ccv1.RelayLogsRequest{NodeId: nodeID, ContainerId: containerID, Follow: follow, Tail: tail}
	for _, srv := range st.Servers {
		if srv.ID == st.ID {
			continue
		}
		rs, err := c.Peers.RelayLogs(ctx, srv.ID, rreq)
		if err != nil {
			continue
		}
		first := true
		for {
			m, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				if first && status.Code(err) == codes.FailedPrecondition {
					break // not this server
				}
				return err
			}
			first = false
			if err := send(&ccv1.ContainerLogsResponse{Stream: m.Stream, Data: m.Data}); err != nil {
				return err
			}
		}
	}
	return status.Errorf(codes.Unavailable, "node %s is not connected to any server now, so its logs cannot be read", nodeID)
}

// caps are the most one job or container may ask for: the cluster's limit
// settings and, with nodeBound, what its largest node has. A job is bound
// by the nodes (nothing could run it); a container or service is not: it
// waits, pending with the reason, until a node that fits joins.
func (c *Core) caps(nodeBound bool) (jobspec.Caps, error) {
	st, err := c.FSM.Settings()
	if err != nil {
		return jobspec.Caps{}, err
	}
	if !nodeBound {
		// No read of every node for a container or a service: with
		// thousands of nodes that read was most of a create call.
		return jobspec.CapsOf(st.GetLimits(), nil), nil
	}
	nodes, err := c.FSM.Nodes()
	if err != nil {
		return jobspec.Caps{}, err
	}
	return jobspec.CapsOf(st.GetLimits(), nodes), nil
}

// mayUsePrivilege refuses a spec whose security profile needs privilege
// (privileged, or no seccomp filter) unless the caller has an admin token
// and the cluster's security.allow_privileged setting is on.
func (c *Core) mayUsePrivilege(ctx context.Context, spec *ccv1.ContainerSpec) error {
	what, ok := secprofile.NeedsPrivilege(spec.GetSecurity())
	if !ok || spec.GetSandbox() != nil {
		return nil
	}
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	if p.Role != ccv1.Role_ROLE_ADMIN {
		return status.Errorf(codes.PermissionDenied, "%s needs an admin token (this is token %s, role %s); run it without %s, or ask an admin", what, p.TokenID, auth.RoleName(p.Role), what)
	}
	st, err := c.FSM.Settings()
	if err != nil {
		return err
	}
	if !st.GetSecurity().GetAllowPrivileged() {
		return status.Errorf(codes.PermissionDenied, "%s is off in this cluster: an admin may turn it on with `ccctl cluster settings --allow-privileged=true` (it lets containers take over their node), or run without %s", what, what)
	}
	return nil
}
