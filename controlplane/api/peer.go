package api

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/internal/buildinfo"
	"github.com/containercodes/cc/internal/pki"
	"github.com/containercodes/cc/internal/streamio"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// PeerClient reaches other servers' PeerService.
type PeerClient interface {
	// Cluster reaches a server's ClusterService (for calls that only the
	// leader can serve; the caller's token travels in the metadata).
	Cluster(serverID string) (ccv1.ClusterServiceClient, error)
	RelayLogs(ctx context.Context, serverID string, req *ccv1.RelayLogsRequest) (ccv1.PeerService_RelayLogsClient, error)
	RelayStats(ctx context.Context, serverID string, req *ccv1.RelayStatsRequest) (*ccv1.RelayStatsResponse, error)
	// RelayExec opens an exec through a server (the one holding the
	// node's session).
	RelayExec(ctx context.Context, serverID string) (ccv1.PeerService_RelayExecClient, error)
	JoinServer(ctx context.Context, leaderID string, req *ccv1.JoinServerRequest) (*ccv1.JoinServerResponse, error)
	PeerStatus(ctx context.Context, serverID string) (*ccv1.PeerStatusResponse, error)
}

// PeerServer implements PeerService: server join, forwarded writes, read
// indexes and status between servers.
type PeerServer struct {
	ccv1.UnimplementedPeerServiceServer
	core  *Core
	ca    func() (*pki.CA, error)
	blobs *blobstore.Store
}

// NewPeerServer returns the server-to-server service. Blobs other servers
// push and pull go to and from local, this server's own store: they are
// never passed on.
func NewPeerServer(core *Core, ca func() (*pki.CA, error), local *blobstore.Store) *PeerServer {
	return &PeerServer{core: core, ca: ca, blobs: local}
}

// PushBlob stores a blob another server sends; its digest is checked.
func (p *PeerServer) PushBlob(stream ccv1.PeerService_PushBlobServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	digest := first.GetDigest()
	if digest == "" {
		return status.Error(codes.InvalidArgument, "PushBlob starts with the digest")
	}
	r := streamio.Reader(first.GetData(), func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetData(), err
	})
	_, _, err = p.blobs.Put(stream.Context(), r, digest, 0)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "store blob %s: %v", digest, err)
	}
	return stream.SendAndClose(&ccv1.PushBlobResponse{})
}

// PullBlob sends a stored blob.
func (p *PeerServer) PullBlob(req *ccv1.PullBlobRequest, stream ccv1.PeerService_PullBlobServer) error {
	rc, _, err := p.blobs.Open(req.GetDigest())
	if err != nil {
		return status.Errorf(codes.NotFound, "blob %s: %v", req.GetDigest(), err)
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if err := stream.Send(&ccv1.PullBlobResponse{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return status.Errorf(codes.DataLoss, "read blob %s: %v", req.GetDigest(), rerr)
		}
	}
}

// JoinServer checks a server join token, records the server, signs its
// certificate and adds it to raft as a voter. A follower forwards it. The
// server the joining one called throttles failed attempts per source
// address (Core.JoinLimiter); the leader checks the token against its
// state before it signs or proposes anything.
func (p *PeerServer) JoinServer(ctx context.Context, req *ccv1.JoinServerRequest) (_ *ccv1.JoinServerResponse, err error) {
	if !p.forwarded(ctx) {
		var done func(error)
		if done, err = p.core.beginJoin(ctx); err != nil {
			return nil, err
		}
		defer func() { done(err) }()
	}
	st, err := p.core.Raft.Status()
	if err != nil {
		return nil, err
	}
	if st.LeaderID == "" {
		return nil, status.Error(codes.Unavailable, "the cluster has no leader; retry shortly")
	}
	if st.LeaderID != st.ID {
		return p.core.Peers.JoinServer(ctx, st.LeaderID, req)
	}
	tok, err := pki.ParseJoinToken(req.GetToken())
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	ca, err := p.ca()
	if err != nil {
		return nil, err
	}
	caPEM, err := p.core.joinCAPEM(tok, "server")
	if err != nil {
		return nil, err
	}
	if req.GetServerId() == "" || req.GetRaftAddress() == "" || req.GetApiAddress() == "" {
		return nil, status.Error(codes.InvalidArgument, "a joining server needs an id, a raft address and an API address")
	}
	for _, a := range []string{req.GetRaftAddress(), req.GetApiAddress()} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "address %q: want HOST:PORT", a)
		}
	}
	if err := p.core.checkJoinToken(ctx, tok, ccv1.Role_ROLE_SERVER); err != nil {
		return nil, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, a := range []string{req.GetRaftAddress(), req.GetApiAddress()} {
		h, _, _ := net.SplitHostPort(a)
		hosts = append(hosts, h)
	}
	if req.GetName() != "" {
		hosts = append(hosts, req.GetName())
	}
	certPEM, err := ca.IssueServerFromCSR(req.GetCsrDer(), req.GetServerId(), hosts, p.core.now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	issued, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	// The record pins the key of the request: the joiner's peers refuse a
	// certificate of its id for any other key.
	rec := &statev1.ServerRecord{Id: req.GetServerId(), Name: req.GetName(), RaftAddress: req.GetRaftAddress(), ApiAddress: req.GetApiAddress(), PublicKeySha256: pki.KeyHash(issued)}
	err = p.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_SERVER, &statev1.PutServer{Server: rec, TokenId: tok.ID(), SecretSha256: tok.SecretHash()})
	if errors.Is(err, fsm.ErrTokenInvalid) {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if err != nil {
		return nil, err
	}
	if err := p.core.Raft.AddVoter(req.GetServerId(), req.GetRaftAddress(), 30*time.Second); err != nil {
		return nil, status.Errorf(codes.Unavailable, "add %s to raft: %v", req.GetServerId(), err)
	}
	p.core.Log.Info("server joined", "server_id", req.GetServerId(), "raft", req.GetRaftAddress(), "api", req.GetApiAddress())
	return &ccv1.JoinServerResponse{CertificatePem: certPEM, CaPem: caPEM}, nil
}

// forwarded says whether the call comes from another server of the
// cluster (a join it forwards), which throttled it already.
func (p *PeerServer) forwarded(ctx context.Context) bool {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return false
	}
	leaf := ti.State.VerifiedChains[0][0]
	if pki.Role(leaf) != pki.RoleServer {
		return false
	}
	rec, err := p.core.FSM.Server(leaf.Subject.CommonName)
	return err == nil && !rec.Removed && auth.KeyPinned(rec, leaf) == nil
}

