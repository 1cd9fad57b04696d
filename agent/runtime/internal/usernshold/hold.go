// Package usernshold is the process that holds a new user namespace and
// the network namespace it owns while the runtime mounts them (package
// runtime, createUsernsNetNS): a binary that links this package, started
// with Env set to "1", waits for its stdin to close and exits. It does so
// from the init function of a package that needs only the standard
// library, which runs before the binary's heavier packages are
// initialized, so the process is up in a few milliseconds instead of
// after all of cc-agent's set-up.
package usernshold

import (
	"io"
	"os"
)

// Env, set to "1" in a process's environment, makes it hold.
const Env = "CC_USERNS_HOLD"

func init() {
	if os.Getenv(Env) == "1" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
}
