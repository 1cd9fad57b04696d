package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP stapling: bounds of the wait between fetches.
const (
	ocspMinWait   = time.Minute
	ocspMaxWait   = 24 * time.Hour
	ocspRetryMax  = time.Hour
	ocspMaxAnswer = 1 << 20
)

// startStapler fetches OCSP responses for e in the background when its
// leaf names an OCSP server and its chain carries the issuer, and staples
// each good one to e's certificate; it stops with the server or when the
// entry is retired. A failure only logs: handshakes never wait for it.
func (s *Server) startStapler(e *certEntry) {
	if len(e.leaf.OCSPServer) == 0 {
		return
	}
	if e.issuer == nil {
		s.log.Debug("edge: no OCSP stapling: the chain has no issuer certificate", "cert", e.name)
		return
	}
	ctx, cancel := context.WithCancel(s.base)
	e.stop = cancel
	go s.staple(ctx, e)
}

func (s *Server) staple(ctx context.Context, e *certEntry) {
	backoff := ocspMinWait
	var expires time.Time // of the staple held, zero: none
	for {
		wait, exp, err := s.fetchStaple(ctx, e)
		if err == nil {
			expires, backoff = exp, ocspMinWait
		} else {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("edge: OCSP staple not refreshed", "cert", e.name, "responder", e.leaf.OCSPServer[0], "err", err, "retry_in", backoff)
			if !expires.IsZero() && time.Now().After(expires) {
				s.setStaple(e, nil) // a stale staple would make clients refuse
				expires = time.Time{}
			}
			wait = backoff
			backoff = min(2*backoff, ocspRetryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetchStaple asks the leaf's OCSP responder and staples a good answer;
// wait is when to ask again (half way to the answer's next update).
func (s *Server) fetchStaple(ctx context.Context, e *certEntry) (wait time.Duration, expires time.Time, err error) {
	req, err := ocsp.CreateRequest(e.leaf, e.issuer, nil)
	if err != nil {
		return 0, time.Time{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, e.leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return 0, time.Time{}, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hr.Header.Set("Accept", "application/ocsp-response")
	client := s.opts.OCSPClient
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	resp, err := client.Do(hr)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, time.Time{}, fmt.Errorf("responder answered %s", resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, ocspMaxAnswer))
	if err != nil {
		return 0, time.Time{}, err
	}
	or, err := ocsp.ParseResponseForCert(raw, e.leaf, e.issuer)
	if err != nil {
		return 0, time.Time{}, err
	}
	switch or.Status {
	case ocsp.Good:
	case ocsp.Revoked:
		s.setStaple(e, nil)
		return 0, time.Time{}, errors.New("the certificate is revoked")
	default:
		return 0, time.Time{}, errors.New("the responder does not know the certificate")
	}
	now := time.Now()
	if !or.NextUpdate.IsZero() && !or.NextUpdate.After(now) {
		return 0, time.Time{}, fmt.Errorf("the answer expired at %s", or.NextUpdate.Format(time.RFC3339))
	}
	s.setStaple(e, raw)
	wait = time.Hour
	if !or.NextUpdate.IsZero() {
		wait = or.NextUpdate.Sub(now) / 2
	}
	s.log.Debug("edge: OCSP staple refreshed", "cert", e.name, "next_update", or.NextUpdate)
	return min(max(wait, ocspMinWait), ocspMaxWait), or.NextUpdate, nil
}

// setStaple swaps in a copy of e's certificate carrying staple: a
// handshake in progress keeps the one it loaded.
func (s *Server) setStaple(e *certEntry, staple []byte) {
	c := *e.cert.Load()
	c.OCSPStaple = staple
	e.cert.Store(&c)
}
