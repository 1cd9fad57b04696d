// Package webhook delivers jobs' completion webhooks: a signed POST of the
// finished job, retried with backoff, never to link-local, multicast or
// unspecified addresses, and to loopback, private, shared and unique local
// ones only when the operator's allow-list says so (Policy). The leader's webhook loop (package leader) decides
// which to send and records their outcome.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/metrics"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Webhook request headers.
const (
	// HeaderSignature carries "sha256=<hex>", the HMAC-SHA256 of the body
	// keyed with the job's webhook secret.
	HeaderSignature = "X-CC-Signature"
	// HeaderEvent is "job.finished".
	HeaderEvent = "X-CC-Event"
	// HeaderJobID is the job's id.
	HeaderJobID = "X-CC-Job-Id"
	// HeaderDelivery numbers the delivery attempt, from 1.
	HeaderDelivery = "X-CC-Delivery-Attempt"
)

// Sign returns the signature header value of a body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header value in constant time.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// ConfigKey is the server configuration key of the webhook allow-list.
const ConfigKey = "webhooks.allow"

// rule is a range of addresses webhooks are not sent to.
type rule struct {
	prefix netip.Prefix
	name   string
	// always: not even the allow-list lets a webhook reach it.
	always bool
}

var rules = func() []rule {
	var rs []rule
	add := func(name string, always bool, cidrs ...string) {
		for _, c := range cidrs {
			rs = append(rs, rule{netip.MustParsePrefix(c), name, always})
		}
	}
	add("unspecified", true, "0.0.0.0/8", "::/128")
	add("link-local", true, "169.254.0.0/16", "fe80::/10")
	add("multicast", true, "224.0.0.0/4", "ff00::/8")
	add("loopback", false, "127.0.0.0/8", "::1/128")
	add("private (RFC 1918)", false, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
	add("shared address space (100.64.0.0/10)", false, "100.64.0.0/10")
	add("unique local (fc00::/7)", false, "fc00::/7")
	return rs
}()

// Policy says which addresses completion webhooks may be sent to. Never to
// unspecified, link-local (cloud metadata services live at
// 169.254.169.254) or multicast addresses; to loopback, private (RFC 1918),
// shared (100.64.0.0/10) and unique local (fc00::/7) addresses only when
// Allow, the operator's allow-list (webhooks.allow in the server config),
// has a prefix that holds them; to every other address.
type Policy struct {
	Allow []netip.Prefix
	// AllowFunc, when set, is asked for the allow-list at every check
	// instead of Allow: a server reloads webhooks.allow while its
	// senders run.
	AllowFunc func() []netip.Prefix
}

func (p Policy) allow() []netip.Prefix {
	if p.AllowFunc != nil {
		return p.AllowFunc()
	}
	return p.Allow
}

// DeniedError is an address a webhook may not be sent to, and the rule
// that says so.
type DeniedError struct {
	Addr netip.Addr
	// Rule names the range: "loopback", "link-local", ...
	Rule string
	// Allowable: the server config's allow-list could let it through.
	Allowable bool
}

func (e *DeniedError) Error() string {
	if e.Allowable {
		return fmt.Sprintf("webhooks are not sent to %s (%s addresses) unless the servers' config allows its range (%s, e.g. [webhooks] allow = [\"%s\"])",
			e.Addr, e.Rule, ConfigKey, netip.PrefixFrom(e.Addr, e.Addr.BitLen()))
	}
	return fmt.Sprintf("webhooks are never sent to %s (%s addresses)", e.Addr, e.Rule)
}

// CheckAddr refuses an IP address a webhook may not be sent to, with a
// *DeniedError.
func (p Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, r := range rules {
		if !r.prefix.Contains(ip) {
			continue
		}
		if !r.always {
			for _, a := range p.allow() {
				if a.Contains(ip) {
					return nil
				}
			}
		}
		return &DeniedError{Addr: ip, Rule: r.name, Allowable: !r.always}
	}
	return nil
}

// CheckWebhookAddress refuses an "ip:port" a webhook may not be sent to.
func (p Policy) CheckWebhookAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}

// CheckWebhookAddress refuses an "ip:port" a webhook may not be sent to
// under the default policy (no allow-list).
func CheckWebhookAddress(address string) error { return Policy{}.CheckWebhookAddress(address) }

// lookupTimeout bounds the name resolution of CheckURL.
const lookupTimeout = 2 * time.Second

