package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TrustService implements cc.v1.TrustService: the trust record clients
// keep, and the rotation of the cluster CA.
type TrustService struct {
	ccv1.UnimplementedTrustServiceServer

	core *Core
}

// NewTrustService returns the trust API over the core.
func NewTrustService(core *Core) *TrustService { return &TrustService{core: core} }

// Register adds the service to a gRPC server.
func (s *TrustService) Register(g grpc.ServiceRegistrar) { ccv1.RegisterTrustServiceServer(g, s) }

// GetTrust implements TrustService.
func (s *TrustService) GetTrust(context.Context, *ccv1.GetTrustRequest) (*ccv1.GetTrustResponse, error) {
	t, err := s.core.FSM.Trust()
	if err != nil {
		return nil, err
	}
	return &ccv1.GetTrustResponse{Trust: t.Proto()}, nil
}

// GetCAStatus implements TrustService.
func (s *TrustService) GetCAStatus(context.Context, *ccv1.GetCAStatusRequest) (*ccv1.GetCAStatusResponse, error) {
	st, err := s.status()
	if err != nil {
		return nil, err
	}
	return &ccv1.GetCAStatusResponse{Status: st}, nil
}

// RotateCA implements TrustService.
func (s *TrustService) RotateCA(ctx context.Context, _ *ccv1.RotateCARequest) (*ccv1.RotateCAResponse, error) {
	cl, err := s.core.FSM.Cluster()
	if err != nil {
		return nil, err
	}
	cur, err := pki.ParseCA(cl.CaCertPem, cl.CaKeyPem)
	if err != nil {
		return nil, err
	}
	next, err := pki.NextCA(cur, s.core.now())
	if err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_ROTATE_CA, &statev1.RotateCA{CaCertPem: next.CertPEM, CaKeyPem: next.KeyPEM}); err != nil {
		return nil, err
	}
	s.core.Log.Info("cluster CA rotated: the new CA signs from now on; the old one is trusted until `ccctl ca retire`", "ca_sha256", pki.Digest(next.Cert), "old_ca_sha256", pki.Digest(cur.Cert))
	st, err := s.status()
	if err != nil {
		return nil, err
	}
	return &ccv1.RotateCAResponse{Status: st}, nil
}

// RetireCA implements TrustService.
func (s *TrustService) RetireCA(ctx context.Context, req *ccv1.RetireCARequest) (*ccv1.RetireCAResponse, error) {
	st, err := s.status()
	if err != nil {
		return nil, err
	}
	if n := len(st.Pending); n > 0 && !req.Force {
		first := st.Pending[0]
		return nil, status.Errorf(codes.FailedPrecondition, "%d servers or nodes still hold a certificate of a CA being retired (first: %s %s %s): wait until `ccctl ca status` lists none (agents renew within a minute of their session seeing the rotation), or retire with --force and join those nodes again", n, first.Kind, first.Id, first.Name)
	}
	if len(st.Cas) < 2 {
		return nil, status.Error(codes.FailedPrecondition, "no CA is being retired: the cluster trusts only its signing CA (start a rotation with `ccctl ca rotate`)")
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_RETIRE_CA, &statev1.RetireCA{}); err != nil {
		return nil, err
	}
	s.core.Log.Info("retired cluster CAs are no longer trusted", "retired", len(st.Cas)-1, "forced_pending", len(st.Pending))
	if st, err = s.status(); err != nil {
		return nil, err
	}
	return &ccv1.RetireCAResponse{Status: st}, nil
}

// status describes the trusted CAs and, during a rotation, who still
// holds a certificate of a CA being retired.
func (s *TrustService) status() (*ccv1.CAStatus, error) {
	cl, err := s.core.FSM.Cluster()
	if err != nil {
		return nil, err
	}
	st := &ccv1.CAStatus{}
	rest := fsm.TrustedCAPEM(cl)
	for i := 0; ; i++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trusted CA %d: %w", i, err)
		}
		st.Cas = append(st.Cas, &ccv1.CAInfo{Sha256: pki.Digest(c), Subject: c.Subject.CommonName,
			NotBefore: timestamppb.New(c.NotBefore), NotAfter: timestamppb.New(c.NotAfter), Signing: i == 0})
	}
	if len(st.Cas) < 2 {
		return st, nil
	}
	signing := st.Cas[0].Sha256
	servers, err := s.core.FSM.Servers()
	if err != nil {
		return nil, err
	}
	for _, r := range servers {
		if !r.Removed && r.CertCaSha256 != signing {
			st.Pending = append(st.Pending, &ccv1.CAHolder{Kind: "server", Id: r.Id, Name: r.Name, CaSha256: r.CertCaSha256})
		}
	}
	nodes, err := s.core.FSM.Nodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.CertCaSha256 != signing {
			st.Pending = append(st.Pending, &ccv1.CAHolder{Kind: "node", Id: n.Id, Name: n.Name, CaSha256: n.CertCaSha256})
		}
	}
	sort.SliceStable(st.Pending, func(i, j int) bool { return st.Pending[i].Kind > st.Pending[j].Kind })
	return st, nil
}
