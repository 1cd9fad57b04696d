package leader

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/containercodes/cc/controlplane/fsm"
	"github.com/containercodes/cc/controlplane/raftstore"
	"github.com/containercodes/cc/controlplane/webhook"
	statev1 "github.com/containercodes/cc/proto/cc/state/v1"
)

// webhookWorkers bounds the webhooks delivered at a time.
const webhookWorkers = 16

// Webhooks is the leader loop of completion webhooks: each pending one is
// delivered (retried with backoff, package webhook) by its own goroutine,
// at most webhookWorkers at a time, and its outcome written to the job. A
// new leader delivers again those whose outcome was not written.
type Webhooks struct {
	raft   *raftstore.Store
	fsm    *fsm.FSM
	log    *slog.Logger
	sender *webhook.Sender
}

// NewWebhooks returns the webhook loop.
func NewWebhooks(c Config) *Webhooks {
	w := &Webhooks{raft: c.Raft, fsm: c.FSM, log: c.loopLog("job-webhooks"), sender: c.Webhooks}
	if w.sender == nil {
		w.sender = &webhook.Sender{}
	}
	if w.sender.Log == nil {
		s := *w.sender
		s.Log = w.log
		w.sender = &s
	}
	return w
}

// Run delivers webhooks until ctx ends, and returns once every delivery
// has stopped.
func (w *Webhooks) Run(ctx context.Context) {
	if !Ready(ctx) {
		return
	}
	var mu sync.Mutex
	inflight := map[string]bool{}
	sem := make(chan struct{}, webhookWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		watch := w.fsm.JobsWatch()
		recs, err := w.fsm.PendingWebhooks()
		if err != nil {
			w.log.Error("read pending webhooks", "err", err)
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
				state := w.sender.Deliver(ctx, rec)
				if state != "" {
					err := writeJobOps(ctx, w.raft, []*statev1.JobOp{{
						Op: &statev1.JobOp_Webhook{Webhook: &statev1.WebhookResult{JobId: rec.Job.Id, State: state}}}})
					if err != nil && ctx.Err() == nil {
						w.log.Warn("could not record a webhook's outcome", "job", rec.Job.Id, "err", err)
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
