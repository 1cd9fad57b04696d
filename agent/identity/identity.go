// Package identity gives an agent its node identity: it joins a cluster with
// a join token (pinning the cluster CA by the digest the token carries),
// keeps its key, certificate and node id in its data dir, builds the mutual
// TLS configuration of its calls, and renews the certificate before it
// expires. It keeps the cluster's trust record (pki.Trust, updated by the
// session): removed servers are refused, and a CA rotation makes it trust
// the new CA and renew its certificate at once.
package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Files in the agent's data dir.
const (
	fileKey   = "node.key"
	fileCert  = "node.crt"
	fileCA    = "ca.crt"
	fileState = "node.json"
)

// ErrNotJoined means the data dir holds no identity yet.
var ErrNotJoined = errors.New("this agent has not joined a cluster: pass --join ADDR --token TOKEN (a token from `ccctl token create`)")

// Identity is a joined node's identity.
type Identity struct {
	dir string

	mu       sync.RWMutex
	NodeID   string
	Servers  []string // API addresses of the control plane
	cert     tls.Certificate
	leaf     *x509.Certificate
	verifier *pki.Verifier // the trust record: CAs (ca.crt), members and removed servers
	renewNow chan struct{} // poked when the certificate is not from the signing CA
}

type stateFile struct {
	NodeID  string          `json:"node_id"`
	Servers []string        `json:"servers"`
	Members []pki.ServerKey `json:"members,omitempty"`
	Removed []pki.ServerKey `json:"removed,omitempty"`
}

// Load reads the identity from dir, or returns ErrNotJoined.
func Load(dir string) (*Identity, error) {
	data, err := os.ReadFile(filepath.Join(dir, fileState))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotJoined
	}
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil || st.NodeID == "" {
		return nil, fmt.Errorf("%s is damaged (%v): remove the data dir's node files and join again", filepath.Join(dir, fileState), err)
	}
	id := &Identity{dir: dir, NodeID: st.NodeID, Servers: st.Servers, renewNow: make(chan struct{}, 1)}
	certPEM, err := os.ReadFile(filepath.Join(dir, fileCert))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, fileKey))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, fileCA))
	if err != nil {
		return nil, err
	}
	if err := id.setTrust(pki.Trust{CAPEM: caPEM, Members: st.Members, Removed: st.Removed}); err != nil {
		return nil, err
	}
	if err := id.setCert(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return id, nil
}

func (id *Identity) setCert(certPEM, keyPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	id.mu.Lock()
	id.cert, id.leaf = cert, leaf
	id.mu.Unlock()
	return nil
}

func (id *Identity) setTrust(t pki.Trust) error {
	v, err := pki.NewVerifier(t)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	id.mu.Lock()
	id.verifier = v
	id.mu.Unlock()
	return nil
}

// Trust returns the trust record the agent checks servers against.
func (id *Identity) Trust() pki.Trust {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.verifier.Trust()
}

// UpdateTrust takes a trust record a server sent over a connection in
// state from: only a member the agent knows may change what it trusts.
// The record is merged (pki.Trust.Update: removed servers stay removed)
// and saved. When the signing CA is not the one of the agent's
// certificate, RenewLoop renews it at once.
func (id *Identity) UpdateTrust(next pki.Trust, from tls.ConnectionState) (changed bool, err error) {
	id.mu.RLock()
	cur := id.verifier
	id.mu.RUnlock()
	if !cur.FromMember(from) {
		return false, fmt.Errorf("%w: a trust record from a server this node does not know as a member (%s) was ignored", pki.ErrServerNotTrusted, peerID(from))
	}
	merged := cur.Trust().Update(next)
	if merged.Equal(cur.Trust()) {
		return false, nil
	}
	if err := id.setTrust(merged); err != nil {
		return false, err
	}
	if err := id.saveTrust(); err != nil {
		return true, err
	}
	if signing, err := pki.ParseCertPEM(merged.CAPEM); err == nil {
		id.mu.RLock()
		stale := id.leaf.CheckSignatureFrom(signing) != nil
		id.mu.RUnlock()
		if stale {
			select {
			case id.renewNow <- struct{}{}:
			default:
			}
		}
	}
	return true, nil
}

func peerID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return "no certificate"
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

// NotAfter is when the current certificate expires.
func (id *Identity) NotAfter() time.Time {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.leaf.NotAfter
}

// TLSConfig is the mutual TLS configuration for calls to the control plane:
// the node certificate, and a server certificate of this cluster's CA. It
// offers pki.ALPNCluster, so that a server with an operator's certificate
// presents its cluster certificate to the agent, and pki.ALPNGRPC: the
// agent calls only gRPC, which the server then serves with gRPC's own
// transport.
func (id *Identity) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", pki.ALPNCluster, pki.ALPNGRPC},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			id.mu.RLock()
			defer id.mu.RUnlock()
			c := id.cert
			return &c, nil
		},
		// Servers are reached by whatever address the user gave; they are
		// checked by chain and role instead of by name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id.mu.RLock()
			v := id.verifier
			id.mu.RUnlock()
			return v.VerifyServer(cs)
		},
	}
}

