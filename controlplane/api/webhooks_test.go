package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A webhook to a loopback, private, shared or unique local address is
// refused at submit, with the rule and the config key that would allow
// it, unless the servers' config allows its range.
func TestSubmitJobWebhookAddressPolicy(t *testing.T) {
	refused := map[string]string{
		"http://127.0.0.1:8080/hook":  "loopback",
		"http://10.1.2.3/hook":        "private (RFC 1918)",
		"http://100.64.0.7/hook":      "shared address space",
		"http://[fd00::1]:8080/hook":  "unique local",
		"http://169.254.169.254/meta": "link-local",
	}
	srv := testcluster.Start(t)
	jobs := srv.Client().Jobs
	for u, rule := range refused {
		_, err := jobs.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", WebhookUrl: u}})
		wantCode(t, err, codes.InvalidArgument, rule)
		if rule != "link-local" {
			wantCode(t, err, codes.InvalidArgument, "webhooks.allow")
		}
	}
	if _, err := jobs.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", WebhookUrl: "https://203.0.113.7/hook"}}); err != nil {
		t.Fatalf("a public address: %v", err)
	}

	allowed := testcluster.Start(t, func(c *testcluster.Config) {
		c.Webhooks.Allow = []string{"127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "fd00::/8", "169.254.0.0/16"}
	})
	jobs = allowed.Client().Jobs
	for u, rule := range refused {
		_, err := jobs.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox", WebhookUrl: u}})
		if rule == "link-local" {
			wantCode(t, err, codes.InvalidArgument, "never")
		} else if err != nil {
			t.Errorf("%s with the allow-list: %v", u, err)
		}
	}
}
