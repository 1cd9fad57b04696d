package api

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/certinfo"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// CertService implements cc.v1.CertService: certificates as raft records.
// A key goes in with AddCert and never comes out of the API; the sessions
// give it to edge nodes only.
type CertService struct {
	ccv1.UnimplementedCertServiceServer

	core *Core
	log  *slog.Logger
}

// NewCertService returns the certificate API over the core.
func NewCertService(core *Core) *CertService {
	return &CertService{core: core, log: core.Log}
}

// Register adds the service to a gRPC server.
func (s *CertService) Register(g grpc.ServiceRegistrar) {
	ccv1.RegisterCertServiceServer(g, s)
}

// AddCert implements CertService.
func (s *CertService) AddCert(ctx context.Context, req *ccv1.AddCertRequest) (*ccv1.AddCertResponse, error) {
	name := req.GetName()
	if err := fsm.ValidCertName(name, ccv1.CertSource_CERT_SOURCE_MANUAL); err != nil {
		return nil, err
	}
	if len(req.ChainPem) > fsm.MaxCertPEM || len(req.KeyPem) > fsm.MaxCertPEM {
		return nil, invalidArg("certificate %s: the chain and the key are at most %d bytes each", name, fsm.MaxCertPEM)
	}
	ch, err := certinfo.Check([]byte(req.ChainPem), []byte(req.KeyPem), s.core.Now())
	if err != nil {
		return nil, invalidArg("certificate %s: %v", name, err)
	}
	c := certinfo.Describe(ch)
	c.Name, c.Source = name, ccv1.CertSource_CERT_SOURCE_MANUAL
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_CERT, &statev1.PutCert{
		Cert: &statev1.CertRecord{Cert: c, KeyPem: []byte(req.KeyPem)}, Create: !req.Replace}); err != nil {
		return nil, err
	}
	out, err := s.read(name, true)
	if err != nil {
		return nil, err
	}
	s.log.Info("certificate added", "cert", name, "hosts", out.Hosts, "not_after", out.GetNotAfter().AsTime(), "replace", req.Replace)
	return &ccv1.AddCertResponse{Cert: out}, nil
}

// read returns the public view of a certificate: never the key; the
// chain only when asked.
func (s *CertService) read(name string, chain bool) (*ccv1.Cert, error) {
	rec, err := s.core.FSM.Cert(name)
	if err != nil {
		return nil, err
	}
	return s.view(rec, chain)
}

func (s *CertService) view(rec *statev1.CertRecord, chain bool) (*ccv1.Cert, error) {
	c := proto.Clone(rec.GetCert()).(*ccv1.Cert)
	if !chain {
		c.ChainPem = ""
	}
	users, err := s.core.FSM.CertUsers(rec)
	if err != nil {
		return nil, err
	}
	c.UsedBy = users
	return c, nil
}

// ListCerts implements CertService.
func (s *CertService) ListCerts(ctx context.Context, _ *ccv1.ListCertsRequest) (*ccv1.ListCertsResponse, error) {
	recs, err := s.core.FSM.Certs()
	if err != nil {
		return nil, err
	}
	out := &ccv1.ListCertsResponse{}
	for _, r := range recs {
		c, err := s.view(r, false)
		if err != nil {
			return nil, err
		}
		out.Certs = append(out.Certs, c)
	}
	return out, nil
}

// GetCert implements CertService.
func (s *CertService) GetCert(ctx context.Context, req *ccv1.GetCertRequest) (*ccv1.GetCertResponse, error) {
	c, err := s.read(req.GetName(), true)
	if err != nil {
		return nil, err
	}
	return &ccv1.GetCertResponse{Cert: c}, nil
}

// RenewCert implements CertService: the leader's ACME manager renews a
// certificate whose renewal was asked for.
func (s *CertService) RenewCert(ctx context.Context, req *ccv1.RenewCertRequest) (*ccv1.RenewCertResponse, error) {
	if _, err := s.core.FSM.Cert(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_CERT_STATUS, &statev1.CertStatus{Name: req.Name, RequestRenewal: true}); err != nil {
		return nil, err
	}
	c, err := s.read(req.Name, false)
	if err != nil {
		return nil, err
	}
	s.log.Info("certificate renewal requested", "cert", req.Name)
	return &ccv1.RenewCertResponse{Cert: c}, nil
}

// RemoveCert implements CertService.
func (s *CertService) RemoveCert(ctx context.Context, req *ccv1.RemoveCertRequest) (*ccv1.RemoveCertResponse, error) {
	if _, err := s.core.FSM.Cert(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_REMOVE_CERT, &statev1.RemoveCert{Name: req.Name}); err != nil {
		return nil, err
	}
	s.log.Info("certificate removed", "cert", req.Name)
	return &ccv1.RemoveCertResponse{}, nil
}

// RedactSettings returns settings as a read shows them: the ACME external
// account's HMAC key replaced by whether it is set.
func RedactSettings(st *ccv1.Settings) *ccv1.Settings {
	if st.GetEdge().GetAcmeEabHmacKey() == "" {
		return st
	}
	out := proto.Clone(st).(*ccv1.Settings)
	out.Edge.AcmeEabHmacKey, out.Edge.AcmeEabHmacKeySet = "", true
	return out
}
