package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
)

// followCA keeps the server in step with the cluster CA in the state. A
// rotation is staged so that no client is cut off:
//
//   - `ccctl ca rotate`: the new CA signs node certificates from now on and
//     every server and client trusts both CAs; each server gets a
//     certificate of the new CA for its key (tls/server-next.crt) but goes
//     on presenting the old CA's, so that agents and ccctl contexts that
//     know only the old CA still trust it while they learn the new one
//     (sessions tell agents at once, ccctl refreshes its context).
//   - `ccctl ca retire`: each server presents its new certificate and
//     trusts only the new CA.
//
// The server writes the trusted CAs to tls/ca.crt and records which CA its
// newest certificate is from (so that `ccctl ca status` knows who is not
// ready). It checks at every state change, and every interval in case a
// step failed.
func (s *Server) followCA(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	var done caSyncKey // what the last successful step saw
	for {
		w := s.fsm.Watch()
		// Most state changes are not about the CA: a step that would see
		// what the last successful one saw is skipped (it checks
		// signatures, which a busy server cannot afford at every write).
		key, kerr := s.caSyncKey()
		if kerr == nil && key == done && !key.zero() {
			select {
			case <-ctx.Done():
				return
			case <-w:
			case <-t.C:
				done = caSyncKey{} // the periodic step runs in full
			}
			continue
		}
		err := s.syncCA(ctx, log)
		if err == nil {
			done, _ = s.caSyncKey()
		} else {
			done = caSyncKey{}
		}
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			log.Warn("cluster CA change not followed yet; retrying", "err", err)
			lastErr = err.Error()
		} else if err == nil {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-w:
		case <-t.C:
		}
	}
}

// caSyncKey is what a step of followCA depends on: the trusted CAs in the
// state, the certificates this server holds, and what its server record
// says of them.
type caSyncKey struct {
	bundle   string
	cur      *tls.Certificate
	next     *tls.Certificate
	recorded string
}

func (k caSyncKey) zero() bool { return k == caSyncKey{} }

func (s *Server) caSyncKey() (caSyncKey, error) {
	cl, err := s.fsm.Cluster()
	if err != nil {
		return caSyncKey{}, err
	}
	k := caSyncKey{bundle: string(fsm.TrustedCAPEM(cl)), cur: s.id.current(), next: s.id.next.Load()}
	if rec, err := s.fsm.Server(s.raft.ID()); err == nil {
		k.recorded = rec.CertCaSha256
	}
	return k, nil
}

// syncCA does one step of followCA.
func (s *Server) syncCA(ctx context.Context, log *slog.Logger) error {
	cl, err := s.fsm.Cluster()
	if errors.Is(err, fsm.ErrNotInitialized) {
		return nil
	}
	if err != nil {
		return err
	}
	bundle := fsm.TrustedCAPEM(cl)
	trust := s.id.trust.Load()
	if !bytes.Equal(trust.pem, bundle) {
		next, err := newCATrust(bundle)
		if err != nil {
			return err
		}
		if err := pki.WriteFile(filepath.Join(s.id.tlsDir, fileCACert), bundle, 0o644); err != nil {
			return err
		}
		s.id.trust.Store(next)
		trust = next
		log.Info("trusted cluster CAs changed", "signing_ca_sha256", pki.Digest(next.cas[0]), "trusted", len(next.cas))
	}
	signing := trust.cas[0]
	cur := s.id.current().Leaf
	switch {
	case cur.CheckSignatureFrom(signing) == nil:
		if s.id.next.Load() != nil {
			s.id.dropNext()
		}
	case len(trust.cas) > 1 && trust.issuer(cur) != nil:
		// Rotating: keep presenting the old CA's certificate, and hold one
		// of the new CA ready.
		if n := s.id.next.Load(); n == nil || n.Leaf.CheckSignatureFrom(signing) != nil {
			ca, err := s.clusterCA()
			if err != nil {
				return fmt.Errorf("issue a certificate of the new CA: %w", err)
			}
			if err := s.id.issueNext(ca, s.now(), s.certLifetime()); err != nil {
				return fmt.Errorf("issue a certificate of the new CA: %w", err)
			}
			log.Info("certificate of the new cluster CA ready; the old CA's stays in use until it is retired", "ca_sha256", pki.Digest(ca.Cert))
		}
	default:
		// The CA of the certificate in use was retired.
		promoted, err := s.id.promoteNext()
		if err != nil {
			return err
		}
		if !promoted {
			ca, err := s.clusterCA()
			if err != nil {
				return fmt.Errorf("reissue the server certificate: %w", err)
			}
			if err := s.id.issue(ca, s.now(), s.certLifetime()); err != nil {
				return fmt.Errorf("reissue the server certificate: %w", err)
			}
		}
		log.Info("server certificate of the signing cluster CA in use", "ca_sha256", pki.Digest(signing), "not_after", s.id.current().Leaf.NotAfter)
	}
	if rec, err := s.fsm.Server(s.raft.ID()); err == nil && rec.CertCaSha256 == s.id.issuerDigest() {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.recordSelf(rctx)
}
