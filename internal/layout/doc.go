// Package layout holds the tests that keep the repository's architecture
// rules: which top-level parts may import which, and a doc comment on every
// package. It has no code of its own.
package layout
