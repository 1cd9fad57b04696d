#!/usr/bin/env bash
# Three cc-controlplane processes on loopback: RSS of each at rest, then N
# small writes (default 100000) with 64 clients through all three addresses,
# then RSS again. Usage: bench/ha-memory.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
make -s build >/dev/null
go build -o bin/cc-writeload ./bench/writeload
dir=$(mktemp -d -t cc-ha-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
api=(); raft=()
for i in 1 2 3; do api+=("127.0.0.1:$(port)"); raft+=("127.0.0.1:$(port)"); done
bin/cc-controlplane --bootstrap --data-dir "$dir/s1" --name s1 --api-addr "${api[0]}" --raft-addr "${raft[0]}" --log-level warn >"$dir/s1.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$dir/s1/admin.token" ] && break; sleep 0.1; done
export CC_CONFIG="$dir/ccctl.json" CC_CACERT="$dir/s1/tls/ca.crt" CC_TOKEN=$(cat "$dir/s1/admin.token") CC_ADDR="${api[0]}"
sleep 1
tok=$(bin/ccctl -o json token create --role server --uses 2 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
for i in 2 3; do
  bin/cc-controlplane --join "${api[0]}" --token "$tok" --data-dir "$dir/s$i" --name "s$i" --api-addr "${api[$((i-1))]}" --raft-addr "${raft[$((i-1))]}" --log-level warn >"$dir/s$i.log" 2>&1 &
  pids+=($!)
done
sleep 5
rss() { for p in "${pids[@]}"; do printf '%s ' "$(awk '/VmRSS/ {printf "%.1fMiB", $2/1024}' /proc/$p/status)"; done; echo; }
echo "RSS at rest (s1 s2 s3): $(rss)"
bin/cc-writeload -addr "$(IFS=,; echo "${api[*]}")" -token "$CC_TOKEN" -ca "$CC_CACERT" -n "$n" -c 64
echo "RSS after $n writes (s1 s2 s3): $(rss)"
