package tracing

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"

	"github.com/containercodes/cc/internal/testing/otlptest"
)

// A call made within a trace is a client span and a server span below
// it; outside a trace the client makes none and sends none, and the server
// makes a root span of an API call but none of an internal one.
func TestGRPCHandlers(t *testing.T) {
	recv := otlptest.Start(t)
	newTP := func(service string) *Provider {
		tp := New(service, "")
		if _, err := tp.Apply(context.Background(), settings(recv, 1)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Shutdown(context.Background()) })
		return tp
	}
	serverTP, clientTP := newTP("server"), newTP("client")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(ServerHandler(serverTP, func(m string) bool { return m == healthpb.Health_List_FullMethodName })))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(ClientHandler(clientTP)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Outside a trace: an API call is a root server span, an internal
	// call nothing.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.List(ctx, &healthpb.HealthListRequest{}); err != nil {
		t.Fatal(err)
	}
	// Within a trace: both calls are client and server spans under it.
	tctx, parent := clientTP.Tracer("test").Start(ctx, "parent")
	if _, err := hc.List(tctx, &healthpb.HealthListRequest{}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans, err := recv.Wait(ctx, func(s []otlptest.Span) bool { return len(s) >= 4 })
	if err != nil {
		t.Fatalf("%v\n%s", err, otlptest.Tree(spans))
	}
	var checkRoot, listClient, listServer, top otlptest.Span
	for _, s := range spans {
		switch {
		case s.Name == "grpc.health.v1.Health/Check" && s.Kind == "server":
			checkRoot = s
		case s.Name == "grpc.health.v1.Health/List" && s.Kind == "client":
			listClient = s
		case s.Name == "grpc.health.v1.Health/List" && s.Kind == "server":
			listServer = s
		case s.Name == "parent":
			top = s
		default:
			t.Errorf("unexpected span %s (%s)", s.Name, s.Kind)
		}
	}
	if checkRoot.SpanID == "" || checkRoot.ParentID != "" {
		t.Errorf("the untraced API call: %+v, want a root server span", checkRoot)
	}
	if listClient.ParentID != top.SpanID || listServer.ParentID != listClient.SpanID || listServer.TraceID != top.TraceID || top.SpanID == "" {
		t.Errorf("the traced internal call: want parent > client > server:\n%s", otlptest.Tree(spans))
	}
}

// Client calls made outside a trace while serving a call share that call's
// context; their stats must not reach the otelgrpc state of the served
// call, which concurrent calls would update at once (go test -race).
func TestUntracedClientCallsLeaveTheServedCallAlone(t *testing.T) {
	srv := ServerHandler(nil, nil)
	cli := ClientHandler(nil)
	served := srv.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: "/cc.v1.ImageService/LoadImage"})
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := cli.TagRPC(served, &stats.RPCTagInfo{FullMethodName: "/cc.v1.PeerService/PushBlob"})
			cli.HandleRPC(ctx, &stats.OutHeader{Client: true, RemoteAddr: addr})
			cli.HandleRPC(ctx, &stats.End{Client: true})
		}()
	}
	wg.Wait()
}