// Apply applies a write a follower forwarded.
func (p *PeerServer) Apply(ctx context.Context, req *ccv1.ApplyRequest) (*ccv1.ApplyResponse, error) {
	res, err := p.core.Raft.ApplyLocal(ctx, req.GetCommand())
	resp := &ccv1.ApplyResponse{Index: res.Index}
	switch {
	case err == nil:
	case errors.Is(err, raftstore.ErrNotAppended):
		resp.Error, resp.ErrorKind = err.Error(), "not_appended"
	case res.Index == 0:
		return nil, status.Errorf(codes.Unavailable, "apply on the leader: %v", err)
	default:
		resp.Error, resp.ErrorKind = err.Error(), fsm.ErrorKind(err)
	}
	return resp, nil
}

// ReadIndex confirms leadership and returns the commit index.
func (p *PeerServer) ReadIndex(ctx context.Context, _ *ccv1.ReadIndexRequest) (*ccv1.ReadIndexResponse, error) {
	idx, err := p.core.Raft.ReadIndex()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &ccv1.ReadIndexResponse{Index: idx}, nil
}

// PeerStatus reports this server's raft view.
func (p *PeerServer) PeerStatus(ctx context.Context, _ *ccv1.PeerStatusRequest) (*ccv1.PeerStatusResponse, error) {
	st, err := p.core.Raft.Status()
	if err != nil {
		return nil, err
	}
	resp := &ccv1.PeerStatusResponse{RaftState: st.State, LastIndex: st.LastIndex, AppliedIndex: st.AppliedIndex, Version: buildinfo.Version}
	resp.Checks, _ = p.core.readiness(ctx)
	if st.LeaderID != st.ID {
		if lc := p.core.Raft.LastContact(); !lc.IsZero() {
			resp.LastContactMs = time.Since(lc).Milliseconds()
		}
	}
	return resp, nil
}

// RelayLogs serves a log stream for another server when the container's
// node has its session here.
func (p *PeerServer) RelayLogs(req *ccv1.RelayLogsRequest, stream ccv1.PeerService_RelayLogsServer) error {
	if !p.core.Sessions.Connected(req.GetNodeId()) {
		return status.Errorf(codes.FailedPrecondition, "node %s has no session here", req.GetNodeId())
	}
	return p.core.Sessions.Logs(stream.Context(), req.GetNodeId(), req.GetContainerId(), req.GetFollow(), req.GetTail(), func(c *ccv1.ContainerLogsResponse) error {
		return stream.Send(&ccv1.RelayLogsResponse{Stream: c.Stream, Data: c.Data})
	})
}

// RelayStats samples containers for another server when their node has
// its session here.
func (p *PeerServer) RelayStats(ctx context.Context, req *ccv1.RelayStatsRequest) (*ccv1.RelayStatsResponse, error) {
	if !p.core.Sessions.Connected(req.GetNodeId()) {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s has no session here", req.GetNodeId())
	}
	rows, err := p.core.Sessions.Stats(ctx, req.GetNodeId(), req.GetContainerIds())
	if err != nil {
		return nil, err
	}
	return &ccv1.RelayStatsResponse{Stats: rows}, nil
}

// Sessions lists the agent sessions this server holds.
func (p *PeerServer) Sessions(ctx context.Context, _ *ccv1.SessionsRequest) (*ccv1.SessionsResponse, error) {
	resp := &ccv1.SessionsResponse{}
	edge := p.core.Sessions.EdgeTraffic()
	for id, t := range p.core.Sessions.Sessions() {
		resp.Sessions = append(resp.Sessions, &ccv1.NodeSession{NodeId: id, LastSeenUnixMs: t.UnixMilli(), Edge: edge[id]})
	}
	return resp, nil
}
