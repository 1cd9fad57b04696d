package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

func TestWebhookSignedAndRetried(t *testing.T) {
	var calls atomic.Int32
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if !Verify("s3cret", body, r.Header.Get(HeaderSignature)) || r.Header.Get(HeaderJobID) != "j1" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		got <- body
	}))
	defer srv.Close()
	rec := &statev1.JobRecord{WebhookSecret: "s3cret", Job: &ccv1.Job{Id: "j1", State: ccv1.JobState_JOB_STATE_SUCCEEDED,
		Spec: &ccv1.JobSpec{Image: "img", WebhookUrl: srv.URL, WebhookSecret: "s3cret"}}}
	w := &Sender{FirstBackoff: time.Millisecond, Attempts: 5, Policy: allowLoopback}
	if st := w.Deliver(context.Background(), rec); st != fsm.WebhookDelivered {
		t.Fatalf("state %q", st)
	}
	body := <-got
	if !strings.Contains(string(body), `"JOB_STATE_SUCCEEDED"`) || strings.Contains(string(body), "s3cret") {
		t.Fatalf("body: %s", body)
	}
	if calls.Load() != 3 {
		t.Fatalf("calls: %d", calls.Load())
	}

	// A receiver that never accepts: failed after the attempts.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) }))
	defer bad.Close()
	rec.Job.Spec.WebhookUrl = bad.URL
	if st := w.Deliver(context.Background(), rec); st != FailedState {
		t.Fatalf("state %q", st)
	}
}

var allowLoopback = Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func TestWebhookAddressesRefused(t *testing.T) {
	allowed := Policy{Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("169.254.0.0/16"),
	}}
	for addr, want := range map[string]struct {
		rule              string // "": allowed by default
		allowedWithConfig bool
	}{
		"127.0.0.1:8080":              {"loopback", true},
		"[::1]:80":                    {"loopback", true},
		"10.1.2.3:443":                {"private", true},
		"172.16.0.1:443":              {"private", false},
		"192.168.1.1:443":             {"private", false},
		"100.64.1.2:80":               {"shared address space", true},
		"[fd00::1]:80":                {"unique local", true},
		"[fc00::1]:80":                {"unique local", false},
		"[::ffff:10.1.2.3]:80":        {"private", true},
		"203.0.113.7:443":             {"", true},
		"[2001:db8::1]:443":           {"", true},
		"169.254.169.254:80":          {"link-local", false},
		"[fe80::1]:80":                {"link-local", false},
		"0.0.0.0:80":                  {"unspecified", false},
		"224.0.0.1:80":                {"multicast", false},
		"[::ffff:169.254.169.254]:80": {"link-local", false},
	} {
		err := CheckWebhookAddress(addr)
		if want.rule == "" {
			if err != nil {
				t.Errorf("%s: %v, want allowed", addr, err)
			}
			continue
		}
		var denied *DeniedError
		if !errors.As(err, &denied) || !strings.Contains(err.Error(), want.rule) {
			t.Errorf("%s: %v, want refused as %s", addr, err, want.rule)
		}
		if denied != nil && denied.Allowable && !strings.Contains(err.Error(), "webhooks.allow") {
			t.Errorf("%s: %v does not name the config key", addr, err)
		}
		if err := allowed.CheckWebhookAddress(addr); (err == nil) != want.allowedWithConfig {
			t.Errorf("%s with the allow-list: %v, want allowed %v", addr, err, want.allowedWithConfig)
		}
	}
}

// At submit time, literal addresses and names that resolve to refused
// addresses are refused.
func TestWebhookURLChecked(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:8080/hook", "https://10.0.0.5/x", "http://100.64.0.1/", "http://[fd00::1]:80/", "http://localhost:9/", "http://169.254.169.254/latest/meta-data/"} {
		if err := (Policy{}).CheckURL(ctx, u); err == nil {
			t.Errorf("%s: allowed by default", u)
		}
	}
	if err := (Policy{}).CheckURL(ctx, "https://203.0.113.7/hook"); err != nil {
		t.Errorf("a public address: %v", err)
	}
	if err := allowLoopback.CheckURL(ctx, "http://127.0.0.1:8080/hook"); err != nil {
		t.Errorf("an allowed loopback address: %v", err)
	}
}

// At dial time, the sender refuses what the policy refuses, whatever the
// URL says; the state the submitter reads says no more than "failed", and
// the server's log says why.
func TestWebhookDialRefusedAndGeneric(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rec := &statev1.JobRecord{WebhookSecret: "s", Job: &ccv1.Job{Id: "j", Spec: &ccv1.JobSpec{WebhookUrl: srv.URL}}}
	st := (&Sender{Attempts: 3, FirstBackoff: time.Millisecond, Log: log}).Deliver(context.Background(), rec)
	if st != FailedState || calls.Load() != 0 {
		t.Fatalf("delivery to %s by default: %q, %d calls", srv.URL, st, calls.Load())
	}
	if !strings.Contains(logs.String(), "loopback") {
		t.Fatalf("the log does not say why: %s", logs.String())
	}
	// A refused address is not retried: it will not change.
	if n := strings.Count(logs.String(), "job webhook not delivered"); n != 1 {
		t.Fatalf("%d attempts logged, want 1", n)
	}
	// Through a name (as a rebinding name would resolve at dial time).
	u, _ := url.Parse(srv.URL)
	rec.Job.Spec.WebhookUrl = "http://localhost:" + u.Port() + "/"
	if st := (&Sender{Attempts: 1}).Deliver(context.Background(), rec); st != FailedState || calls.Load() != 0 {
		t.Fatalf("delivery to %s by default: %q, %d calls", rec.Job.Spec.WebhookUrl, st, calls.Load())
	}
	// The link-local metadata address: refused, allow-list or not.
	rec.Job.Spec.WebhookUrl = "http://169.254.169.254/latest/meta-data/"
	if st := (&Sender{Attempts: 1, Policy: Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}).Deliver(context.Background(), rec); st != FailedState {
		t.Fatalf("delivery to a link-local address: %q", st)
	}
	// The receiver's answer is not shown either.
	rec.Job.Spec.WebhookUrl = srv.URL
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusTeapot) }))
	defer bad.Close()
	rec.Job.Spec.WebhookUrl = bad.URL
	if st := (&Sender{Attempts: 1, Policy: allowLoopback}).Deliver(context.Background(), rec); st != FailedState {
		t.Fatalf("a refusing receiver: %q", st)
	}
	// Allowed by the config: delivered.
	rec.Job.Spec.WebhookUrl = srv.URL
	if st := (&Sender{Attempts: 1, Policy: allowLoopback}).Deliver(context.Background(), rec); st != fsm.WebhookDelivered || calls.Load() != 1 {
		t.Fatalf("delivery to an allowed address: %q, %d calls", st, calls.Load())
	}
}
