package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// execPipe is an exec's stream to the agent running it, directly (the
// node's session is here) or through the server that holds the session.
type execPipe interface {
	Send(*ccv1.ExecRequest) error
	Recv() (*ccv1.ExecResponse, error)
	Close()
}

// ExecService runs commands in running containers (ExecService): the
// stream goes to the node's agent, through the server that holds its
// session when that is not this one. Admin only (package auth); each exec
// is recorded in the audit trail when it starts and when it ends.
type ExecService struct {
	ccv1.UnimplementedExecServiceServer
	core *Core
}

// NewExecService returns the exec service over core.
func NewExecService(core *Core) *ExecService { return &ExecService{core: core} }

// Register adds the service to a gRPC server.
func (s *ExecService) Register(g *grpc.Server) { ccv1.RegisterExecServiceServer(g, s) }

// Exec implements ExecService.
func (s *ExecService) Exec(stream ccv1.ExecService_ExecServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "an exec starts with a start message naming the container and the command")
	}
	if start.GetAttach() {
		start.Args = nil
	} else if len(start.GetArgs()) == 0 || start.GetArgs()[0] == "" {
		return status.Error(codes.InvalidArgument, "no command to run: give it after the container, as `ccctl exec box -- /bin/sh`")
	}
	rec, err := s.startedContainer(stream.Context(), start.GetContainer())
	if err != nil {
		return err
	}
	c := rec.Container
	if c.GetJobId() != "" || c.GetSpec().GetSandbox() != nil {
		return status.Errorf(codes.FailedPrecondition, "container %s is a job attempt: jobs are sandboxed and cannot be entered", c.Name)
	}
	if c.NodeId == "" {
		return status.Errorf(codes.FailedPrecondition, "container %s has not been placed on a node yet, so nothing can run in it", c.Name)
	}
	if c.GetStatus().GetState() != ccv1.ContainerState_CONTAINER_STATE_RUNNING {
		return status.Errorf(codes.FailedPrecondition, "container %s is not running (%s): start it first", c.Name, stateWord(c.GetStatus().GetState()))
	}
	command := start.GetArgs()
	if start.GetAttach() {
		command = []string{"(attach)"}
	}
	audit := &statev1.RecordExec{Id: c.Id, Name: c.Name, Command: command, Tty: start.GetTty(), Phase: "start"}
	if err := s.core.Propose(ctx, statev1.CommandType_COMMAND_TYPE_RECORD_EXEC, audit); err != nil {
		return fmt.Errorf("record the exec in the audit trail (nothing was run): %w", err)
	}
	code, runErr := s.run(ctx, stream, c, first)
	end := &statev1.RecordExec{Id: c.Id, Name: c.Name, Command: command, Tty: start.GetTty(), Phase: "exit", ExitCode: code}
	if runErr != nil {
		end.Error = runErr.Error()
	}
	// The record of the end is written even when the caller went away.
	if err := s.core.Propose(context.WithoutCancel(ctx), statev1.CommandType_COMMAND_TYPE_RECORD_EXEC, end); err != nil {
		s.core.Log.Warn("cannot record the end of an exec in the audit trail", "container_id", c.Id, "err", err)
	}
	return runErr
}

// run pipes the caller's stream to the agent's until the process exits,
// and returns its exit code.
func (s *ExecService) run(ctx context.Context, stream ccv1.ExecService_ExecServer, c *ccv1.Container, first *ccv1.ExecRequest) (int32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := first.GetStart()
	start.Container = c.Id
	pipe, err := s.core.openExec(ctx, c.NodeId, c.Id)
	if err != nil {
		return -1, err
	}
	defer pipe.Close()
	if err := pipe.Send(first); err != nil {
		return -1, status.Errorf(codes.Unavailable, "node %s: send the exec: %v", c.NodeId, err)
	}
	// The caller's messages go on until it closes its side or the
	// process ends (cancel).
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if m.GetStart() != nil {
				continue // only the first message starts
			}
			if pipe.Send(m) != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		pipe.Close()
	}()
	for {
		m, err := pipe.Recv()
		if errors.Is(err, io.EOF) {
			return -1, status.Errorf(codes.Unavailable, "node %s ended the exec without an exit status", c.NodeId)
		}
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
				return -1, err
			}
			return -1, status.Errorf(codes.Unavailable, "node %s: the exec stream broke: %v", c.NodeId, err)
		}
		if e := m.GetExit(); e != nil && e.GetError() != "" {
			return -1, status.Errorf(codes.FailedPrecondition, "node %s: %s", c.NodeId, e.GetError())
		}
		if err := stream.Send(m); err != nil {
			return -1, err
		}
		if e := m.GetExit(); e != nil {
			return e.GetCode(), nil
		}
	}
}

