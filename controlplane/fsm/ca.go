package fsm

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/internal/pki"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// maxRetiringCAs bounds the CAs a cluster trusts besides the signing one:
// each rotation adds one until RetireCA.
const maxRetiringCAs = 4

// applyRotateCA makes a new CA the signing one and keeps the old one
// trusted (its certificate only: nothing is signed with it any more).
func applyRotateCA(tx *txn, _ time.Time, msg proto.Message) error {
	m := msg.(*statev1.RotateCA)
	if len(m.CaCertPem) == 0 || len(m.CaKeyPem) == 0 {
		return fmt.Errorf("%w: a CA rotation needs the new CA's certificate and key", ErrInvalid)
	}
	b := tx.Bucket(bucketCluster)
	var cl statev1.ClusterRecord
	if err := get(b, string(keyCluster), &cl); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(cl.RetiringCaCertPem) >= maxRetiringCAs {
		return fmt.Errorf("%w: %d CAs are still being retired: finish with `ccctl ca retire` before rotating again", ErrInvalid, len(cl.RetiringCaCertPem))
	}
	cl.RetiringCaCertPem = append([][]byte{cl.CaCertPem}, cl.RetiringCaCertPem...)
	cl.CaCertPem, cl.CaKeyPem = m.CaCertPem, m.CaKeyPem
	tx.touched.all() // sessions send the new trust record
	return put(b, string(keyCluster), &cl)
}

// applyRetireCA ends the trust in every CA but the signing one.
func applyRetireCA(tx *txn, _ time.Time, _ proto.Message) error {
	b := tx.Bucket(bucketCluster)
	var cl statev1.ClusterRecord
	if err := get(b, string(keyCluster), &cl); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(cl.RetiringCaCertPem) == 0 {
		return nil
	}
	cl.RetiringCaCertPem = nil
	tx.touched.all()
	return put(b, string(keyCluster), &cl)
}

// applyNodeCert records the CA and expiry of a node's new certificate.
func applyNodeCert(tx *txn, _ time.Time, msg proto.Message) error {
	m := msg.(*statev1.NodeCert)
	nodes := tx.Bucket(bucketNodes)
	var n ccv1.Node
	if err := get(nodes, m.NodeId, &n); err != nil {
		return fmt.Errorf("node %s: %w", m.NodeId, err)
	}
	n.CertCaSha256, n.CertNotAfter = m.CaSha256, m.NotAfter
	tx.touched.record(n.Id)
	return put(nodes, n.Id, &n)
}

// TrustedCAPEM is every CA certificate the cluster trusts, the signing one
// first.
func TrustedCAPEM(cl *statev1.ClusterRecord) []byte {
	out := append([]byte(nil), cl.GetCaCertPem()...)
	for _, c := range cl.GetRetiringCaCertPem() {
		out = append(out, c...)
	}
	return out
}

// Trust is the cluster's trust record: the servers not removed with their
// key pins, the removed ones, and the trusted CAs.
func (f *FSM) Trust() (pki.Trust, error) {
	cl, err := f.Cluster()
	if err != nil {
		return pki.Trust{}, err
	}
	recs, err := f.Servers()
	if err != nil {
		return pki.Trust{}, err
	}
	t := pki.Trust{CAPEM: TrustedCAPEM(cl)}
	for _, r := range recs {
		k := pki.ServerKey{ID: r.Id, KeySHA256: r.PublicKeySha256}
		if r.Removed {
			t.Removed = append(t.Removed, k)
		} else {
			t.Members = append(t.Members, k)
		}
	}
	return t, nil
}

// TrustedCAPEMFirst is TrustedCAPEM with the CA whose pki.Digest is digest
// first (what a join answers: the CA its token names, then the others), and
// whether the cluster trusts a CA of that digest at all.
func TrustedCAPEMFirst(cl *statev1.ClusterRecord, digest string) ([]byte, bool) {
	var first, rest []byte
	for _, c := range append([][]byte{cl.GetCaCertPem()}, cl.GetRetiringCaCertPem()...) {
		if cert, err := pki.ParseCertPEM(c); err == nil && pki.Digest(cert) == digest && first == nil {
			first = c
		} else {
			rest = append(rest, c...)
		}
	}
	return append(first, rest...), first != nil
}
