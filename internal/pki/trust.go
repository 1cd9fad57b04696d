package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// ServerKey names a control-plane server and pins its key (KeyHash).
type ServerKey struct {
	ID        string `json:"id"`
	KeySHA256 []byte `json:"public_key_sha256,omitempty"`
}

// Trust is what a client of the control plane (an agent, ccctl) trusts as
// a server: a certificate chained to one of the CAs, for a server role,
// whose server id (the common name) and key are not those of a removed
// server, and whose key is the one pinned for a member of that id.
//
// Every server holds the CA key, so a removed server can sign itself a
// certificate; the removed list refuses its id and its key, and a CA
// rotation (which the removed server never hears of) refuses everything
// else it could sign. A client takes a new record only from a member it
// already knows (FromMember) and merges it with Update, which never forgets
// a removed server.
type Trust struct {
	// CAPEM is every trusted CA certificate, the signing one first.
	CAPEM   []byte      `json:"ca_pem,omitempty"`
	Members []ServerKey `json:"members,omitempty"`
	Removed []ServerKey `json:"removed,omitempty"`
}

// TrustFromProto converts the API's trust record.
func TrustFromProto(p *ccv1.ClusterTrust) Trust {
	conv := func(in []*ccv1.ServerKey) []ServerKey {
		var out []ServerKey
		for _, k := range in {
			out = append(out, ServerKey{ID: k.GetId(), KeySHA256: k.GetPublicKeySha256()})
		}
		return out
	}
	return Trust{CAPEM: p.GetCaPem(), Members: conv(p.GetMembers()), Removed: conv(p.GetRemoved())}
}

// Proto converts the record for the API.
func (t Trust) Proto() *ccv1.ClusterTrust {
	conv := func(in []ServerKey) []*ccv1.ServerKey {
		var out []*ccv1.ServerKey
		for _, k := range in {
			out = append(out, &ccv1.ServerKey{Id: k.ID, PublicKeySha256: k.KeySHA256})
		}
		return out
	}
	return &ccv1.ClusterTrust{CaPem: t.CAPEM, Members: conv(t.Members), Removed: conv(t.Removed)}
}

// Update merges next, a record a member sent, into t: next's members and
// CAs replace t's (a CA retired by the cluster is no longer trusted), and
// the removed servers of both are kept, so that a server removed once is
// refused for good. An empty CA list in next keeps t's.
func (t Trust) Update(next Trust) Trust {
	out := Trust{CAPEM: next.CAPEM, Members: slices.Clone(next.Members), Removed: slices.Clone(t.Removed)}
	if len(out.CAPEM) == 0 {
		out.CAPEM = t.CAPEM
	}
	for _, r := range next.Removed {
		if !slices.ContainsFunc(out.Removed, func(k ServerKey) bool { return k.ID == r.ID && bytes.Equal(k.KeySHA256, r.KeySHA256) }) {
			out.Removed = append(out.Removed, r)
		}
	}
	// A member listed as removed too (an id reused after a removal, which
	// the cluster refuses anyway) stays refused.
	out.Members = slices.DeleteFunc(out.Members, func(m ServerKey) bool { return out.removed(m.ID, m.KeySHA256) != "" })
	return out
}

// Equal reports whether two records trust the same.
func (t Trust) Equal(o Trust) bool {
	eq := func(a, b ServerKey) bool { return a.ID == b.ID && bytes.Equal(a.KeySHA256, b.KeySHA256) }
	return bytes.Equal(t.CAPEM, o.CAPEM) && slices.EqualFunc(t.Members, o.Members, eq) && slices.EqualFunc(t.Removed, o.Removed, eq)
}

// removed says why a server of that id and key pin is refused as removed,
// or "".
func (t Trust) removed(id string, pin []byte) string {
	for _, r := range t.Removed {
		switch {
		case r.ID == id:
			return fmt.Sprintf("server %s was removed from the cluster", id)
		case len(r.KeySHA256) > 0 && bytes.Equal(r.KeySHA256, pin):
			return fmt.Sprintf("the certificate of %q is for the key of server %s, which was removed from the cluster", id, r.ID)
		}
	}
	return ""
}

// member returns the member of that id.
func (t Trust) member(id string) (ServerKey, bool) {
	for _, m := range t.Members {
		if m.ID == id {
			return m, true
		}
	}
	return ServerKey{}, false
}

// ErrServerNotTrusted wraps every refusal by Trust.Verify after the chain
// check: a removed server, or a member's id with another key.
var ErrServerNotTrusted = errors.New("server not trusted")

// Verifier checks servers against a Trust. It is immutable: build a new
// one when the record changes.
type Verifier struct {
	trust Trust
	pool  *x509.CertPool
}

// NewVerifier compiles t; its CAPEM must hold at least one certificate.
func NewVerifier(t Trust) (*Verifier, error) {
	pool, err := Pool(t.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("trusted CAs: %w", err)
	}
	return &Verifier{trust: t, pool: pool}, nil
}

// Trust returns the record v checks against.
func (v *Verifier) Trust() Trust { return v.trust }

// Pool returns the trusted CAs.
func (v *Verifier) Pool() *x509.CertPool { return v.pool }

// VerifyServer checks the server of a TLS connection: the chain and role
// (VerifyServer), then that it is neither a removed server nor a member's
// id with another key. A server id the record does not know (one that
// joined since) is accepted on the chain alone.
func (v *Verifier) VerifyServer(cs tls.ConnectionState) error {
	if err := VerifyServer(cs, v.pool); err != nil {
		return err
	}
	leaf := cs.PeerCertificates[0]
	id, pin := leaf.Subject.CommonName, KeyHash(leaf)
	if why := v.trust.removed(id, pin); why != "" {
		return fmt.Errorf("%w: %s", ErrServerNotTrusted, why)
	}
	if m, ok := v.trust.member(id); ok && len(m.KeySHA256) > 0 && !bytes.Equal(m.KeySHA256, pin) {
		return fmt.Errorf("%w: the certificate of server %s is for another key than the one the cluster pins for it (%s…)", ErrServerNotTrusted, id, hex.EncodeToString(m.KeySHA256)[:12])
	}
	return nil
}

// FromMember says whether the server of a verified connection is a member
// the record knows by id and key, so that a record it sends may be taken.
// With no members known yet (a client that has only the CA), any server
// that passed VerifyServer is.
func (v *Verifier) FromMember(cs tls.ConnectionState) bool {
	if len(v.trust.Members) == 0 {
		return true
	}
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	leaf := cs.PeerCertificates[0]
	m, ok := v.trust.member(leaf.Subject.CommonName)
	return ok && (len(m.KeySHA256) == 0 || bytes.Equal(m.KeySHA256, KeyHash(leaf)))
}
