// Package buildinfo holds the version stamped into the binaries at build time.
package buildinfo

// Version is set with -ldflags "-X .../internal/buildinfo.Version=..." by the
// Makefile; a plain `go build` leaves it as "dev".
var Version = "dev"