// CheckURL refuses, at submit time, a webhook URL whose host is an address
// the policy refuses, or a name that resolves to one. A name that does not
// resolve now passes: the dial-time check (Client) refuses whatever it
// resolves to when the webhook is sent, so a name that changes its
// addresses meanwhile gains nothing.
func (p Policy) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		return p.CheckAddr(ip)
	}
	if host == "" {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, ip := range ips {
		if err := p.CheckAddr(ip); err != nil {
			return fmt.Errorf("%s resolves to %s: %w", host, ip, err)
		}
	}
	return nil
}

// Client returns the HTTP client that posts webhooks under the policy: it
// checks every address it connects to, whatever the URL's name resolves
// to at that moment, so that a job's submitter cannot make the control
// plane call what the policy refuses (by DNS rebinding either).
func (p Policy) Client() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, // a proxy would connect in the policy's place
			DialContext: (&net.Dialer{
				Timeout: 10 * time.Second,
				Control: func(_, address string, _ syscall.RawConn) error {
					return p.CheckWebhookAddress(address)
				},
			}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
		},
	}
}

// Sender delivers completion webhooks: a POST of the finished job as JSON,
// signed, retried with exponential backoff on errors and non-2xx answers
// (not to an address the policy refuses: that will not change).
type Sender struct {
	// Client posts; nil is Policy.Client().
	Client *http.Client
	// Policy says where webhooks may go (when Client is nil).
	Policy Policy
	// Attempts is how many times a webhook is tried; default 8.
	Attempts int
	// FirstBackoff is the wait after the first failure, doubled after each
	// one up to MaxBackoff; defaults 1s and 5m.
	FirstBackoff, MaxBackoff time.Duration
	Log                      *slog.Logger
	// Metrics counts attempts and outcomes; nil: none.
	Metrics *metrics.Metrics
}

// Body is a webhook's JSON body: the job as the API shows it.
func Body(rec *statev1.JobRecord) ([]byte, error) {
	j := proto.Clone(rec.Job).(*ccv1.Job)
	if j.Spec != nil {
		j.Spec.WebhookSecret = ""
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(&ccv1.WatchJobsResponse{Job: j})
}

// FailedState is the state recorded for a webhook that was not delivered.
// The job's submitter reads it, so it says no more: why (a refused
// address, a connection refused, a timeout, the receiver's answer) would
// let a submitter probe what the servers reach. The servers' log says why.
const FailedState = "failed: webhook delivery failed"

// Deliver posts a finished job's webhook until it is accepted, the attempts
// run out or ctx ends, and returns the state to record: "delivered" or
// FailedState (each failure is logged with its cause). It returns "" when
// ctx ended first (a new leader tries again).
func (w *Sender) Deliver(ctx context.Context, rec *statev1.JobRecord) string {
	url := rec.Job.GetSpec().GetWebhookUrl()
	body, err := Body(rec)
	if err != nil {
		w.logFailure(rec, 0, 0, err)
		w.Metrics.WebhookDone(metrics.WebhookFailed)
		return FailedState
	}
	attempts, backoff, maxBackoff := w.Attempts, w.FirstBackoff, w.MaxBackoff
	if attempts <= 0 {
		attempts = 8
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	client := w.Client
	if client == nil {
		client = w.Policy.Client()
		defer client.CloseIdleConnections()
	}
	var last error
	for i := 1; i <= attempts; i++ {
		last = w.post(ctx, client, url, rec, body, i)
		if last == nil {
			w.Metrics.WebhookAttempt(metrics.WebhookOK)
			w.Metrics.WebhookDone(metrics.WebhookDelivered)
			return fsm.WebhookDelivered
		}
		if ctx.Err() != nil {
			return ""
		}
		w.logFailure(rec, i, attempts, last)
		var denied *DeniedError
		if errors.As(last, &denied) {
			w.Metrics.WebhookAttempt(metrics.WebhookDenied)
		} else {
			w.Metrics.WebhookAttempt(metrics.WebhookError)
		}
		if errors.As(last, &denied) || i == attempts {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ""
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
	w.Metrics.WebhookDone(metrics.WebhookFailed)
	return FailedState
}

func (w *Sender) logFailure(rec *statev1.JobRecord, attempt, attempts int, err error) {
	if w.Log != nil {
		w.Log.Warn("job webhook not delivered", "job", rec.Job.Id, "attempt", attempt, "of", attempts, "err", err)
	}
}

func (w *Sender) post(ctx context.Context, client *http.Client, url string, rec *statev1.JobRecord, body []byte, attempt int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cc-controlplane")
	req.Header.Set(HeaderEvent, "job.finished")
	req.Header.Set(HeaderJobID, rec.Job.Id)
	req.Header.Set(HeaderDelivery, fmt.Sprint(attempt))
	req.Header.Set(HeaderSignature, Sign(rec.WebhookSecret, body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
