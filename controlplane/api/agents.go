package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// BlobOpener opens a stored blob by digest (the image service).
type BlobOpener interface {
	OpenBlob(digest string) (io.ReadCloser, int64, error)
}

// AgentServer implements AgentService: join, certificate renewal, the
// session (delegated to the dispatcher), log answers and blob fetches.
type AgentServer struct {
	ccv1.UnimplementedAgentServiceServer
	api   *Server
	ca    func() (*pki.CA, error)
	blobs BlobOpener
}

// NewAgentServer returns the agent-facing service. ca returns the cluster
// CA with its key (from the replicated state).
func NewAgentServer(api *Server, ca func() (*pki.CA, error), blobs BlobOpener) *AgentServer {
	return &AgentServer{api: api, ca: ca, blobs: blobs}
}

var nodeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// Join checks the join token, records the node through raft and signs its
// certificate. Every refusal is Unauthenticated and says why.
func (a *AgentServer) Join(ctx context.Context, req *ccv1.JoinRequest) (*ccv1.JoinResponse, error) {
	tok, err := pki.ParseJoinToken(req.GetToken())
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	ca, err := a.ca()
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(tok.CADigest), []byte(pki.Digest(ca.Cert))) != 1 {
		return nil, status.Error(codes.Unauthenticated, "the join token is for another cluster: its CA digest does not match this cluster's")
	}
	if !nodeNameRE.MatchString(req.GetName()) {
		return nil, status.Errorf(codes.InvalidArgument, "node name %q: use letters, digits, '.', '_' or '-' (at most 63)", req.GetName())
	}
	for k := range req.GetLabels() {
		if k == "" || len(k) > 63 {
			return nil, status.Errorf(codes.InvalidArgument, "label key %q: 1 to 63 characters", k)
		}
	}
	nodeID := newNodeID()
	now := a.api.now()
	certPEM, err := ca.IssueNode(req.GetCsrDer(), nodeID, now, pki.NodeLifetime)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	node := &ccv1.Node{
		Id:        nodeID,
		Name:      req.GetName(),
		Address:   req.GetAddress(),
		Labels:    req.GetLabels(),
		Resources: req.GetResources(),
		Version:   req.GetVersion(),
	}
	err = a.api.propose(ctx, statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: tok.ID(), SecretSha256: tok.SecretHash(), Node: node})
	if errors.Is(err, fsm.ErrTokenInvalid) {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if err != nil {
		return nil, err
	}
	a.api.log.Info("node joined", "node_id", nodeID, "name", node.Name)
	return &ccv1.JoinResponse{NodeId: nodeID, CertificatePem: certPEM, CaPem: ca.CertPEM}, nil
}

func newNodeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "n-" + hex.EncodeToString(b)
}

func nodeOf(ctx context.Context) (string, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.NodeID == "" {
		return "", status.Error(codes.Unauthenticated, auth.ErrNotANode.Error())
	}
	return p.NodeID, nil
}

// RenewCertificate signs a new certificate for the calling node.
func (a *AgentServer) RenewCertificate(ctx context.Context, req *ccv1.RenewCertificateRequest) (*ccv1.RenewCertificateResponse, error) {
	nodeID, err := nodeOf(ctx)
	if err != nil {
		return nil, err
	}
	ca, err := a.ca()
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.IssueNode(req.GetCsrDer(), nodeID, a.api.now(), pki.NodeLifetime)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return &ccv1.RenewCertificateResponse{CertificatePem: certPEM}, nil
}

// Session serves the node's stream.
func (a *AgentServer) Session(stream ccv1.AgentService_SessionServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	return a.api.sessions.Session(nodeID, stream)
}

// SendLogs relays a node's answer to a log request.
func (a *AgentServer) SendLogs(stream ccv1.AgentService_SendLogsServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	return a.api.sessions.SendLogs(nodeID, stream)
}

// FetchBlob streams a stored blob to a node.
func (a *AgentServer) FetchBlob(req *ccv1.FetchBlobRequest, stream ccv1.AgentService_FetchBlobServer) error {
	if _, err := nodeOf(stream.Context()); err != nil {
		return err
	}
	if a.blobs == nil {
		return status.Error(codes.Unimplemented, "this server has no blob store")
	}
	rc, size, err := a.blobs.OpenBlob(req.GetDigest())
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	first := true
	for {
		n, rerr := rc.Read(buf)
		if n > 0 || first {
			msg := &ccv1.FetchBlobResponse{Data: buf[:n]}
			if first {
				msg.Size = size
				first = false
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read blob %s: %w", req.GetDigest(), rerr)
		}
	}
}
