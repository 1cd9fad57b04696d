package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
	w := &Sender{FirstBackoff: time.Millisecond, Attempts: 5}
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
	if st := w.Deliver(context.Background(), rec); !strings.HasPrefix(st, "failed: 5 attempts") {
		t.Fatalf("state %q", st)
	}
}

func TestWebhookAddressesRefused(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "10.1.2.3:443": true, "[::1]:80": true, "203.0.113.7:443": true,
		"169.254.169.254:80": false, "[fe80::1]:80": false, "0.0.0.0:80": false, "224.0.0.1:80": false, "[::ffff:169.254.169.254]:80": false,
	} {
		if err := CheckWebhookAddress(addr); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", addr, err, ok)
		}
	}
	// The default client refuses to connect, whatever the URL says.
	rec := &statev1.JobRecord{WebhookSecret: "s", Job: &ccv1.Job{Id: "j", Spec: &ccv1.JobSpec{WebhookUrl: "http://169.254.169.254/latest/meta-data/"}}}
	st := (&Sender{Attempts: 1}).Deliver(context.Background(), rec)
	if !strings.Contains(st, "link-local") {
		t.Fatalf("delivery to a link-local address: %q", st)
	}
}
