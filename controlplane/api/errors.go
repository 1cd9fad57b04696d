// Package api implements the cc.v1 gRPC services of the control plane, one
// type per service, each over a shared Core (raft, state machine, agent
// sessions, peers). Reads come from the local state machine; writes are
// commands proposed through raft. Blobs are kept by controlplane/blobs.
// Errors are mapped to gRPC status codes in one place, ErrorInterceptor.
package api

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
)

// ErrInvalidArgument marks a request the caller must fix.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrorInterceptor turns the errors handlers return into gRPC status codes.
func ErrorInterceptor(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (interface{}, error) {
	resp, err := handler(ctx, req)
	return resp, ToStatus(err)
}

// StreamErrorInterceptor is ErrorInterceptor for streaming calls.
func StreamErrorInterceptor(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return ToStatus(handler(srv, ss))
}

// ToStatus maps an error to a gRPC status error; a status error passes through.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, fsm.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, fsm.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, fsm.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, fsm.ErrQuotaExceeded):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, fsm.ErrUnknownCommand), errors.Is(err, fsm.ErrUnsupportedVersion):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, fsm.ErrNotInitialized):
		return status.Error(codes.Unavailable, "the cluster is still starting: "+err.Error())
	case errors.Is(err, raftstore.ErrNotLeader):
		return status.Error(codes.Unavailable, err.Error()+"; retry shortly")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
