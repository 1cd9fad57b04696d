package testcluster_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// A leader partitioned away loses its leadership to the majority and
// cannot serve linearizable reads; healed, it catches up.
func TestPartitionLeader(t *testing.T) {
	c := testcluster.StartCluster(t, 3)
	old := c.Leader()
	c.Partition(old)

	deadline := time.Now().Add(30 * time.Second)
	var next *testcluster.Server
	for next == nil || old.Srv.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no new leader on the majority side within 30s")
		}
		time.Sleep(20 * time.Millisecond)
		for _, s := range c.Servers {
			if s != old && s.Srv.IsLeader() {
				next = s
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := next.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Description: "during the partition"}); err != nil {
		t.Fatalf("write on the majority side: %v", err)
	}
	if _, err := old.Client().Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("linearizable read on the isolated server: %v, want Unavailable", err)
	}

	c.Heal()
	for {
		r, err := old.Client().Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
		if err == nil {
			found := false
			for _, tok := range r.Tokens {
				found = found || tok.Description == "during the partition"
			}
			if !found {
				t.Fatal("a linearizable read after heal misses the write made during the partition")
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("read on the healed server: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
