#!/usr/bin/env bash
# Run latency of `/bin/busybox true` (see BenchmarkRunLatency in
# internal/testing/e2e/runlatency_bench_test.go): cc's API (in-process control plane
# and agent on real containerd) against the containerd client directly and
# `ctr run --rm`, interleaved; medians in ms. Needs root and containerd.
# Usage: bench/run-latency.sh [N] (default 20 runs of each method).
# HOPS=1 also prints the medians of the agent's timed start steps (from its
# debug log, which needs go test -v: the log lines are then written as
# they come, so compare ratios of runs made the same way).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
verbose=()
if [ "${HOPS:-0}" = 1 ]; then verbose=(-v); fi
out=$(go test "${verbose[@]}" -run '^$' -bench '^BenchmarkRunLatency$' -benchtime "${n}x" -count 1 ./internal/testing/e2e/ 2>&1) || {
  echo "$out" >&2
  exit 1
}
echo "$out" | grep -E '^(Benchmark|goos|cpu)'
echo
echo "$out" | awk '
  /^BenchmarkRunLatency/ {
    for (i = 2; i < NF; i++) m[$(i+1)] = $i
    found = 1
  }
  END {
    if (!found) { print "no BenchmarkRunLatency result" > "/dev/stderr"; exit 1 }
    # cc/method: how many times longer cc takes until exited.
    printf "%-8s %12s %12s %10s\n", "method", "running ms", "exited ms", "cc/method"
    printf "%-8s %12.1f %12.1f %10.2f\n", "cc", m["cc-running-ms"], m["cc-exited-ms"], 1
    printf "%-8s %12.1f %12.1f %10.2f\n", "client", m["client-running-ms"], m["client-exited-ms"], m["cc/client-exited"]
    printf "%-8s %12s %12.1f %10.2f\n", "ctr", "-", m["ctr-exited-ms"], m["cc/ctr-exited"]
  }'

# With HOPS=1, where cc's time goes on the agent: the medians of the steps
# its debug log times in each start (runtime.Start's steps, and the image
# check before it), over the timed runs and the warm-up.
hops() {
  local msg=$1
  local lines
  lines=$(echo "$out" | grep -F "msg=\"$msg\"" || true)
  [ -n "$lines" ] || return 0
  local keys
  keys=$(echo "$lines" | head -1 | grep -oE '[a-z_]+_ms=' | tr -d '=')
  printf "%s (median ms of %d):" "$msg" "$(echo "$lines" | wc -l)"
  for k in $keys; do
    printf " %s %s" "${k%_ms}" "$(echo "$lines" | grep -oE "(^| )$k=[0-9.]+" | cut -d= -f2 | sort -n |
      awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
  done
  echo
}
if echo "$out" | grep -qF 'msg="container start timing"'; then
  echo
  hops "agent start timing"
  hops "container start timing"
fi