// stateWord is a container state as users type it ("exited").
func stateWord(st ccv1.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "CONTAINER_STATE_"))
}

// openExec opens an exec stream to the node's agent: through its session
// here, or through the server that holds it.
func (c *Core) openExec(ctx context.Context, nodeID, containerID string) (execPipe, error) {
	if c.Sessions.Connected(nodeID) || c.Peers == nil {
		p, err := c.Sessions.OpenExec(ctx, nodeID, containerID)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	st, err := c.Raft.Status()
	if err != nil {
		return nil, err
	}
	for _, srv := range st.Servers {
		if srv.ID == st.ID {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		rs, err := c.Peers.RelayExec(rctx, srv.ID)
		if err != nil {
			cancel()
			continue
		}
		if err := rs.Send(&ccv1.RelayExecRequest{NodeId: nodeID}); err != nil {
			cancel()
			continue
		}
		// The server answers an empty response when it took the exec,
		// FailedPrecondition when the node's session is not there.
		m, err := rs.Recv()
		if err != nil || m.GetResponse() != nil {
			cancel()
			continue
		}
		return &relayedExec{rs: rs, cancel: cancel}, nil
	}
	return nil, status.Errorf(codes.Unavailable, "node %s is not connected to any server now, so nothing can be run in its containers", nodeID)
}

// relayedExec is an exec through another server.
type relayedExec struct {
	rs     ccv1.PeerService_RelayExecClient
	cancel context.CancelFunc
}

func (r *relayedExec) Send(m *ccv1.ExecRequest) error {
	return r.rs.Send(&ccv1.RelayExecRequest{Request: m})
}

func (r *relayedExec) Recv() (*ccv1.ExecResponse, error) {
	for {
		m, err := r.rs.Recv()
		if err != nil {
			return nil, err
		}
		if m.GetResponse() != nil {
			return m.GetResponse(), nil
		}
	}
}

func (r *relayedExec) Close() { r.cancel() }

// RelayExec serves an exec for another server when the container's node
// has its session here: it answers one empty message when it took the
// exec, then the process's output.
func (p *PeerServer) RelayExec(stream ccv1.PeerService_RelayExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	nodeID := first.GetNodeId()
	if !p.core.Sessions.Connected(nodeID) {
		return status.Errorf(codes.FailedPrecondition, "node %s has no session here", nodeID)
	}
	if err := stream.Send(&ccv1.RelayExecResponse{}); err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	start := req.GetRequest().GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "a relayed exec starts with the start")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	pipe, err := p.core.Sessions.OpenExec(ctx, nodeID, start.GetContainer())
	if err != nil {
		return err
	}
	defer pipe.Close()
	if err := pipe.Send(req.GetRequest()); err != nil {
		return err
	}
	go func() {
		defer cancel()
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if m.GetRequest() != nil && pipe.Send(m.GetRequest()) != nil {
				return
			}
		}
	}()
	for {
		m, err := pipe.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(&ccv1.RelayExecResponse{Response: m}); err != nil {
			return err
		}
		if m.GetExit() != nil {
			return nil
		}
	}
}

// execStartWait is how long an exec waits for a container that is on its
// way to running (placed, its image prepared): `ccctl run -d` returns once
// the container is created, and an exec typed right after it should not
// fail.
const execStartWait = 60 * time.Second

// startedContainer resolves a container by id or name and, while it is
// pending, assigned or preparing, waits (up to execStartWait) until it is
// not.
func (s *ExecService) startedContainer(ctx context.Context, ref string) (*statev1.ContainerRecord, error) {
	timer := time.NewTimer(execStartWait)
	defer timer.Stop()
	for {
		changed := s.core.FSM.Watch()
		rec, err := resolve(ref, "container", "ccctl ps", s.core.FSM.Container, s.core.FSM.ContainerIDByName, s.core.FSM.Containers,
			func(r *statev1.ContainerRecord) string { return r.Container.Id })
		if err != nil {
			return nil, err
		}
		switch rec.Container.GetStatus().GetState() {
		case ccv1.ContainerState_CONTAINER_STATE_PENDING, ccv1.ContainerState_CONTAINER_STATE_ASSIGNED, ccv1.ContainerState_CONTAINER_STATE_PREPARING:
			if rec.Container.GetDesired() != ccv1.DesiredState_DESIRED_STATE_RUNNING {
				return rec, nil
			}
		default:
			return rec, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return rec, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
