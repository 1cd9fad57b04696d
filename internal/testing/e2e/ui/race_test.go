//go:build race

package uie2e

// raceEnabled: this test binary runs under the race detector, which makes
// the cluster several times slower.
const raceEnabled = true
