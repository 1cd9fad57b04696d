#!/usr/bin/env bash
# Job benchmark: one fresh cc-controlplane on loopback (own temp data dir,
# --bootstrap), then bin/cc-jobbench (bench/jobs):
#   1. submit throughput and latency (the admin token's rate limit lifted):
#      CLIENTS concurrent gRPC clients submit
#      N_BACKLOG jobs that no node can fit (1 PiB of memory each, queue
#      "backlog"); jobs/s, p50/p90/p99/max; the server's CPU, RSS and
#      state.db / raft.db sizes before and after;
#   2. with that backlog queued: latency of GET /v1/jobs?state=JOB_STATE_QUEUED&limit=50
#      over REST (cluster CA, bearer token) and of gRPC ListJobs;
#   3. one real agent joins (its own data dir, containerd namespace, bridge
#      and subnet, so a running `make dev` is not touched), and JOBS jobs of
#      `/bin/busybox true` run one at a time in the default queue: submit →
#      assigned / started / exited / succeeded, beside `ctr run --rm` of the
#      same image (imported from the same archive), interleaved; cc/ctr.
# Then a summary block to paste into a report, with nproc and the load
# average before and after. Everything is removed at the end: processes,
# the temp dir, both containerd namespaces, the bridge.
# Needs root, containerd and ctr for part 3 (DISPATCH=0 skips it).
#
# Usage: bench/jobs.sh [N_BACKLOG]   (default 100000; about 5-10 minutes on 2 cores)
#        bench/jobs.sh 2000          (a smoke run, about a minute)
# Environment:
#   CLIENTS=32         concurrent submitting clients
#   JOBS=30            dispatched jobs (and ctr runs), after WARMUP=2 of each
#   LIST_REQUESTS=200  sequential ListJobs requests per method
#   DISPATCH=0         skip part 3 (no agent, no containerd)
#   TIMEOUT=540        seconds for cc-jobbench; the table so far is printed
#   KEEP=1             keep the temp dir (server and agent logs)
set -euo pipefail
cd "$(dirname "$0")/.."
backlog=${1:-100000}
case "$backlog" in ''|*[!0-9]*) echo "jobs: N_BACKLOG must be a number, got '$backlog'" >&2; exit 2 ;; esac
timeout_s=${TIMEOUT:-540}
dispatch=${DISPATCH:-1}

if [ "$dispatch" != 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "jobs: part 3 runs a real agent and needs root (or DISPATCH=0)" >&2; exit 2; }
  command -v ctr >/dev/null || { echo "jobs: ctr is not installed (scripts/prereqs.sh; or DISPATCH=0)" >&2; exit 2; }
  [ -S /run/containerd/containerd.sock ] || { echo "jobs: containerd is not running (scripts/prereqs.sh; or DISPATCH=0)" >&2; exit 2; }
fi

make -s build >/dev/null
go build -o bin/cc-jobbench ./bench/jobs

dir=$(mktemp -d -t cc-jobs.XXXXXX)
suffix=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
ns=cc-jobbench-$suffix
ctrns=cc-jobbench-ctr-$suffix
bridge=ccjb$suffix
# A /24 no route on this host uses yet (make dev has 10.213.0.0/24, tests 10.214.x.0/24).
routes=$(ip -4 route show 2>/dev/null || true)
subnet=
for _ in $(seq 1 50); do
  x=$((RANDOM % 250 + 1))
  if ! grep -q "^10\.215\.$x\." <<<"$routes"; then subnet=10.215.$x.0/24; break; fi
done
[ -n "$subnet" ] || { echo "jobs: no free 10.215.x.0/24 subnet" >&2; exit 1; }

pids=()
cleanup() {
  local rc=$?
  set +e
  if [ -s "$dir/agent.pid" ]; then kill -TERM "$(cat "$dir/agent.pid")" 2>/dev/null; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}" $( [ -s "$dir/agent.pid" ] && cat "$dir/agent.pid" ); do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$dispatch" != 0 ] && [ -x bin/cc-jobbench ]; then
    bin/cc-jobbench purge -agent-bin bin/cc-agent -state-dir "$dir/agent/runtime" -scratch-dir "$dir" \
      -namespace "$ns" -ctr-namespace "$ctrns" -bridge "$bridge" -subnet "$subnet" ||
      echo "jobs: cleanup of containerd namespaces $ns, $ctrns or bridge $bridge failed (see above)" >&2
  fi
  if [ "${KEEP:-}" = 1 ]; then echo "jobs: kept $dir"; else rm -rf "$dir"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "jobs: $*" >&2
  for f in "$dir"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
until_ok() { # until_ok TRIES CMD...: every 0.2s
  local n=$1; shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

api=127.0.0.1:$(port)
raft=127.0.0.1:$(port)
# The per-token rate limits are a policy (admin: 2000 calls/s by default),
# not the capacity this measures: the bench's token may go as fast as the
# server takes it.
cat >"$dir/cc.toml" <<TOML
[rate_limit]
admin_per_second = 1000000
admin_burst = 1000000
address_per_second = 1000000
address_burst = 1000000
TOML
bin/cc-controlplane --config "$dir/cc.toml" --bootstrap --data-dir "$dir/s1" --name s1 --api-addr "$api" --raft-addr "$raft" \
  --log-level warn >"$dir/s1.log" 2>&1 &
pids+=($!)
until_ok 150 test -s "$dir/s1/admin.token" || fail "the server wrote no admin token"
export CC_CONFIG="$dir/ccctl.json" CC_CACERT="$dir/s1/tls/ca.crt" CC_TOKEN=$(cat "$dir/s1/admin.token") CC_ADDR="$api"
until_ok 150 curl -fsS --cacert "$CC_CACERT" "https://$api/readyz" || fail "the server is not ready"
until_ok 150 bin/ccctl status || fail "the server does not answer"

# The demo image, built here from busybox-static (nothing is downloaded),
# into the cluster's image store; the same archive feeds ctr.
bin/cc-mkimage cc-demo:latest "$dir/cc-demo.tar"
bin/ccctl image load "$dir/cc-demo.tar" >/dev/null || fail "image load failed"

args=(-addr "$api" -ca "$CC_CACERT" -token "$CC_TOKEN" -pid "${pids[0]}" -data-dir "$dir/s1"
  -backlog "$backlog" -c "${CLIENTS:-32}" -list-requests "${LIST_REQUESTS:-200}"
  -image cc-demo:latest -archive "$dir/cc-demo.tar" -jobs "${JOBS:-30}" -warmup "${WARMUP:-2}"
  -agent-bin bin/cc-agent -agent-dir "$dir/agent" -agent-pidfile "$dir/agent.pid"
  -namespace "$ns" -ctr-namespace "$ctrns" -bridge "$bridge" -subnet "$subnet"
  -timeout "${timeout_s}s" -version "$(git describe --tags --always --dirty 2>/dev/null || echo unknown)")
[ "$dispatch" = 0 ] && args+=(-skip-dispatch)
echo "jobs: backlog $backlog, server $api (pid ${pids[0]}), data in $dir" >&2
# In the background, so that an interrupt reaches the cleanup at once, which
# stops the bench (and through it the agent) before the server.
timeout --signal=TERM --kill-after=30 "$((timeout_s + 30))" bin/cc-jobbench "${args[@]}" &
pids=($! "${pids[@]}")
set +e
wait "${pids[0]}"
rc=$?
set -e
[ $rc -eq 0 ] || fail "cc-jobbench failed (exit $rc)"
