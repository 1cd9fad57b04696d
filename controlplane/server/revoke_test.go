package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/containercodes/cc/controlplane/auth"
	"github.com/containercodes/cc/internal/testing/testcluster"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// streamEndBound is how long an open stream may outlive its token here: a
// generous bound for a busy machine, far above the recheck interval.
const streamEndBound = 15 * time.Second

// openWatch opens WatchJobs on job with bearer and reads the first message,
// so the stream is surely established before the test changes the token.
func openWatch(t *testing.T, srv *testcluster.Server, bearer, job string) (ccv1.JobService_WatchJobsClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamEndBound+10*time.Second)
	watch, err := ccv1.NewJobServiceClient(srv.Conn(bearer)).WatchJobs(ctx, &ccv1.WatchJobsRequest{Ids: []string{job}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.Job.Id != job {
		cancel()
		t.Fatalf("first watch message: %v, %v", m, err)
	}
	return watch, cancel
}

// awaitStreamEnd reads watch until it ends and checks that it ended with
// Unauthenticated within streamEndBound.
func awaitStreamEnd(t *testing.T, watch ccv1.JobService_WatchJobsClient) {
	t.Helper()
	start := time.Now()
	for {
		_, err := watch.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream ended with %v after %v, want Unauthenticated within %v", err, time.Since(start), streamEndBound)
		}
		if time.Since(start) > streamEndBound {
			t.Fatalf("stream ended after %v, want within %v", time.Since(start), streamEndBound)
		}
		return
	}
}

func queuedJob(t *testing.T, srv *testcluster.Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	sub, err := srv.Client().Jobs.SubmitJob(ctx, &ccv1.SubmitJobRequest{Spec: &ccv1.JobSpec{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	return sub.Job.Id
}

// Finding 10 of issue 14: a stream opened with a token outlived the
// token's revocation.
func TestRevokedTokenEndsOpenStream(t *testing.T) {
	srv := testcluster.Start(t)
	job := queuedJob(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	tok, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	watch, stop := openWatch(t, srv, tok.Secret, job)
	defer stop()
	if _, err := srv.Client().Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: tok.Token.Id}); err != nil {
		t.Fatal(err)
	}
	awaitStreamEnd(t, watch)
}

// Finding 10 of issue 14: a stream outlived its token's expiry.
func TestExpiredTokenEndsOpenStream(t *testing.T) {
	srv := testcluster.Start(t)
	job := queuedJob(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	tok, err := srv.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: "short", Ttl: durationpb.New(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	watch, stop := openWatch(t, srv, tok.Secret, job)
	defer stop()
	awaitStreamEnd(t, watch)
}

// Finding 10 of issue 14: a follower checked tokens against its own state
// without catching up, so a token revoked through the leader still worked
// on a follower that lagged. Here the follower lags for sure: its raft
// traffic is cut (the API, and so read indexes and forwarded writes, still
// flow), and a long heartbeat timeout keeps it following the leader.
func TestFollowerHonoursRevokeThroughLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster")
	}
	c := testcluster.StartCluster(t, 3, func(cfg *testcluster.Config) {
		cfg.Raft.HeartbeatTimeout.Duration = 4 * time.Second
		cfg.Raft.ElectionTimeout.Duration = 4 * time.Second
	})
	leader := c.Leader()
	lag := c.Followers()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := leader.Client().Tokens.CreateToken(ctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_ADMIN, Description: "to revoke"})
	if err != nil {
		t.Fatal(err)
	}
	onLag := ccv1.NewTokenServiceClient(lag.Conn(tok.Secret))
	// The follower knows the token.
	for {
		if _, err := onLag.ListTokens(ctx, &ccv1.ListTokensRequest{}); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("the follower never accepted the new token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c.Partition(lag)
	defer c.Heal()
	if _, err := leader.Client().Tokens.RevokeToken(ctx, &ccv1.RevokeTokenRequest{Id: tok.Token.Id}); err != nil {
		t.Fatal(err)
	}
	// The guarantee is for calls that start DefaultCatchUpMaxAge after the
	// revocation was acknowledged.
	time.Sleep(auth.DefaultCatchUpMaxAge + 100*time.Millisecond)

	// A write with the revoked token through the lagging follower must not
	// happen: it used to be forwarded to the leader and applied there.
	desc := fmt.Sprintf("written with a revoked token %d", time.Now().UnixNano())
	cctx, ccancel := context.WithTimeout(ctx, 8*time.Second)
	_, err = onLag.CreateToken(cctx, &ccv1.CreateTokenRequest{Role: ccv1.Role_ROLE_VIEWER, Description: desc})
	ccancel()
	if err == nil {
		t.Fatal("the lagging follower accepted a call with a token revoked through the leader")
	}
	list, lerr := leader.Client().Tokens.ListTokens(ctx, &ccv1.ListTokensRequest{})
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, tk := range list.Tokens {
		if tk.Description == desc {
			t.Fatalf("a call with a revoked token through the lagging follower created token %s (the call answered %v)", tk.Id, err)
		}
	}
	t.Logf("refused on the lagging follower: %v", err)

	// Caught up again, the follower refuses the token as unauthenticated.
	c.Heal()
	for {
		_, err := onLag.ListTokens(ctx, &ccv1.ListTokensRequest{})
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after healing, the follower answers %v, want Unauthenticated", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
