#!/usr/bin/env bash
# Linearizability check under faults, long version (see TestLinearizability
# in controlplane/server/linearizability_test.go): 4 clients create and list
# tokens on a 3-server cluster while its leader is killed and restarted and
# raft is partitioned; porcupine checks the history. Prints the report lines.
# Usage: bench/chaos.sh [SECONDS] (default 120; CC_CHAOS_OPS bounds the
# operations too).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
log=$(mktemp -t cc-chaos.XXXXXX)
set +e
CC_CHAOS_SECONDS=$seconds go test -run '^TestLinearizability$' -v -count=1 -timeout 30m ./controlplane/server/ >"$log" 2>&1
rc=$?
set -e
grep -E 'chaos:|first failure:|^(--- |ok|FAIL|panic)' "$log" | sed -E 's/^ +//'
if [ $rc -ne 0 ]; then
	echo "chaos: FAILED (full log: $log)"
	exit $rc
fi
rm -f "$log"
