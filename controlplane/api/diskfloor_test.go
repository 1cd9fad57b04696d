package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/containercodes/cc/internal/readiness"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestDiskFloor: below min_free_disk the server refuses job submits and
// uploads with ResourceExhausted, saying how much is free and what to do,
// and /readyz says so; once space is freed, both work again.
func TestDiskFloor(t *testing.T) {
	var free atomic.Uint64
	free.Store(100 << 20)
	h := newJobHarness(t, func(c *testcluster.Config) {
		c.MinFreeDisk.Bytes = 1 << 30
		c.FreeSpace = func(string) (uint64, uint64, error) { return free.Load(), 100 << 30, nil }
	})
	_, bearer := h.token(ccv1.Role_ROLE_ADMIN)
	jobs := h.jobsAs(bearer)
	const why = "the server's data disk has 100MiB free, below the floor of 1GiB: free space or raise min_free_disk"

	_, err := jobs.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	wantCode(t, err, codes.ResourceExhausted, why)
	st, err := jobs.UploadInput(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CloseAndRecv()
	wantCode(t, err, codes.ResourceExhausted, why)
	ist, err := ccv1.NewImageServiceClient(h.srv.Conn(bearer)).LoadImage(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ist.CloseAndRecv()
	wantCode(t, err, codes.ResourceExhausted, why)
	sst, err := ccv1.NewEdgeServiceClient(h.srv.Conn(bearer)).DeploySite(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sst.CloseAndRecv()
	wantCode(t, err, codes.ResourceExhausted, why)
	res := httpGet(t, h.srv, "/readyz", "", nil)
	var rep readiness.Report
	if res.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(res.body, &rep) != nil || rep.Status != readiness.StatusNotReady {
		t.Fatalf("/readyz: %d %s", res.StatusCode, res.body)
	}
	for _, c := range rep.Checks {
		if c.Name == "disk" && (c.OK || !c.Required || c.Message != why) {
			t.Fatalf("/readyz disk check: %+v", c)
		}
		if c.Name != "disk" && !c.OK && c.Required {
			t.Fatalf("/readyz: another check failed: %+v", c)
		}
	}
	// REST: 429.
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, h.srv.URL()+"/v1/jobs", strings.NewReader(`{"spec":{"image":"busybox"}}`))
	req.Header.Set("Authorization", "Bearer "+bearer)
	if r, err := h.srv.HTTPClient().Do(req); err != nil || r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("POST /v1/jobs: %v %v", r, err)
	} else {
		r.Body.Close()
	}

	// Space freed: the answer is measured again within a second.
	free.Store(10 << 30)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = jobs.SubmitJob(ctxT(t), &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("submit after space was freed: %v", err)
	}
	if res := httpGet(t, h.srv, "/readyz", "", nil); res.StatusCode != 200 {
		t.Fatalf("/readyz after space was freed: %d %s", res.StatusCode, res.body)
	}
}
