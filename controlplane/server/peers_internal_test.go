package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// TestNeverSent: a call to a port that refuses connections was never sent
// (a forwarded write may be retried with the next leader); a failure
// after the call reached a server was not.
func TestNeverSent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = ccv1.NewPeerServiceClient(conn).Apply(ctx, &ccv1.ApplyRequest{})
	if !neverSent(err) {
		t.Fatalf("a call to a closed port: %v; want it counted as never sent", err)
	}
	for _, e := range []error{
		status.Error(codes.Unavailable, "transport is closing"),
		status.Error(codes.Unavailable, "connection reset by peer"),
		status.Error(codes.DeadlineExceeded, "Error while dialing"),
		context.Canceled,
		nil,
	} {
		if neverSent(e) {
			t.Errorf("%v counted as never sent", e)
		}
	}
}
