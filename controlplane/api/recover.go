package api

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// panicMessage is what a caller reads when a handler panicked: no panic
// value and no stack, which may hold internals; those go to the log.
const panicMessage = "internal error: the server failed while handling this call; it is logged on the server"

// RecoverUnary returns a unary interceptor that turns a panic in the rest
// of the chain or the handler into codes.Internal with a plain message and
// logs the panic and its stack on log, so that one bad call cannot take the
// server down. It belongs first in the chain.
func RecoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp interface{}, err error) {
		defer func() {
			if p := recover(); p != nil {
				logPanic(log, info.FullMethod, p)
				resp, err = nil, status.Error(codes.Internal, panicMessage)
			}
		}()
		return handler(ctx, req)
	}
}

// RecoverStream is RecoverUnary for streaming calls. A panic in a goroutine
// the handler started is not caught: handlers must not leave goroutines
// that can panic.
func RecoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				logPanic(log, info.FullMethod, p)
				err = status.Error(codes.Internal, panicMessage)
			}
		}()
		return handler(srv, ss)
	}
}

func logPanic(log *slog.Logger, method string, p any) {
	if log == nil {
		log = slog.Default()
	}
	log.Error("panic in a gRPC handler", "method", method, "panic", p, "stack", string(debug.Stack()))
}
