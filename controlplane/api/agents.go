package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/blobstore"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/jobspec"
	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// BlobOpener opens the archive of a loaded image by digest (the image
// service).
type BlobOpener interface {
	OpenBlob(digest string) (io.ReadCloser, int64, error)
}

// AgentServer implements AgentService: join, certificate renewal, the
// session (delegated to the dispatcher), log answers, blob fetches and job
// blob uploads.
type AgentServer struct {
	ccv1.UnimplementedAgentServiceServer
	core   *Core
	ca     func() (*pki.CA, error)
	images BlobOpener
	blobs  *blobs.Store
}

// NewAgentServer returns the agent-facing service. ca returns the cluster
// CA with its key (from the replicated state); images opens image archives
// and store holds job inputs, outputs and logs (either may be nil: a
// server without a blob store).
func NewAgentServer(core *Core, ca func() (*pki.CA, error), images BlobOpener, store *blobs.Store) *AgentServer {
	return &AgentServer{core: core, ca: ca, images: images, blobs: store}
}

var nodeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// Join checks the join token, records the node through raft and signs its
// certificate. The token is checked against this server's state before
// anything is signed or proposed, and failed attempts are throttled per
// source address (Core.JoinLimiter: ResourceExhausted with the wait). Every
// refusal of the token is Unauthenticated and says why.
func (a *AgentServer) Join(ctx context.Context, req *ccv1.JoinRequest) (_ *ccv1.JoinResponse, err error) {
	done, err := a.core.beginJoin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	tok, err := pki.ParseJoinToken(req.GetToken())
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	ca, err := a.ca()
	if err != nil {
		return nil, err
	}
	caPEM, err := a.core.joinCAPEM(tok, "agent")
	if err != nil {
		return nil, err
	}
	if !nodeNameRE.MatchString(req.GetName()) {
		return nil, status.Errorf(codes.InvalidArgument, "node name %q: use letters, digits, '.', '_' or '-' (at most 63)", req.GetName())
	}
	for k := range req.GetLabels() {
		if k == "" || len(k) > 63 {
			return nil, status.Errorf(codes.InvalidArgument, "label key %q: 1 to 63 characters", k)
		}
	}
	if err := a.core.checkJoinToken(ctx, tok, ccv1.Role_ROLE_AGENT); err != nil {
		return nil, err
	}
	nodeID := newNodeID()
	now := a.core.now()
	certPEM, err := ca.IssueNode(req.GetCsrDer(), nodeID, now, pki.NodeLifetime)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	node := &ccv1.Node{
		Id:           nodeID,
		Name:         req.GetName(),
		Address:      req.GetAddress(),
		Labels:       req.GetLabels(),
		Resources:    req.GetResources(),
		Version:      req.GetVersion(),
		CertCaSha256: pki.Digest(ca.Cert),
		CertNotAfter: timestamppb.New(now.Add(pki.NodeLifetime)),
	}
	err = a.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_JOIN_NODE, &statev1.JoinNode{TokenId: tok.ID(), SecretSha256: tok.SecretHash(), Node: node})
	if errors.Is(err, fsm.ErrTokenInvalid) {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if err != nil {
		return nil, err
	}
	a.core.Log.Info("node joined", "node_id", nodeID, "name", node.Name)
	// Every trusted CA, the one the token names first.
	return &ccv1.JoinResponse{NodeId: nodeID, CertificatePem: certPEM, CaPem: caPEM}, nil
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
	now := a.core.now()
	certPEM, err := ca.IssueNode(req.GetCsrDer(), nodeID, now, pki.NodeLifetime)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	// Recorded before the certificate is given out, so that a CA rotation
	// never misses a node that holds one of the new CA.
	if err := a.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_NODE_CERT, &statev1.NodeCert{NodeId: nodeID, CaSha256: pki.Digest(ca.Cert), NotAfter: timestamppb.New(now.Add(pki.NodeLifetime))}); err != nil {
		return nil, err
	}
	return &ccv1.RenewCertificateResponse{CertificatePem: certPEM}, nil
}

// Session serves the node's stream.
func (a *AgentServer) Session(stream ccv1.AgentService_SessionServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	return a.core.Sessions.Session(nodeID, stream)
}

// SendLogs relays a node's answer to a log request.
func (a *AgentServer) SendLogs(stream ccv1.AgentService_SendLogsServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	return a.core.Sessions.SendLogs(nodeID, stream)
}

// SendStats relays a node's answer to a stats request.
func (a *AgentServer) SendStats(ctx context.Context, req *ccv1.SendStatsRequest) (*ccv1.SendStatsResponse, error) {
	nodeID, err := nodeOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.core.Sessions.SendStats(nodeID, req); err != nil {
		return nil, err
	}
	return &ccv1.SendStatsResponse{}, nil
}

// ServeExec relays a node's exec stream to the caller waiting for it.
func (a *AgentServer) ServeExec(stream ccv1.AgentService_ServeExecServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	return a.core.Sessions.ServeExec(nodeID, stream)
}

