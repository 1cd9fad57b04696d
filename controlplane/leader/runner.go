package leader

import (
	"context"
	"log/slog"
	"sync"
)

// Loop is one piece of leader-only work. Run must return soon after ctx
// ends.
type Loop struct {
	Name string
	Run  func(ctx context.Context)
}

// Runner starts and stops the loops with leadership.
type Runner struct {
	loops []Loop
	log   *slog.Logger
	// Prepare, when set, is what the loops of a term wait for through
	// Ready (Barrier: decide only from everything earlier leaders
	// committed). It runs once per term, however many loops wait.
	Prepare func(ctx context.Context) bool
}

type termKey struct{}

// Ready waits for the Prepare of the term whose ctx this is (run once per
// term, shared by its loops) and says whether it succeeded; false means
// the term ended first.
func Ready(ctx context.Context) bool {
	f, _ := ctx.Value(termKey{}).(func() bool)
	return f == nil || f()
}

// NewRunner returns a runner for loops.
func NewRunner(log *slog.Logger, loops ...Loop) *Runner {
	return &Runner{loops: loops, log: log}
}

// Run follows leadership until ctx ends: leader reports changes (true when
// this server becomes leader, false when it stops being leader) and
// isLeader is the state when Run starts. It returns once every loop has
// stopped.
func (r *Runner) Run(ctx context.Context, isLeader bool, leader <-chan bool) {
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	start := func() {
		if cancel != nil {
			return
		}
		var lctx context.Context
		lctx, cancel = context.WithCancel(ctx)
		if r.Prepare != nil {
			prep, pctx := r.Prepare, lctx
			lctx = context.WithValue(lctx, termKey{}, sync.OnceValue(func() bool { return prep(pctx) }))
		}
		for _, l := range r.loops {
			wg.Add(1)
			go func(l Loop) {
				defer wg.Done()
				r.log.Info("leader loop started", "loop", l.Name)
				l.Run(lctx)
				r.log.Info("leader loop stopped", "loop", l.Name)
			}(l)
		}
	}
	stop := func() {
		if cancel == nil {
			return
		}
		cancel()
		wg.Wait()
		cancel = nil
	}
	defer stop()
	if isLeader {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case l, ok := <-leader:
			if !ok {
				return
			}
			if l {
				start()
			} else {
				stop()
			}
		}
	}
}
