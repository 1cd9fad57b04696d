// Package benchstat is what the benchmark programs under bench/ measure and
// print with: latency distributions and their percentiles, and figures read
// from /proc (a process's resident memory and CPU time, the host's CPUs,
// memory and load average), with the formats they are printed in.
package benchstat

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// Dist is a set of latencies, in any order.
type Dist []time.Duration

// Pct is the p-th percentile (nearest rank), 0 for an empty set.
func (d Dist) Pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Max is the largest latency, 0 for an empty set.
func (d Dist) Max() time.Duration { return d.Pct(100) }

// Line is "p50 X  p90 Y  p99 Z  max W  (n=N)".
func (d Dist) Line() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", Ms(d.Pct(50)), Ms(d.Pct(90)), Ms(d.Pct(99)), Ms(d.Max()), len(d))
}

// Short is "p50 X / p99 Y".
func (d Dist) Short() string {
	return fmt.Sprintf("p50 %s / p99 %s", Ms(d.Pct(50)), Ms(d.Pct(99)))
}

// Ms formats a duration in milliseconds, with fewer decimals as it grows.
func Ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

// SortDurations sorts d in place, shortest first.
func SortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// Quantile is the element at index ⌊q·n⌋ (capped at the last) of sorted, a
// non-empty sorted slice, for q in [0, 1]. Unlike Dist.Pct it is not the
// nearest rank: Quantile(s, 0.5) of 4 elements is the third.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// MiB formats a size in bytes as MiB, "-" for a negative (unknown) size.
func MiB(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// KiB formats a size in bytes as KiB.
func KiB(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
