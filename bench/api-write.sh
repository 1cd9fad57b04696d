#!/usr/bin/env bash
# API write benchmark on one in-process server (see BenchmarkAPI in
# controlplane/server/bench_test.go): ops/s and p50/p99 latency of a small
# write, with a read measured in the same run as the baseline.
# Usage: bench/api-write.sh [BENCHTIME] (default 3s per case; e.g. 2000x).
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-3s}
out=$(go test -run '^$' -bench '^BenchmarkAPI$' -benchtime "$benchtime" -count 1 ./controlplane/server/ 2>&1 | grep -E '^(Benchmark|goos|cpu)')
echo "$out"
echo
echo "$out" | awk '
  /^BenchmarkAPI\// {
    split($1, p, "/"); kind = p[2]; clients = p[3]; sub(/-[0-9]+$/, "", clients)
    for (i = 3; i < NF; i++) { if ($(i+1) == "ops/s") ops = $i; if ($(i+1) == "p50-ms") p50 = $i; if ($(i+1) == "p99-ms") p99 = $i }
    key = kind " " clients; O[key] = ops; P50[key] = p50; P99[key] = p99; seen[clients] = 1
  }
  END {
    printf "%-12s %12s %10s %10s %16s\n", "case", "writes/s", "p50 ms", "p99 ms", "write/read ops"
    for (c in seen) {
      w = "write " c; r = "read " c
      printf "%-12s %12.0f %10.2f %10.2f %16.3f\n", c, O[w], P50[w], P99[w], (O[r] > 0 ? O[w] / O[r] : 0)
    }
  }'
