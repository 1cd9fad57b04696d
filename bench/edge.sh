#!/usr/bin/env bash
# The edge beside nginx and Caddy (Debian packages), in one run:
#   - a 1 KiB static file, and a proxy to one local upstream serving 1 KiB;
#     each server pinned to core 0, wrk (1 thread, 64 connections) and the
#     upstream on core 1; ROUNDS rounds of DURATION each, interleaved;
#     rps, p50 and p99, and the ratios of ours to nginx and Caddy;
#   - p50/p99 and the server's CPU at a fixed 1,000 requests/s (static file);
#   - resident memory with 10,000 idle keep-alive connections;
#   - the time for a set of 1,000 routes (one `ccctl edge apply`) to be
#     served by every agent's edge (two agents).
# Our edge runs in cc-agent, joined to a control plane started here (its own
# data dir, ports and containerd namespace), as users run it; nothing is left
# behind. Access logs are off everywhere (the agent logs at warn level).
# Needs root (containerd, apt). Usage: bench/edge.sh  (ROUNDS=3 DURATION=10s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
dur=${DURATION:-10s}
conns=64

[ "$(id -u)" = 0 ] || { echo "bench/edge.sh: run as root" >&2; exit 1; }
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/edge.sh: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash scripts/prereqs.sh >/dev/null
make -s build >/dev/null
go build -o bin/edge-bench ./bench/edge
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 10,000 idle connections need as many descriptors

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
  for b in ccb18000 ccb18001; do ip link del "$b" 2>/dev/null || true; done
  for n in cc-bench-bench-a cc-bench-bench-b; do ctr namespaces rm "$n" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/site"
head -c 768 /dev/urandom | base64 -w0 | head -c 1024 >"$work/site/1k.txt"
chmod 755 "$work" "$work/site" # nginx's workers run as www-data

taskset -c 1 bin/edge-bench upstream -size 1024 >"$work/up.addr" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$work/up.addr" ] && break; sleep 0.1; done
up=$(cat "$work/up.addr")

# --- Container Codes: a control plane and two agents (edges on 18000, 18001).
api=127.0.0.1:17443
taskset -c 1 bin/cc-controlplane --bootstrap --data-dir "$work/cp" --api-addr "$api" \
  --raft-addr 127.0.0.1:17444 --log-level warn >"$work/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  [ -s "$work/cp/admin.token" ] && curl -fsS --cacert "$work/cp/tls/ca.crt" "https://$api/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
export CC_ADDR=$api CC_TOKEN=$(cat "$work/cp/admin.token") CC_CACERT=$work/cp/tls/ca.crt CC_CONFIG=$work/ccctl.json
agent() { # name edge-port advertise-ip core
  local tok
  tok=$(bin/ccctl -o json token create --role agent --uses 1 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  taskset -c "$4" bin/cc-agent --join "$api" --token "$tok" --data-dir "$work/$1" --name "$1" \
    --namespace "cc-bench-$1" --bridge "ccb$2" --subnet "10.214.$(( $2 - 18000 )).0/24" \
    --advertise-addr "$3" --edge-http-addr "127.0.0.1:$2" --edge-https-addr off --edge-access-log off --log-level warn >"$work/$1.log" 2>&1 &
  pids+=($!)
}
agent bench-a 18000 127.0.0.1 0
edgepid=${pids[-1]}
agent bench-b 18001 127.0.0.1 1
for _ in $(seq 1 300); do
  [ "$(bin/ccctl node ls 2>/dev/null | grep -c ' ready ')" = 2 ] && break
  sleep 0.1
done
bin/ccctl route create bench-proxy --host proxy.bench --upstream "$up" >/dev/null
bin/ccctl site deploy bench-static "$work/site" --host static.bench >/dev/null
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null -H 'Host: static.bench' http://127.0.0.1:18000/1k.txt 2>/dev/null &&
    curl -fsS -o /dev/null -H 'Host: proxy.bench' http://127.0.0.1:18000/ 2>/dev/null && break
  sleep 0.1
done

# --- nginx: one worker on core 0, the same file and upstream, keep-alive to it.
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 20000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  upstream up { server $up; keepalive 64; }
  server {
    listen 127.0.0.1:18080;
    location / { root $work/site; }
  }
  server {
    listen 127.0.0.1:18081;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginxpid=$(pgrep -f "nginx: worker process" -n)

# --- Caddy: the same, pinned to core 0.
cat >"$work/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://:18090 {
  bind 127.0.0.1
  root * $work/site
  file_server
}
http://:18091 {
  bind 127.0.0.1
  reverse_proxy $up
}
EOF
GOMAXPROCS=1 taskset -c 0 caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)
caddypid=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:18090/1k.txt 2>/dev/null && break; sleep 0.1; done

