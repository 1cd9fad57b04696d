// Package layout holds the tests that keep the repository's architecture
// rules: which top-level parts may import which, production libraries under
// internal/ apart from the test harnesses under internal/testing/, the pure
// deciders (scheduler, orchestrator, dispatch, reconcile, health state) free
// of raft, bbolt, gRPC, containerd and net/http, and a doc comment on every
// package. It has no code of its own.
package layout
