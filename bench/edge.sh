#!/usr/bin/env bash
# Edge benchmark: our edge (bench/edge, which runs agent/edge) beside nginx
# and Caddy (Debian packages), with wrk:
#   proxy:  a route to one local upstream (an nginx serving a 1 KiB file,
#           keep-alive from every proxy);
#   static: a 1 KiB file served directly.
# Each server runs on CPU 0 (GOMAXPROCS=1 for the Go ones, one nginx
# worker); wrk (1 thread, CONNS connections) and the upstream on CPU 1.
# Access logs are off everywhere. ROUNDS rounds in one run, the servers
# interleaved; the table gives each median, then the ratios to nginx and
# Caddy.
#
# Usage: bench/edge.sh                 (3 rounds of 10 s: about 4 minutes)
# Environment:
#   DURATION=10   seconds per wrk run      ROUNDS=3   rounds
#   CONNS=64      wrk connections          KEEP=1     keep the temp dir
# Needs nginx, caddy, wrk and taskset. Listens on 127.0.0.1:18080-18086.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
rounds=${ROUNDS:-3}
conns=${CONNS:-64}
for c in nginx caddy wrk taskset go; do
  command -v "$c" >/dev/null || { echo "edge bench: $c is not installed (apt-get install nginx caddy wrk)" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "edge bench: needs 2 CPUs (server on one, wrk on the other)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

go build -o "$tmp/cc-edge" ./bench/edge
mkdir -p "$tmp/www" "$tmp/logs"
chmod 755 "$tmp" "$tmp/www" # nginx workers run as nobody
head -c 1024 /dev/zero | tr '\0' 'x' > "$tmp/www/1k.html"

nginx_conf() { # name port-block
  cat > "$tmp/$1.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/$1.pid;
error_log $tmp/logs/$1.err warn;
events { worker_connections 16384; }
http {
  access_log off;
  types { text/html html; }
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:18081; keepalive 128; }
  $2
}
CONF
}
nginx_conf upstream "server { listen 127.0.0.1:18081 backlog=4096; root $tmp/www; }"
nginx_conf nginx "server { listen 127.0.0.1:18084 backlog=4096; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:18085 backlog=4096; root $tmp/www; }"
cat > "$tmp/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
http://:18082 {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:18081
}
http://:18083 {
  bind 127.0.0.1
  root * $tmp/www
  file_server
}
CONF

taskset -c 1 nginx -p "$tmp" -c "$tmp/upstream.conf" 2>"$tmp/logs/upstream.out" & pids+=($!)
taskset -c 0 nginx -p "$tmp" -c "$tmp/nginx.conf" 2>"$tmp/logs/nginx.out" & pids+=($!)
GOMAXPROCS=1 taskset -c 0 caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/logs/caddy.out" 2>&1 & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$tmp/cc-edge" -listen 127.0.0.1:18080 -upstream 127.0.0.1:18081 -host bench \
  -static-dir "$tmp/www" -static-host static.bench 2>"$tmp/logs/edge.out" & pids+=($!)

for port in 18080 18081 18082 18083 18084 18085; do
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/1k.html" -H 'Host: bench' && break
    sleep 0.1
  done
done

# url of each (test, server); the edge tells the site from the route by Host
declare -A url host
url[proxy,edge]=http://127.0.0.1:18080/1k.html;  host[proxy,edge]=bench
url[proxy,nginx]=http://127.0.0.1:18084/1k.html; host[proxy,nginx]=bench
url[proxy,caddy]=http://127.0.0.1:18082/1k.html; host[proxy,caddy]=bench
url[static,edge]=http://127.0.0.1:18080/1k.html;  host[static,edge]=static.bench
url[static,nginx]=http://127.0.0.1:18085/1k.html; host[static,nginx]=static.bench
url[static,caddy]=http://127.0.0.1:18083/1k.html; host[static,caddy]=static.bench

# to_ms converts wrk's latency ("812.00us", "1.20ms", "2.01s") to ms.
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

results="$tmp/results"
: > "$results"
echo "edge bench: ${rounds} rounds of ${duration}s, ${conns} connections, servers on CPU 0, wrk and upstream on CPU 1"
for r in $(seq "$rounds"); do
  for test in proxy static; do
    for srv in edge nginx caddy; do
      out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency -H "Host: ${host[$test,$srv]}" "${url[$test,$srv]}")
      rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
      errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
      echo "$test $srv $r $rps $p50 $p99" >> "$results"
      printf 'round %d  %-6s %-5s  %10s rps  p50 %7s ms  p99 %7s ms  %s\n' "$r" "$test" "$srv" "$rps" "$p50" "$p99" "$errs"
    done
  done
done

median() { sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
echo
printf '%-6s %-5s %12s %9s %9s %9s %9s\n' test server rps p50_ms p99_ms vs_nginx vs_caddy
for test in proxy static; do
  declare -A med_rps med_p50 med_p99
  for srv in edge nginx caddy; do
    med_rps[$srv]=$(awk -v t=$test -v s=$srv '$1==t && $2==s {print $4}' "$results" | median)
    med_p50[$srv]=$(awk -v t=$test -v s=$srv '$1==t && $2==s {print $5}' "$results" | median)
    med_p99[$srv]=$(awk -v t=$test -v s=$srv '$1==t && $2==s {print $6}' "$results" | median)
  done
  for srv in edge nginx caddy; do
    vn=$(awk -v a="${med_rps[$srv]}" -v b="${med_rps[nginx]}" 'BEGIN { printf "%.2f", a/b }')
    vc=$(awk -v a="${med_rps[$srv]}" -v b="${med_rps[caddy]}" 'BEGIN { printf "%.2f", a/b }')
    printf '%-6s %-5s %12s %9s %9s %9s %9s\n' "$test" "$srv" "${med_rps[$srv]}" "${med_p50[$srv]}" "${med_p99[$srv]}" "$vn" "$vc"
  done
done
echo
echo "(medians of $rounds rounds; vs_* are rps ratios. The edge's static row uses a net/http FileServer"
echo " stand-in until agent/edge/static is merged; bench/edge/main.go says where to switch.)"
echo "nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
