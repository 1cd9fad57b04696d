//go:build race

package runtime

import deadlock "github.com/sasha-s/go-deadlock"

// go-cni swaps its mutexes for sasha-s/go-deadlock in race builds. That
// detector tracks read locks by address, one holder at a time, so when two
// goroutines (or two runtimes of one test process) hold go-cni's read lock
// at once it reports a lock-order inversion that cannot happen, and exits
// the process. Race builds are tests only; the race detector still runs.
func init() { deadlock.Opts.Disable = true }
