// Package webhook delivers jobs' completion webhooks: a signed POST of the
// finished job, retried with backoff, never to link-local, multicast or
// unspecified addresses. The leader's webhook loop (package leader) decides
// which to send and records their outcome.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
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

// defaultClient posts webhooks. It refuses to connect to link-local
// addresses (cloud metadata services live at 169.254.169.254),
// multicast and unspecified ones, whatever the URL's name resolves to, so
// a job's submitter cannot make the control plane call them.
var defaultClient = &http.Client{
	Timeout: 15 * time.Second,
	Transport: &http.Transport{
		DialContext: (&net.Dialer{
			Timeout: 10 * time.Second,
			Control: func(_, address string, _ syscall.RawConn) error {
				return CheckWebhookAddress(address)
			},
		}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
	},
}

// CheckWebhookAddress refuses an "ip:port" a webhook may not be sent to.
func CheckWebhookAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook address %q: %w", address, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("webhooks are not sent to %s (link-local, multicast or unspecified addresses)", ip)
	}
	return nil
}

// Sender delivers completion webhooks: a POST of the finished job as JSON,
// signed, retried with exponential backoff on errors and non-2xx answers.
type Sender struct {
	Client *http.Client
	// Attempts is how many times a webhook is tried; default 8.
	Attempts int
	// FirstBackoff is the wait after the first failure, doubled after each
	// one up to MaxBackoff; defaults 1s and 5m.
	FirstBackoff, MaxBackoff time.Duration
	Log                      *slog.Logger
}

// Body is a webhook's JSON body: the job as the API shows it.
func Body(rec *statev1.JobRecord) ([]byte, error) {
	j := proto.Clone(rec.Job).(*ccv1.Job)
	if j.Spec != nil {
		j.Spec.WebhookSecret = ""
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(&ccv1.WatchJobsResponse{Job: j})
}

// Deliver posts a finished job's webhook until it is accepted, the attempts
// run out or ctx ends, and returns the state to record: "delivered" or
// "failed: <why>". It returns "" when ctx ended first (a new leader tries
// again).
func (w *Sender) Deliver(ctx context.Context, rec *statev1.JobRecord) string {
	url := rec.Job.GetSpec().GetWebhookUrl()
	body, err := Body(rec)
	if err != nil {
		return "failed: " + err.Error()
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
		client = defaultClient
	}
	var last error
	for i := 1; i <= attempts; i++ {
		last = w.post(ctx, client, url, rec, body, i)
		if last == nil {
			return fsm.WebhookDelivered
		}
		if ctx.Err() != nil {
			return ""
		}
		if w.Log != nil {
			w.Log.Warn("job webhook not delivered", "job", rec.Job.Id, "attempt", i, "of", attempts, "err", last)
		}
		if i == attempts {
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
	return fmt.Sprintf("failed: %d attempts, the last: %v", attempts, last)
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
