package api

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// panicky is a gRPC service, described by hand, whose Boom methods panic.
var panicky = grpc.ServiceDesc{
	ServiceName: "test.Panicky",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Boom", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(emptypb.Empty)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) {
				var m map[string]int
				m["x"] = 1 // a nil map: panics
				return &emptypb.Empty{}, nil
			}
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Panicky/Boom"}, h)
		}},
		{MethodName: "Ok", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(emptypb.Empty)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Panicky/Ok"}, h)
		}},
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "BoomStream",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			panic("boom in a stream")
		},
	}},
}

// TestRecoverInterceptors: a panicking handler, unary or streaming, answers
// Internal with a plain message, its stack is logged, and the server goes
// on serving (issue 14, #5).
func TestRecoverInterceptors(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(RecoverUnary(log), ErrorInterceptor),
		grpc.ChainStreamInterceptor(RecoverStream(log), StreamErrorInterceptor),
	)
	srv.RegisterService(&panicky, struct{}{})
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		err := conn.Invoke(ctx, "/test.Panicky/Boom", &emptypb.Empty{}, &emptypb.Empty{})
		if st, _ := status.FromError(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "nil map") {
			t.Fatalf("a panicking unary handler: %v; want Internal without the panic value", err)
		}
		stream, err := conn.NewStream(ctx, &panicky.Streams[0], "/test.Panicky/BoomStream")
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
			t.Fatal(err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		err = stream.RecvMsg(&emptypb.Empty{})
		if st, _ := status.FromError(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "boom") {
			t.Fatalf("a panicking stream handler: %v; want Internal without the panic value", err)
		}
		if err := conn.Invoke(ctx, "/test.Panicky/Ok", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
			t.Fatalf("after a panic the server does not serve: %v", err)
		}
	}
	out := logs.String()
	for _, want := range []string{`"msg":"panic in a gRPC handler"`, `"method":"/test.Panicky/Boom"`, `"method":"/test.Panicky/BoomStream"`, "assignment to entry in nil map", `"stack":"goroutine `, "recover_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
}
