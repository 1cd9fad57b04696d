package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/internal/pki"
)

// followCA keeps the server in step with the cluster CA in the state: when
// a rotation or a retirement changes the trusted CAs, the server trusts the
// new set at its next handshakes, writes it to tls/ca.crt, has its own
// certificate reissued by the signing CA (same key, so its pin holds), and
// records which CA signed it (so that `ccctl ca status` knows who still
// holds a certificate of a retiring CA). It checks at every state change,
// and every interval in case a step failed.
func (s *Server) followCA(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	for {
		w := s.fsm.Watch()
		if err := s.syncCA(ctx, log); err != nil && ctx.Err() == nil && err.Error() != lastErr {
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
	if s.id.current().Leaf.CheckSignatureFrom(trust.cas[0]) != nil {
		ca, err := s.clusterCA()
		if err != nil {
			return fmt.Errorf("reissue the server certificate: %w", err)
		}
		if err := s.id.issue(ca, s.now(), s.certLifetime()); err != nil {
			return fmt.Errorf("reissue the server certificate: %w", err)
		}
		log.Info("server certificate reissued by the signing cluster CA", "ca_sha256", pki.Digest(ca.Cert), "not_after", s.id.current().Leaf.NotAfter)
	}
	if rec, err := s.fsm.Server(s.raft.ID()); err == nil && rec.CertCaSha256 == s.id.issuerDigest() {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.recordSelf(rctx)
}
