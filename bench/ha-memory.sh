#!/usr/bin/env bash
# Three cc-controlplane processes on loopback: RSS of each at rest, then N
# small writes (default 100000) with C clients (default 64) through all
# three addresses, then RSS again and the CPU time each process (the three
# servers and the client) used per write: on a cluster whose servers have
# hosts of their own, the leader's CPU per write bounds the write rate.
# Usage: bench/ha-memory.sh [N]   (C=64 clients, TO=all or leader: the
#        addresses the client sends to; PROFILE=1: the servers run as
#        bench/scale/pprofserver and the top of the leader's CPU profile
#        during the writes is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
make -s build >/dev/null
go build -o bin/cc-writeload ./bench/writeload
cpbin=bin/cc-controlplane
if [ "${PROFILE:-}" = 1 ]; then
  go build -o bin/cc-controlplane-pprof ./bench/scale/pprofserver
  cpbin=bin/cc-controlplane-pprof
fi
dir=$(mktemp -d -t cc-ha-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
api=(); raft=(); pprof=()
for i in 1 2 3; do api+=("127.0.0.1:$(port)"); raft+=("127.0.0.1:$(port)"); pprof+=("127.0.0.1:$(port)"); done
# The per-token rate limits are a policy (admin: 2000 calls/s by default),
# not the capacity this measures.
cat >"$dir/cc.toml" <<TOML
[rate_limit]
admin_per_second = 1000000
admin_burst = 1000000
address_per_second = 1000000
address_burst = 1000000
TOML
CC_PPROF_ADDR=${pprof[0]} "$cpbin" --config "$dir/cc.toml" --bootstrap --data-dir "$dir/s1" --name s1 --api-addr "${api[0]}" --raft-addr "${raft[0]}" --log-level warn >"$dir/s1.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/s1/admin.token" ] && break; sleep 0.1; done
export CC_CONFIG="$dir/ccctl.json" CC_CACERT="$dir/s1/tls/ca.crt" CC_TOKEN=$(cat "$dir/s1/admin.token") CC_ADDR="${api[0]}"
sleep 1
tok=$(bin/ccctl -o json token create --role server --uses 2 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
for i in 2 3; do
  CC_PPROF_ADDR=${pprof[$((i-1))]} "$cpbin" --config "$dir/cc.toml" --join "${api[0]}" --token "$tok" --data-dir "$dir/s$i" --name "s$i" --api-addr "${api[$((i-1))]}" --raft-addr "${raft[$((i-1))]}" --log-level warn >"$dir/s$i.log" 2>&1 &
  pids+=($!)
done
sleep 5
rss() { for p in "${pids[@]}"; do printf '%s ' "$(awk '/VmRSS/ {printf "%.1fMiB", $2/1024}' /proc/$p/status)"; done; echo; }
# cpu PID: user+system CPU time of a process, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "RSS at rest (s1 s2 s3): $(rss)"
leader=$(bin/ccctl -o json server ls | python3 -c 'import json, sys
d = json.load(sys.stdin)
for s in (d.get("servers", []) if isinstance(d, dict) else d):
    if s.get("leader"): print(s.get("name", ""))' 2>/dev/null || true)
to="$(IFS=,; echo "${api[*]}")"
li=0
for i in 1 2 3; do [ "s$i" = "$leader" ] && li=$((i-1)); done
[ "${TO:-all}" = leader ] && to=${api[$li]}
c0=(); for p in "${pids[@]}"; do c0+=("$(cpu "$p")"); done
bin/cc-writeload -addr "$to" -token "$CC_TOKEN" -ca "$CC_CACERT" -n "$n" -c "${C:-64}" &
wl=$!
if [ "${PROFILE:-}" = 1 ]; then
  curl -fsS -o "$dir/leader.pprof" "http://${pprof[$li]}/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}" &
  prof=$!
fi
wc0=$(cpu "$wl" 2>/dev/null || echo 0)
last=$wc0
while kill -0 "$wl" 2>/dev/null; do last=$(cpu "$wl" 2>/dev/null || echo "$last"); sleep 0.2; done
wait "$wl"
echo "RSS after $n writes (s1 s2 s3): $(rss)"
tick=$(getconf CLK_TCK)
line="CPU per write (leader: ${leader:-unknown}):"
for i in 0 1 2; do
  line+=" s$((i+1)) $(awk -v a="${c0[$i]}" -v b="$(cpu "${pids[$i]}")" -v n="$n" -v t="$tick" 'BEGIN {printf "%.0f us", (b-a)/t/n*1e6}')"
done
line+=", client >= $(awk -v a="$wc0" -v b="$last" -v n="$n" -v t="$tick" 'BEGIN {printf "%.0f us", (b-a)/t/n*1e6}')"
echo "$line"
if [ "${PROFILE:-}" = 1 ]; then
  wait "$prof" || true
  echo "== leader CPU profile during the writes (go tool pprof -top $cpbin leader.pprof)"
  go tool pprof -top -nodecount=25 "$cpbin" "$dir/leader.pprof" 2>/dev/null | sed -n '4,32p'
  echo "== cumulative"
  go tool pprof -top -cum -nodecount=60 "$cpbin" "$dir/leader.pprof" 2>/dev/null | sed -n '6,66p'
  cp "$dir/leader.pprof" /tmp/cc-ha-leader.pprof && echo "(copied to /tmp/cc-ha-leader.pprof)"
fi
