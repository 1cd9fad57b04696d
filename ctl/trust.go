package ctl

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/containercodes/cc/internal/pki"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// trustRefreshEvery is how often ccctl refreshes a context's trust record
// (after a successful command).
const trustRefreshEvery = 10 * time.Minute

// refreshTrust refreshes the context's trust record from the server the
// client talks to, when that server is a member the record knows (or the
// record knows no member yet), and saves it in the config file. It does
// nothing for settings that do not come from a context, and (unless force)
// when the record was refreshed less than trustRefreshEvery ago. It
// reports whether the record changed.
func (c *Client) refreshTrust(ctx context.Context, force bool) (bool, error) {
	t := c.target
	if c.verifier == nil || t.ctxPath == "" || !force && time.Since(t.checked) < trustRefreshEvery {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var p peer.Peer
	resp, err := c.Trust.GetTrust(ctx, &ccv1.GetTrustRequest{}, grpc.Peer(&p))
	if err != nil {
		return false, err
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || !c.verifier.FromMember(info.State) {
		return false, nil // taken only from a member the context knows
	}
	cur := c.verifier.Trust()
	next := cur.Update(pki.TrustFromProto(resp.GetTrust()))
	cfg, err := LoadContexts(t.ctxPath)
	if err != nil {
		return false, err
	}
	cx := cfg.Contexts[t.ctxName]
	if cx == nil || cx.CACert != string(t.caPEM) {
		return false, nil // changed by another ccctl since: leave it
	}
	cx.CACert, cx.Members, cx.Removed, cx.TrustCheckedAt = string(next.CAPEM), next.Members, next.Removed, time.Now().UTC()
	if err := cfg.Save(t.ctxPath); err != nil {
		return false, err
	}
	return !next.Equal(cur), nil
}