# --- wrk rounds, interleaved.
declare -A rps p50 p99
run() { # label url host
  local out
  out=$(taskset -c 1 wrk -t1 -c$conns -d"$dur" --latency -H "Host: $3" "$2")
  if echo "$out" | grep -q 'Non-2xx'; then
    echo "bench/edge.sh: $1 answered errors; its figures would mean nothing:" >&2
    echo "$out" >&2
    exit 1
  fi
  local r l50 l99
  r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  l50=$(echo "$out" | awk '$1=="50%" {print $2}')
  l99=$(echo "$out" | awk '$1=="99%" {print $2}')
  rps[$1]="${rps[$1]:-} $r"; p50[$1]="${p50[$1]:-} $l50"; p99[$1]="${p99[$1]:-} $l99"
}
echo "bench/edge.sh: $(git describe --tags --always --dirty 2>/dev/null) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds of $dur, wrk -t1 -c$conns"
for i in $(seq 1 "$rounds"); do
  run cc-static http://127.0.0.1:18000/1k.txt static.bench
  run nginx-static http://127.0.0.1:18080/1k.txt static.bench
  run caddy-static http://127.0.0.1:18090/1k.txt static.bench
  run cc-proxy http://127.0.0.1:18000/ proxy.bench
  run nginx-proxy http://127.0.0.1:18081/ proxy.bench
  run caddy-proxy http://127.0.0.1:18091/ proxy.bench
done

# Medians of the rounds; latencies as wrk prints them (us/ms), converted to ms.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
toms() { tr ' ' '\n' | grep -v '^$' | awk '/us$/ {sub(/us/,""); print $1/1000; next} /ms$/ {sub(/ms/,""); print $1; next} /s$/ {sub(/s/,""); print $1*1000}'; }
printf "\n%-14s %10s %9s %9s   %s\n" server rps "p50 ms" "p99 ms" "rounds (rps)"
for k in cc-static nginx-static caddy-static cc-proxy nginx-proxy caddy-proxy; do
  printf "%-14s %10s %9s %9s   %s\n" "$k" "$(echo "${rps[$k]}" | median)" \
    "$(echo "${p50[$k]}" | toms | median)" "$(echo "${p99[$k]}" | toms | median)" "${rps[$k]}"
done
for kind in static proxy; do
  cc=$(echo "${rps[cc-$kind]}" | median)
  ng=$(echo "${rps[nginx-$kind]}" | median)
  ca=$(echo "${rps[caddy-$kind]}" | median)
  cc99=$(echo "${p99[cc-$kind]}" | toms | median)
  ng99=$(echo "${p99[nginx-$kind]}" | toms | median)
  ca99=$(echo "${p99[caddy-$kind]}" | toms | median)
  awk -v k="$kind" -v cc="$cc" -v ng="$ng" -v ca="$ca" -v c9="$cc99" -v n9="$ng99" -v a9="$ca99" 'BEGIN {
    printf "%s: rps cc/nginx %.2f, cc/caddy %.2f; p99 cc/nginx %.2f, cc/caddy %.2f\n", k, cc/ng, cc/ca, c9/n9, c9/a9 }'
done

echo
echo "fixed rate, static file (latency from each request's scheduled time; CPU of the server process):"
for s in "cc 18000 $edgepid" "nginx 18080 $nginxpid" "caddy 18090 $caddypid"; do
  set -- $s
  printf "%-6s " "$1"; taskset -c 1 bin/edge-bench rate -url "http://127.0.0.1:$2/1k.txt" -host static.bench -rps 1000 -d 10s -pid "$3"
done

echo
echo "idle keep-alive connections (resident memory of the server process):"
for s in "cc 18000 $edgepid" "nginx 18080 $nginxpid" "caddy 18090 $caddypid"; do
  set -- $s
  printf "%-6s " "$1"; taskset -c 1 bin/edge-bench idle -url "http://127.0.0.1:$2/1k.txt" -host static.bench -conns 10000 -pid "$3"
done

echo
echo "config propagation: 1,000 routes in one \`ccctl edge apply\`, to both agents' edges:"
{
  for i in $(seq 0 999); do
    printf '[[proxy.upstreams]]\nname = "u%d"\n[[proxy.upstreams.servers]]\naddress = "%s"\n\n' "$i" "$up"
    printf '[[proxy.routes]]\nname = "r%d"\nhost = "r%d.bench"\npath = "/"\nupstream = "u%d"\n\n' "$i" "$i" "$i"
  done
} >"$work/routes.toml"
since=$(date +%s%3N)
bin/ccctl edge apply "$work/routes.toml" >/dev/null
bin/edge-bench wait -url http://127.0.0.1:18000/,http://127.0.0.1:18001/ -host-format 'r%d.bench' -n 1000 -since "$since"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
