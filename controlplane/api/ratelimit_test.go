package api_test

import (
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Agents (node certificates) are never rate-limited, not even from an
// address whose token calls are: their sessions and blob fetches must go on.
func TestRateLimitSparesAgents(t *testing.T) {
	h := newJobHarness(t, func(c *testcluster.Config) {
		c.RateLimit.AddressPerSecond = 0.01
		c.RateLimit.AddressBurst = 10
	})
	nodeID, agent, _ := h.node("n1")
	for i := 0; i < 40; i++ {
		st, err := agent.FetchBlob(ctxT(t), &ccv1.FetchBlobRequest{Digest: "sha256:" + sha([]byte{byte(i)})})
		if err == nil {
			_, err = st.Recv()
		}
		if err == io.EOF || status.Code(err) == codes.ResourceExhausted {
			t.Fatalf("agent call %d: %v", i+1, err)
		}
	}
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		_, err = h.admin.ListQueues(ctxT(t), &ccv1.ListQueuesRequest{})
	}
	wantCode(t, err, codes.ResourceExhausted, "rate limit of source address")
	if !h.srv.Srv.HasSession(nodeID) {
		t.Fatal("the agent's session ended")
	}
}
