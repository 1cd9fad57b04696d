// Package health runs the health checks of a node's running containers: a
// command run inside the container (exit 0 passes) or an HTTP GET to a port
// of the container from inside its network namespace (2xx or 3xx passes).
//
// The decision is pure and lives in agent/health/healthstate (Parse, Next).
// This package is the I/O around it, behind two small interfaces:
// Containers (exec and dial in a container, which the agent's runtime
// implements) under Checker (one check of one container), which the
// Monitor drives: one prober goroutine per container run, keyed by
// (container id, generation, start time), so the state starts over when
// the container is restarted.
package health
