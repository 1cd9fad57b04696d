package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/containercodes/cc/internal/pki"
)

// defaultCertRenewCheck is how often a server checks whether its own
// certificate is due for renewal.
const defaultCertRenewCheck = time.Minute

// certRenewer keeps the server's certificate short-lived: once two thirds
// of its lifetime have passed (pki.RenewAt) it signs a new one with the
// cluster CA, whose key every server holds in the replicated state, writes
// it to the data dir and puts it in use. New handshakes, on the API port and
// on raft, both sides, present the new certificate; open connections keep
// the one they were made with. No restart is needed.
type certRenewer struct {
	id       *identity
	ca       func() (*pki.CA, error) // the CA with its key; an error until the state has it
	now      func() time.Time
	lifetime time.Duration
	log      *slog.Logger
}

// renewIfDue renews the certificate when it is due, and reports whether it
// did. Until the CA key is known (a server that joined and has not received
// the state yet) it returns the error and changes nothing.
func (r *certRenewer) renewIfDue() (bool, error) {
	now := r.now()
	cur := r.id.current()
	if now.Before(pki.RenewAt(cur.Leaf)) {
		return false, nil
	}
	// During a CA rotation the certificate of the new CA takes over.
	if promoted, err := r.id.promoteNext(); err != nil || promoted {
		if promoted {
			r.log.Info("server certificate due: the new CA's certificate held for the rotation is in use from now on", "not_after", r.id.current().Leaf.NotAfter)
		}
		return promoted, err
	}
	ca, err := r.ca()
	if err != nil {
		return false, err
	}
	if err := r.id.issue(ca, now, r.lifetime); err != nil {
		return false, err
	}
	next := r.id.current().Leaf
	r.log.Info("server certificate renewed", "old_not_after", cur.Leaf.NotAfter, "not_after", next.NotAfter, "renew_at", pki.RenewAt(next))
	return true, nil
}

// run checks every interval until ctx ends. A failed renewal is logged and
// tried again at the next check; the certificate in use stays valid for a
// third of its lifetime after it is due.
func (r *certRenewer) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.renewIfDue(); err != nil {
			r.log.Warn("server certificate due for renewal but not renewed; retrying", "not_after", r.id.current().Leaf.NotAfter, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
