package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/containercodes/cc/controlplane/blobs"
	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/jobs"
	"github.com/containercodes/cc/controlplane/leaderloop"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// expirePerPass bounds the expired jobs one dispatcher pass deletes.
const expirePerPass = 1000

// dispatchJobs is the job dispatcher's leader loop: it reads the queues,
// the active jobs and the nodes, decides (package jobs) and writes the
// decisions, again whenever the state changes.
func (s *Server) dispatchJobs(ctx context.Context) {
	log := s.log.With("loop", "job-dispatcher")
	if !leaderloop.Ready(ctx) {
		return
	}
	const resync = 5 * time.Second
	const inputScan = time.Minute // input records expire in days: no hurry
	var last, lastInputs time.Time
	for {
		if gap := minPassGap; time.Since(last) < gap {
			if !sleep(ctx, gap-time.Since(last)) {
				return
			}
		}
		watch := s.fsm.Watch()
		last = time.Now()
		withInputs := last.Sub(lastInputs) >= inputScan
		if withInputs {
			lastInputs = last
		}
		ops, err := s.jobPlan(last, withInputs)
		if err != nil {
			log.Error("read state", "err", err)
		} else if len(ops) > 0 {
			if err := s.applyJobOps(ctx, ops); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("could not write the dispatcher's decisions; retrying", "err", err)
				if !sleep(ctx, time.Second) {
					return
				}
			} else {
				log.Debug("job ops applied", "ops", len(ops), "took", time.Since(last))
			}
			continue
		}
		if !waitChange(ctx, watch, resync) {
			return
		}
	}
}

func (s *Server) jobPlan(now time.Time, withInputs bool) ([]*statev1.JobOp, error) {
	js, err := s.fsm.ReadDispatch(jobs.HeadsPerQueue)
	if err != nil {
		return nil, err
	}
	// Nodes and containers matter only with jobs to place or to watch:
	// a cluster of services without jobs does not pay for reading them on
	// every change.
	st := &fsm.State{}
	if len(js.Heads) > 0 || len(js.Active) > 0 {
		if st, err = s.fsm.ReadState(); err != nil {
			return nil, err
		}
	}
	expired, err := s.fsm.ExpiredJobs(now, expirePerPass)
	if err != nil {
		return nil, err
	}
	var inputs []string
	if withInputs {
		if inputs, err = s.fsm.ExpiredInputs(now); err != nil {
			return nil, err
		}
	}
	plan := jobs.Decide(jobs.Input{
		Jobs: js, Nodes: st.Nodes, Containers: st.Tasks, Strategy: st.Settings.GetSchedulingStrategy(),
		Now: now, Expired: expired, ExpiredInputs: inputs, NewID: newTaskID,
	})
	return plan.Ops, nil
}

// barrier waits until this leader has applied everything earlier leaders
// committed.
func (s *Server) barrier(ctx context.Context, log interface {
	Warn(string, ...any)
}) bool {
	for {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.raft.Barrier(bctx)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("barrier failed; retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

// applyJobOps writes job ops through this server's raft, refusing to
// forward: a deposed leader stops deciding.
func (s *Server) applyJobOps(ctx context.Context, ops []*statev1.JobOp) error {
	return applyChunked(ctx, s, statev1.CommandType_COMMAND_TYPE_JOB_OPS, ops, func(c []*statev1.JobOp) proto.Message {
		return &statev1.JobOps{Ops: c}
	})
}

// sendWebhooks is the leader loop of completion webhooks: each pending one
// is delivered (retried with backoff) by its own goroutine, at most
// webhookWorkers at a time, and its outcome written to the job. A new
// leader delivers again those whose outcome was not written.
func (s *Server) sendWebhooks(ctx context.Context) {
	log := s.log.With("loop", "job-webhooks")
	if !leaderloop.Ready(ctx) {
		return
	}
	const webhookWorkers = 16
	w := &jobs.Webhooks{Log: log}
	var mu sync.Mutex
	inflight := map[string]bool{}
	sem := make(chan struct{}, webhookWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		watch := s.fsm.JobsWatch()
		recs, err := s.fsm.PendingWebhooks()
		if err != nil {
			log.Error("read pending webhooks", "err", err)
		}
		for _, rec := range recs {
			mu.Lock()
			busy := inflight[rec.Job.Id]
			if !busy {
				inflight[rec.Job.Id] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				state := w.Deliver(ctx, rec)
				if state != "" {
					err := s.applyJobOps(ctx, []*statev1.JobOp{{
						Op: &statev1.JobOp_Webhook{Webhook: &statev1.WebhookResult{JobId: rec.Job.Id, State: state}}}})
					if err != nil && ctx.Err() == nil {
						log.Warn("could not record a webhook's outcome", "job", rec.Job.Id, "err", err)
					}
				}
				mu.Lock()
				delete(inflight, rec.Job.Id)
				mu.Unlock()
			}()
		}
		if !waitChange(ctx, watch, 30*time.Second) {
			return
		}
	}
}

// collectBlobs runs on every server: every blob_gc.interval it removes the
// blobs of its own store that no record has referred to for blob_gc.grace.
func (s *Server) collectBlobs(ctx context.Context) {
	g := &blobs.GC{Store: s.blobs, InUse: s.fsm.BlobsInUse, Grace: s.cfg.BlobGC.Grace.Duration}
	t := time.NewTicker(s.cfg.BlobGC.Interval.Duration)
	defer t.Stop()
	for {
		removed, err := g.Pass(time.Now())
		if err != nil {
			s.log.Warn("blob collection", "err", err)
		}
		if len(removed) > 0 {
			s.log.Info("removed unreferenced blobs", "count", len(removed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// HasSession says whether a node's agent holds its session with this
// server (tests use it to find the server an agent talks to).
func (s *Server) HasSession(nodeID string) bool {
	return s.sessions != nil && s.sessions.Connected(nodeID)
}
