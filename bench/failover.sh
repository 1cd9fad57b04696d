#!/usr/bin/env bash
# Leader failover: three cc-controlplane processes on loopback with their
# default raft settings; bin/cc-failover (bench/failover) kills the leader
# with SIGKILL TRIALS times and prints, for each, the time from the kill to
# the next successful write sent to a surviving server, with the new leader
# and term; then the median, minimum and maximum. The killed server is
# started again and caught up between trials.
#
# Usage: bench/failover.sh [TRIALS]   (default 10; about 5 s a trial)
# Environment: KEEP=1 keeps the data dirs and server logs.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-10}
case "$trials" in ''|*[!0-9]*) echo "failover: TRIALS must be a number, got '$trials'" >&2; exit 2 ;; esac

make -s build >/dev/null
go build -o bin/cc-failover ./bench/failover

dir=$(mktemp -d -t cc-failover.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  set +e
  if [ -s "$dir/pids" ]; then mapfile -t pids <"$dir/pids"; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "${KEEP:-}" = 1 ]; then echo "failover: kept $dir"; else rm -rf "$dir"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "failover: $*" >&2
  for f in "$dir"/s*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
until_ok() { # until_ok TRIES CMD...: every 0.2s
  local n=$1; shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

api=(); raft=()
for i in 1 2 3; do api+=("127.0.0.1:$(port)"); raft+=("127.0.0.1:$(port)"); done
start_server() { # start_server I ARGS...
  local i=$1; shift
  "$PWD/bin/cc-controlplane" --data-dir "$dir/s$i" --name "s$i" --api-addr "${api[$((i-1))]}" --raft-addr "${raft[$((i-1))]}" \
    --log-level warn "$@" >>"$dir/s$i.log" 2>&1 &
  pids+=($!)
  disown $! # the bench kills it: no "Killed" notice from this shell
}
start_server 1 --bootstrap
until_ok 150 test -s "$dir/s1/admin.token" || fail "s1 wrote no admin token"
export CC_CONFIG="$dir/ccctl.json" CC_CACERT="$dir/s1/tls/ca.crt" CC_TOKEN=$(cat "$dir/s1/admin.token") CC_ADDR="${api[0]}"
until_ok 150 bin/ccctl status || fail "s1 does not answer"
tok=$(bin/ccctl -o json token create --role server --uses 2 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
[ -n "$tok" ] || fail "no server join token"
for i in 2 3; do start_server "$i" --join "${api[0]}" --token "$tok"; done
all() { [ "$(bin/ccctl -o json server ls | grep -c '"id"')" -eq 3 ]; }
until_ok 300 all || fail "the servers did not join within 60s"

echo "failover: 3 servers ($(IFS=,; echo "${api[*]}")), $trials trials, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
bin/cc-failover -addr "$(IFS=,; echo "${api[*]}")" -pids "$(IFS=,; echo "${pids[*]}")" -ca "$CC_CACERT" -token "$CC_TOKEN" \
  -trials "$trials" -log-dir "$dir" -pidfile "$dir/pids"
rc=$?
set -e
echo "failover: load after $(cut -d' ' -f1-3 /proc/loadavg)"
[ $rc -eq 0 ] || fail "cc-failover failed (exit $rc)"
