// Package reconcile decides what an agent must do to make the containers it
// runs match its assignments. Decide is a pure function of the desired
// state, what containerd runs and the restart bookkeeping: no I/O, no
// clock of its own, so every decision is tested without containerd.
package reconcile

import (
	"sort"
	"time"

	ccv1 "github.com/containercodes/cc/proto/cc/v1"
)

// Desired is one assignment as the reconciler needs it.
type Desired struct {
	ID          string
	Generation  uint64
	Run         bool // desired running; false: stopped
	Restart     ccv1.RestartPolicy
	StopTimeout time.Duration
}

// Observed is what containerd runs for a container id.
type Observed struct {
	ID         string
	Generation uint64
	Running    bool
	Exited     bool // the task ended (or was never started)
	ExitCode   int32
	FinishedAt time.Time
	// Unhealthy: the container runs but its health check says UNHEALTHY,
	// so it is stopped and its restart policy applies.
	Unhealthy bool
}

// Memory is what the agent remembers of a container between passes: restarts
// done and when the next may happen, a start that failed, and a stop for
// being unhealthy.
type Memory struct {
	Generation   uint64
	Restarts     uint32
	NextStart    time.Time // no (re)start before this
	StartFailed  bool      // the last start of this generation failed
	StartFailure string
	// StoppedUnhealthy: the agent stopped the current run for failing its
	// health check, so its exit is a failure whatever its exit code.
	StoppedUnhealthy bool
}

// Kind is what to do.
type Kind int

// The actions.
const (
	// Start creates and starts the container for the desired generation,
	// removing any leftover container of the same id first.
	Start Kind = iota + 1
	// Stop stops a running container, keeping it.
	Stop
	// Remove stops and deletes a container that is not assigned any more.
	Remove
)

func (k Kind) String() string {
	switch k {
	case Start:
		return "start"
	case Stop:
		return "stop"
	case Remove:
		return "remove"
	}
	return "?"
}

// Action is one step.
type Action struct {
	Kind      Kind
	ID        string
	IsRestart bool          // Start of a container that ran before (restart policy)
	Timeout   time.Duration // Stop and Remove: grace before SIGKILL
	Unhealthy bool          // Stop of a running container that failed its health check
}

// Backoff is the wait before restart number n (n ≥ 1): 1s, 2s, 4s, … up to
// a minute.
func Backoff(n uint32) time.Duration {
	if n == 0 {
		return 0
	}
	d := time.Second << (n - 1)
	if n > 7 || d > time.Minute {
		return time.Minute
	}
	return d
}

// Decide returns the actions that bring observed to desired, in a stable
// order, and the time of the next pending restart (zero when none waits), so
// the caller knows when to look again.
func Decide(desired map[string]Desired, observed map[string]Observed, mem map[string]Memory, now time.Time) (actions []Action, wakeAt time.Time) {
	wake := func(t time.Time) {
		if wakeAt.IsZero() || t.Before(wakeAt) {
			wakeAt = t
		}
	}
	for id := range observed {
		if _, ok := desired[id]; !ok {
			actions = append(actions, Action{Kind: Remove, ID: id, Timeout: 10 * time.Second})
		}
	}
	for id, d := range desired {
		o, seen := observed[id]
		m := mem[id]
		if m.Generation != d.Generation {
			m = Memory{Generation: d.Generation}
		}
		if !d.Run {
			if seen && o.Running {
				actions = append(actions, Action{Kind: Stop, ID: id, Timeout: d.StopTimeout})
			}
			continue
		}
		switch {
		case !seen || o.Generation < d.Generation:
			// Not created yet for this generation (new, started again
			// after an exit, or its container vanished).
			if m.StartFailed {
				if !mayRestart(d.Restart, true) {
					continue
				}
				if now.Before(m.NextStart) {
					wake(m.NextStart)
					continue
				}
				actions = append(actions, Action{Kind: Start, ID: id, IsRestart: true})
				continue
			}
			actions = append(actions, Action{Kind: Start, ID: id})
		case o.Running && o.Unhealthy:
			actions = append(actions, Action{Kind: Stop, ID: id, Timeout: d.StopTimeout, Unhealthy: true})
		case o.Running:
			// Converged.
		case o.Exited:
			if !mayRestart(d.Restart, o.ExitCode != 0 || m.StoppedUnhealthy) {
				continue
			}
			if now.Before(m.NextStart) {
				wake(m.NextStart)
				continue
			}
			actions = append(actions, Action{Kind: Start, ID: id, IsRestart: true})
		}
	}
	sort.Slice(actions, func(i, j int) bool {
		if actions[i].Kind != actions[j].Kind {
			// Remove and stop first: they free ports and memory for starts.
			return order(actions[i].Kind) < order(actions[j].Kind)
		}
		return actions[i].ID < actions[j].ID
	})
	return actions, wakeAt
}

func order(k Kind) int {
	switch k {
	case Remove:
		return 0
	case Stop:
		return 1
	default:
		return 2
	}
}

func mayRestart(p ccv1.RestartPolicy, failed bool) bool {
	switch p {
	case ccv1.RestartPolicy_RESTART_POLICY_ALWAYS:
		return true
	case ccv1.RestartPolicy_RESTART_POLICY_ON_FAILURE:
		return failed
	default:
		return false
	}
}

// AfterStart updates the memory of a container after a Start action.
func AfterStart(m Memory, generation uint64, a Action, err error, now time.Time) Memory {
	if m.Generation != generation {
		m = Memory{Generation: generation}
	}
	if a.IsRestart {
		m.Restarts++
	}
	m.NextStart = now.Add(Backoff(m.Restarts + 1))
	m.StoppedUnhealthy = false
	if err != nil {
		m.StartFailed = true
		m.StartFailure = err.Error()
	} else {
		m.StartFailed = false
		m.StartFailure = ""
	}
	return m
}

// AfterStop updates the memory of a container after a Stop action that
// succeeded: a stop for being unhealthy makes the exit a failure.
func AfterStop(m Memory, generation uint64, a Action) Memory {
	if m.Generation != generation {
		m = Memory{Generation: generation}
	}
	if a.Unhealthy {
		m.StoppedUnhealthy = true
	}
	return m
}