// FetchBlob streams a stored blob to a node: an image archive, the bundle
// of a kept version of a site, or the input of a job attempt assigned to
// the node.
func (a *AgentServer) FetchBlob(req *ccv1.FetchBlobRequest, stream ccv1.AgentService_FetchBlobServer) error {
	nodeID, err := nodeOf(stream.Context())
	if err != nil {
		return err
	}
	if a.images == nil {
		return status.Error(codes.Unimplemented, "this server has no blob store")
	}
	rc, size, err := a.images.OpenBlob(req.GetDigest())
	if errors.Is(err, fsm.ErrNotFound) && a.blobs != nil {
		if used, _ := a.core.FSM.SiteBundleInUse(req.GetDigest()); used {
			rc, size, err = a.blobs.Open(req.GetDigest())
			if errors.Is(err, blobstore.ErrNotFound) {
				err = fmt.Errorf("site bundle %s is on no server reachable now: %w", req.GetDigest(), fsm.ErrNotFound)
			}
		} else if a.nodeHasInput(nodeID, req.GetDigest()) {
			rc, size, err = a.blobs.Open(req.GetDigest())
			if errors.Is(err, blobstore.ErrNotFound) {
				err = fmt.Errorf("job input %s is on no server reachable now: %w", req.GetDigest(), fsm.ErrNotFound)
			}
		}
	}
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

// nodeHasInput says whether a job attempt assigned to the node has the
// input digest.
func (a *AgentServer) nodeHasInput(nodeID, digest string) bool {
	recs, err := a.core.FSM.NodeContainers(nodeID)
	if err != nil {
		return false
	}
	for _, r := range recs {
		if sb := r.Container.GetSpec().GetSandbox(); sb != nil && sb.InputDigest == digest {
			return true
		}
	}
	return false
}

// Size limits of the blobs an agent uploads for a job attempt.
const (
	// MaxJobLogsBlob bounds a job's stored logs: the agent keeps at most
	// four 10 MiB log files; the rest is room for a compressed copy's
	// worst case and for a larger log configuration.
	MaxJobLogsBlob int64 = 128 << 20
	// outputEntryOverhead is what a tar entry may add to its content (a
	// header and padding); outputFixedOverhead covers the tar end marker
	// and gzip's framing.
	outputEntryOverhead int64 = 2 * 512
	outputFixedOverhead int64 = 1 << 20
)

// maxOutputBlob is the largest output archive of an attempt: its content
// limit, the tar overhead of its most entries, and gzip's worst case on
// incompressible data (about 0.1%).
func maxOutputBlob(sb *ccv1.JobSandbox) int64 {
	limit := sb.GetOutputLimitBytes()
	if limit <= 0 {
		limit = jobspec.DefaultOutputLimitBytes
	}
	files := int64(sb.GetMaxOutputFiles())
	if files <= 0 {
		files = int64(jobspec.DefaultMaxOutputFiles)
	}
	return limit + limit/512 + files*outputEntryOverhead + outputFixedOverhead
}

// UploadBlob stores a job attempt's output or logs from the node that
// runs it: a header naming the attempt's container (which must be
// assigned to the calling node), the kind and the sha256, then chunks. It
// records, through raft, that the node uploaded the blob for the attempt
// (the attempt's report may name no other), and returns once the blob is
// on a majority of the servers; it fails with
// Unavailable when it cannot be, so that the agent sends it again (maybe
// to another server).
func (a *AgentServer) UploadBlob(stream ccv1.AgentService_UploadBlobServer) error {
	ctx := stream.Context()
	nodeID, err := nodeOf(ctx)
	if err != nil {
		return err
	}
	if a.blobs == nil {
		return status.Error(codes.Unimplemented, "this server has no blob store")
	}
	hdr, err := uploadHeader[*ccv1.UploadBlobRequest, *ccv1.UploadBlobHeader](stream.Recv)
	if err != nil {
		return err
	}
	rec, err := a.core.FSM.Container(hdr.GetContainerId())
	if errors.Is(err, fsm.ErrNotFound) {
		return status.Errorf(codes.FailedPrecondition, "container %s does not exist (any more): its job attempt ended or was superseded", hdr.GetContainerId())
	}
	if err != nil {
		return err
	}
	c := rec.Container
	switch {
	case c.JobId == "":
		return invalidArg("container %s is not a job attempt", c.Id)
	case c.NodeId != nodeID:
		return status.Errorf(codes.PermissionDenied, "container %s is not assigned to node %s", c.Id, nodeID)
	}
	var limit int64
	switch hdr.GetKind() {
	case "output":
		limit = maxOutputBlob(c.GetSpec().GetSandbox())
	case "logs":
		limit = MaxJobLogsBlob
	default:
		return invalidArg("kind %q: use output or logs", hdr.GetKind())
	}
	if hdr.GetSha256() == "" {
		return invalidArg("header: sha256 is required")
	}
	r := uploadBody(stream.Recv)
	what := fmt.Sprintf("the %s of job %s", hdr.GetKind(), c.JobId)
	digest, size, have, voters, err := a.blobs.StoreReplicated(ctx, r, blobs.Upload{What: what, Size: hdr.GetSize(), SHA256: hdr.GetSha256(), Limit: limit})
	if err != nil {
		return err
	}
	// Remember that this node uploaded it for this attempt: the attempt's
	// report may name only blobs so recorded (through raft, as the report
	// may reach another server).
	if err := a.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_RECORD_ATTEMPT_UPLOAD, &statev1.RecordAttemptUpload{
		ContainerId: c.Id, NodeId: nodeID, Kind: hdr.GetKind(), Digest: digest}); err != nil {
		return err
	}
	a.core.Log.InfoContext(ctx, "job blob stored", "job_id", c.JobId, "container_id", c.Id, "kind", hdr.GetKind(), "digest", digest, "size", size, "servers", have)
	return stream.SendAndClose(&ccv1.UploadBlobResponse{Digest: digest, Size: size, Have: int32(have), Voters: int32(voters)})
}