// JoinOptions describe the node to the control plane.
type JoinOptions struct {
	Addr      string // control plane API address
	Token     string // join token
	Name      string
	Labels    map[string]string
	Resources *ccv1.Resources
	Address   string
	Version   string
}

// Join joins the cluster and stores the identity in dir.
func Join(ctx context.Context, dir string, o JoinOptions) (*Identity, error) {
	tok, err := pki.ParseJoinToken(o.Token)
	if err != nil {
		return nil, err
	}
	key, csr, err := pki.NewKeyAndCSR(o.Name)
	if err != nil {
		return nil, err
	}
	// Trust nothing but a chain that ends in the CA whose digest the token
	// carries.
	pinCfg := pki.PinnedTLS(tok.CADigest, o.Addr)
	conn, err := grpc.NewClient(o.Addr, grpc.WithTransportCredentials(credentials.NewTLS(pinCfg)))
	if err != nil {
		return nil, fmt.Errorf("--join %q: %w", o.Addr, err)
	}
	defer conn.Close()
	// A deadline travels with the call: the server gives its raft write as
	// long, instead of answering "unavailable" while the join may still be
	// committed.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	resp, err := ccv1.NewAgentServiceClient(conn).Join(ctx, &ccv1.JoinRequest{
		Token: o.Token, CsrDer: csr, Name: o.Name, Labels: o.Labels, Resources: o.Resources, Address: o.Address, Version: o.Version,
	})
	if err != nil {
		return nil, explainJoin(o.Addr, err)
	}
	if err := tok.CheckJoinCA(resp.CaPem); err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id := &Identity{dir: dir, NodeID: resp.NodeId, Servers: []string{o.Addr}, renewNow: make(chan struct{}, 1)}
	if err := id.setTrust(pki.Trust{CAPEM: resp.CaPem}); err != nil {
		return nil, err
	}
	if err := id.setCert(resp.CertificatePem, keyPEM); err != nil {
		return nil, err
	}
	if err := id.save(resp.CertificatePem, keyPEM); err != nil {
		return nil, err
	}
	return id, nil
}

// ErrCAMismatch is a server whose CA is not the one the token pins.
var ErrCAMismatch = pki.ErrCAMismatch

func explainJoin(addr string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch {
	case strings.Contains(msg, ErrCAMismatch.Error()):
		return fmt.Errorf("%s", strings.TrimRight(msg[strings.Index(msg, ErrCAMismatch.Error()):], "\""))
	case st.Code() == codes.Unauthenticated:
		return errors.New(msg)
	case st.Code() == codes.Unavailable:
		return fmt.Errorf("cannot reach the control plane at %s: %s (check --join)", addr, msg)
	default:
		return fmt.Errorf("join failed: %s", msg)
	}
}

func (id *Identity) save(certPEM, keyPEM []byte) error {
	if err := pki.WriteFile(filepath.Join(id.dir, fileKey), keyPEM, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(id.dir, fileCert), certPEM, 0o644); err != nil {
		return err
	}
	return id.saveTrust()
}

// saveTrust writes the trusted CAs and the state file (node id, servers,
// members and removed servers).
func (id *Identity) saveTrust() error {
	id.mu.RLock()
	t := id.verifier.Trust()
	st, err := json.MarshalIndent(stateFile{NodeID: id.NodeID, Servers: id.Servers, Members: t.Members, Removed: t.Removed}, "", "  ")
	id.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(id.dir, fileCA), t.CAPEM, 0o644); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(id.dir, fileState), append(st, '\n'), 0o600)
}

// SetServers records the control plane's server addresses (from the
// session) so that a restarted agent can reach any of them.
func (id *Identity) SetServers(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	id.mu.Lock()
	id.Servers = append([]string(nil), addrs...)
	id.mu.Unlock()
	return id.saveTrust()
}

// ServerList returns the known server addresses.
func (id *Identity) ServerList() []string {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return append([]string(nil), id.Servers...)
}

// Renew asks for a new certificate for a new key and stores both.
func (id *Identity) Renew(ctx context.Context, client ccv1.AgentServiceClient) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := pki.CSRFor(id.NodeID, crypto.Signer(key))
	if err != nil {
		return err
	}
	resp, err := client.RenewCertificate(ctx, &ccv1.RenewCertificateRequest{CsrDer: csr})
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := id.setCert(resp.CertificatePem, keyPEM); err != nil {
		return err
	}
	return id.save(resp.CertificatePem, keyPEM)
}

// RenewLoop renews the certificate when a third of its life is left, or at
// once when a CA rotation asks for it (UpdateTrust), until ctx ends;
// failures are retried every minute.
func (id *Identity) RenewLoop(ctx context.Context, client ccv1.AgentServiceClient, onErr func(error)) {
	for {
		id.mu.RLock()
		nb, na := id.leaf.NotBefore, id.leaf.NotAfter
		id.mu.RUnlock()
		at := na.Add(-na.Sub(nb) / 3)
		wait := time.Until(at)
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-id.renewNow:
		}
		if err := id.Renew(ctx, client); err != nil {
			onErr(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
		}
	}
}
