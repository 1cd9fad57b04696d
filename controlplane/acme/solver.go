package acme

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// solver answers HTTP-01 and TLS-ALPN-01 challenges through the cluster
// state: Present writes the challenge, which the sessions carry to every
// edge node; Wait holds the CA's validation back until the edge nodes
// have it; CleanUp removes it.
type solver struct {
	propose func(ctx context.Context, t statev1.CommandType, payload proto.Message) (uint64, error)
	// synced waits until the edge nodes have the state at an index.
	synced func(ctx context.Context, index uint64) error
	// grace is a further wait for edge nodes whose sessions are on other
	// servers, which apply the entry a moment later.
	grace time.Duration

	mu   sync.Mutex
	last map[string]uint64 // challenge key → index of its write (Present → Wait)
}

var (
	_ acmez.Solver = (*solver)(nil)
	_ acmez.Waiter = (*solver)(nil)
)

func chalKey(c acme.Challenge) string { return c.Type + "/" + c.Identifier.Value + "/" + c.Token }

// Present implements acmez.Solver.
func (s *solver) Present(ctx context.Context, c acme.Challenge) error {
	ch := &ccv1.ACMEChallenge{Type: c.Type, Host: c.Identifier.Value, Token: c.Token, KeyAuthorization: c.KeyAuthorization}
	if c.Type == acme.ChallengeTypeTLSALPN01 {
		cert, err := acmez.TLSALPN01ChallengeCert(c)
		if err != nil {
			return err
		}
		key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			return err
		}
		ch.CertPem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		ch.KeyPem = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	}
	idx, err := s.propose(ctx, statev1.CommandType_COMMAND_TYPE_PUT_CHALLENGE, &statev1.PutChallenge{Challenge: ch})
	if err != nil {
		return fmt.Errorf("write the %s challenge for %s: %w", c.Type, c.Identifier.Value, err)
	}
	s.mu.Lock()
	s.last[chalKey(c)] = idx
	s.mu.Unlock()
	return nil
}

// Wait implements acmez.Waiter.
func (s *solver) Wait(ctx context.Context, c acme.Challenge) error {
	s.mu.Lock()
	idx := s.last[chalKey(c)]
	s.mu.Unlock()
	if s.synced != nil {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.synced(wctx, idx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.grace):
		return nil
	}
}

// CleanUp implements acmez.Solver.
func (s *solver) CleanUp(ctx context.Context, c acme.Challenge) error {
	s.mu.Lock()
	delete(s.last, chalKey(c))
	s.mu.Unlock()
	_, err := s.propose(context.WithoutCancel(ctx), statev1.CommandType_COMMAND_TYPE_REMOVE_CHALLENGE,
		&statev1.RemoveChallenge{Type: c.Type, Host: c.Identifier.Value, Token: c.Token})
	return err
}
