#!/usr/bin/env bash
# Cluster scale: SERVERS (default 3) cc-controlplane processes on loopback and
# a fleet of NODES simulated nodes (internal/testing/simnode: the real agent protocol
# over mutual TLS, all in the bench process) running TASKS tasks of SERVICES services.
# Prints the fleet's join time and memory per node, placement throughput,
# assignment delivery latency (p50/p90/p99), the time until every task runs,
# the leader's RSS and CPU time, and the raft log and snapshot sizes.
#
# Usage: bench/scale.sh [NODES] [TASKS]   (default 5000 100000)
#        bench/scale.sh 200 2000          (a smoke run, about a minute)
#        SERVERS=1 bench/scale.sh 15000 0 (fleet only: the sessions one bench
#                                          process and one server hold)
# Environment:
#   SERVERS=3          control-plane servers: 1, 3 or 5
#   SERVICES=100       services the tasks are split over
#   MODE=services      or containers: one CreateContainer per task, round robin
#   TIMEOUT=1800       seconds for the whole run; the table so far is printed
#   HEARTBEAT=3s       heartbeat period of the simulated nodes
#   PROFILE=1          run the servers as bench/scale/pprofserver (the same
#                      server plus net/http/pprof on loopback) and print the
#                      top of CPU profiles of the leader while the fleet joins
#                      and during the workload (PROFILE_SECONDS=30 each), and
#                      of its heap after each
#   WATCHERS=N         N container watch streams (WatchContainers, what the
#                      dashboard's containers page follows) open on the leader
#                      during the workload: when they saw every task running
#                      and how many events they got; compare with WATCHERS=0
#   KEEP=1             keep the data dirs and server logs
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-5000}
tasks=${2:-100000}
services=${SERVICES:-100}
if [ "$tasks" -gt 0 ] && [ "$tasks" -lt "$services" ]; then services=$tasks; fi
mode=${MODE:-services}
nservers=${SERVERS:-3}
case "$nservers" in 1|3|5) ;; *) echo "scale: SERVERS=$nservers: use 1, 3 or 5" >&2; exit 2 ;; esac
timeout_s=${TIMEOUT:-1800}

make -s build >/dev/null
go build -o bin/cc-scale ./bench/scale
cpbin=bin/cc-controlplane
if [ "${PROFILE:-}" = 1 ]; then
  go build -o bin/cc-controlplane-pprof ./bench/scale/pprofserver
  cpbin=bin/cc-controlplane-pprof
fi

dir=$(mktemp -d -t cc-scale.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "scale: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "scale: $*" >&2
  for f in "$dir"/s*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
# until TRIES CMD...: run CMD every 0.2s until it succeeds, TRIES times at most.
until_ok() {
  local n=$1; shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

api=(); raft=(); pprof=(); dirs=()
for i in $(seq 1 "$nservers"); do
  api+=("127.0.0.1:$(port)"); raft+=("127.0.0.1:$(port)"); pprof+=("127.0.0.1:$(port)"); dirs+=("$dir/s$i")
done
start_server() { # start_server I ARGS...
  local i=$1; shift
  if [ "${PROFILE:-}" = 1 ]; then export CC_PPROF_ADDR="${pprof[$((i-1))]}"; fi
  "$cpbin" --data-dir "$dir/s$i" --name "s$i" --api-addr "${api[$((i-1))]}" --raft-addr "${raft[$((i-1))]}" \
    --log-level warn "$@" >"$dir/s$i.log" 2>&1 &
  pids+=($!)
  unset CC_PPROF_ADDR
}
start_server 1 --bootstrap
until_ok 150 test -s "$dir/s1/admin.token" || fail "s1 wrote no admin token"
export CC_CONFIG="$dir/ccctl.json" CC_CACERT="$dir/s1/tls/ca.crt" CC_TOKEN=$(cat "$dir/s1/admin.token") CC_ADDR="${api[0]}"
until_ok 150 bin/ccctl status || fail "s1 does not answer"
if [ "$nservers" -gt 1 ]; then
  tok=$(bin/ccctl -o json token create --role server --uses $((nservers - 1)) | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  [ -n "$tok" ] || fail "no server join token"
  for i in $(seq 2 "$nservers"); do start_server "$i" --join "${api[0]}" --token "$tok"; done
  all() { [ "$(bin/ccctl -o json server ls | grep -c '"id"')" -eq "$nservers" ]; }
  until_ok 300 all || fail "the servers did not join within 60s"
fi
export CC_ADDR="$(IFS=,; echo "${api[*]}")"
until_ok 150 bin/ccctl status || fail "the cluster does not answer"

join() { local IFS=,; echo "$*"; }
args=(-addr "$(join "${api[@]}")" -ca "$CC_CACERT" -token "$CC_TOKEN"
  -pids "$(join "${pids[@]}")" -data-dirs "$(join "${dirs[@]}")"
  -nodes "$nodes" -tasks "$tasks" -services "$services" -mode "$mode" -timeout "${timeout_s}s")
[ -n "${HEARTBEAT:-}" ] && args+=(-heartbeat "$HEARTBEAT")
[ -n "${WATCHERS:-}" ] && args+=(-watchers "$WATCHERS")
prof=""
if [ "${PROFILE:-}" = 1 ]; then
  prof="$dir/leader"
  args+=(-pprof "$(join "${pprof[@]}")" -profile "$prof" -profile-seconds "${PROFILE_SECONDS:-30}s")
fi
set +e
timeout --signal=TERM --kill-after=60 "$((timeout_s + 30))" bin/cc-scale "${args[@]}"
rc=$?
set -e
for phase in join workload; do
  f="$prof.$phase.pprof"
  [ -n "$prof" ] && [ -s "$f" ] || continue
  echo
  echo "== leader CPU profile, $phase (go tool pprof -top $cpbin $f)"
  go tool pprof -top -nodecount=25 "$cpbin" "$f" 2>/dev/null | sed -n '4,32p'
  cp "$f" "/tmp/cc-scale-leader.$phase.pprof" && echo "(copied to /tmp/cc-scale-leader.$phase.pprof)"
  echo "== cumulative"
  go tool pprof -top -cum -nodecount=25 "$cpbin" "$f" 2>/dev/null | sed -n '6,32p'
done
for phase in join workload; do
  f="$prof.heap.$phase.pprof"
  [ -n "$prof" ] && [ -s "$f" ] || continue
  echo
  echo "== leader heap in use, after the $phase (go tool pprof -top -sample_index=inuse_space $cpbin $f)"
  go tool pprof -top -sample_index=inuse_space -nodecount=25 "$cpbin" "$f" 2>/dev/null | sed -n '4,32p'
  cp "$f" "/tmp/cc-scale-leader.heap.$phase.pprof" && echo "(copied to /tmp/cc-scale-leader.heap.$phase.pprof)"
  f="$prof.goroutine.$phase.pprof"
  [ -s "$f" ] || continue
  echo "== leader goroutines, after the $phase (go tool pprof -top $cpbin $f)"
  go tool pprof -top -nodecount=15 "$cpbin" "$f" 2>/dev/null | sed -n '4,22p'
  cp "$f" "/tmp/cc-scale-leader.goroutine.$phase.pprof" && echo "(copied to /tmp/cc-scale-leader.goroutine.$phase.pprof)"
done
[ $rc -eq 0 ] || fail "cc-scale failed (exit $rc)"
