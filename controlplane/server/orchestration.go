package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/leaderloop"
	"github.com/containercodes/cc/controlplane/orchestrator"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// opsPerCommand bounds one raft entry of task ops: a batch of 100,000 new
// tasks goes out as several entries, each applied in one transaction.
const opsPerCommand = 2000

// minPassGap is the least time between two passes of the orchestrator.
const minPassGap = 50 * time.Millisecond

// orchestrate is the leader loop of services: it reads the state, makes a
// plan (package orchestrator, which calls the scheduler) and writes its ops,
// again whenever the state changes or the plan asks to be woken.
func (s *Server) orchestrate(ctx context.Context) {
	log := s.log.With("loop", "orchestrator")
	// Decide from everything earlier leaders committed.
	if !leaderloop.Ready(ctx) {
		return
	}
	const resync = 10 * time.Second
	var last time.Time // start of the last pass
	var took time.Duration
	for {
		// Pace the passes: many changes in a row (thousands of nodes
		// joining, status arriving) make one pass, not one each, and the
		// loop takes at most about half of a core.
		if gap := max(minPassGap, took); time.Since(last) < gap {
			if !sleep(ctx, gap-time.Since(last)) {
				return
			}
		}
		watch := s.fsm.Watch()
		wake := time.Now().Add(resync)
		last = time.Now()
		st, err := s.fsm.ReadState()
		if err != nil {
			log.Error("read state", "err", err)
		} else {
			started := time.Now()
			plan := orchestrator.Make(orchestrator.Input{
				Services: st.Services, Tasks: st.Tasks, Nodes: st.Nodes,
				Strategy: st.Settings.GetSchedulingStrategy(), Now: started, NewID: newTaskID,
			})
			if !plan.WakeAt.IsZero() && plan.WakeAt.Before(wake) {
				wake = plan.WakeAt
			}
			if len(plan.Ops) > 0 {
				if err := s.applyOps(ctx, plan.Ops); err != nil {
					if ctx.Err() != nil {
						return
					}
					log.Warn("could not write the scheduler's decisions; retrying", "err", err)
					if !sleep(ctx, time.Second) {
						return
					}
					continue
				}
				log.Debug("plan applied", "ops", len(plan.Ops), "took", time.Since(started))
				took = time.Since(last)
				continue // decide again from the new state
			}
		}
		took = time.Since(last)
		if !waitChange(ctx, watch, time.Until(wake)) {
			return
		}
	}
}

// applyOps writes task ops in entries of opsPerCommand through this
// server's raft, refusing to forward: a server that lost leadership stops
// deciding.
func (s *Server) applyOps(ctx context.Context, ops []*statev1.TaskOp) error {
	return applyChunked(ctx, s, statev1.CommandType_COMMAND_TYPE_TASK_OPS, ops, func(c []*statev1.TaskOp) proto.Message {
		return &statev1.TaskOps{Ops: c}
	})
}

// applyChunked writes ops as entries of at most opsPerCommand each, in
// order and pipelined (raft batches them), through ApplyLocalAll.
func applyChunked[Op any](ctx context.Context, s *Server, t statev1.CommandType, ops []Op, wrap func([]Op) proto.Message) error {
	var cmds [][]byte
	now := time.Now()
	for len(ops) > 0 {
		n := min(len(ops), opsPerCommand)
		data, err := fsm.Encode(t, wrap(ops[:n]), now)
		if err != nil {
			return err
		}
		cmds = append(cmds, data)
		ops = ops[n:]
	}
	return s.raft.ApplyLocalAll(ctx, cmds)
}

func newTaskID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitChange waits until watch is closed or d has passed; false when ctx
// ended first.
func waitChange(ctx context.Context, watch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-watch:
	case <-t.C:
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
