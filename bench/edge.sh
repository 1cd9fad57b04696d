#!/usr/bin/env bash
# The edge beside nginx and Caddy (Debian packages), in one run:
#   - a 1 KiB static file, and a proxy to one local upstream serving 1 KiB;
#     each server pinned to core 0, wrk (1 thread, 64 connections) and the
#     upstream on core 1; ROUNDS rounds of DURATION each, interleaved;
#     rps, p50 and p99, and the ratios of ours to nginx and Caddy;
#   - p50/p99 and the server's CPU at a fixed 1,000 requests/s (static file);
#   - resident memory with 10,000 idle keep-alive connections;
#   - the time for a set of 1,000 routes (one `ccctl edge apply`) to be
#     served by every agent's edge (two agents);
#   - over HTTPS (TLS=1, the default), with one certificate for all three (an
#     ECDSA P-256 leaf signed by a throwaway CA, made here with openssl): the
#     same file and proxy with wrk over kept-alive TLS connections, and a new
#     TLS connection per request (bin/edge-bench handshakes: a full
#     handshake, no session resumption, one GET; wrk with "Connection: close"
#     resumes sessions), as handshakes/s and per second of the server's CPU.
# Our edge runs in cc-agent, joined to a control plane started here (its own
# data dir, ports and containerd namespace), as users run it; nothing is left
# behind. Access logs are off everywhere (the agent logs at warn level).
# Needs root (containerd, apt). Usage: bench/edge.sh  (ROUNDS=3 DURATION=10s
# TLS=1; TLS=0 skips the HTTPS figures, TLS=only measures only them;
# CURVE=x25519 is the key exchange of the new connections: p256, or
# x25519mlkem768, which only our edge has of the three)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
dur=${DURATION:-10s}
tls=${TLS:-1}
curve=${CURVE:-x25519}
conns=64
case $tls in 0 | 1 | only) ;; *) echo "bench/edge.sh: TLS=$tls: want 1, 0 or only" >&2; exit 2 ;; esac
plain=1
[ "$tls" = only ] && plain=0

[ "$(id -u)" = 0 ] || { echo "bench/edge.sh: run as root" >&2; exit 1; }
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
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
  for b in ccb18000 ccb18001 ccbj18000 ccbj18001; do ip link del "$b" 2>/dev/null || true; done
  # The agents' job network chains (jobs.md, Network).
  for t in iptables ip6tables; do
    "$t" -w -S 2>/dev/null | grep -E -- '-j CC-JOB-[A-Z]+-ccbj1800[01]' | sed 's/^-A /-D /' |
      while read -r rule; do eval "$t -w $rule" 2>/dev/null || true; done
    for c in FWD HOST RET; do for b in ccbj18000 ccbj18001; do
      "$t" -w -F "CC-JOB-$c-$b" 2>/dev/null && "$t" -w -X "CC-JOB-$c-$b" 2>/dev/null || true
    done; done
  done
  for n in cc-bench-bench-a cc-bench-bench-b; do ctr namespaces rm "$n" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/site"
head -c 768 /dev/urandom | base64 -w0 | head -c 1024 >"$work/site/1k.txt"
chmod 755 "$work" "$work/site" # nginx's workers run as www-data

# --- One certificate for the three servers: a throwaway CA and an ECDSA
# P-256 leaf for the bench hosts (and 127.0.0.1: wrk sends the URL's host as
# the server name).
mkdir -p "$work/tls"
(
  cd "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=cc-bench-ca -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=static.bench \
    -keyout leaf.key -out leaf.csr 2>/dev/null
  printf '%s\n' 'subjectAltName=DNS:static.bench,DNS:proxy.bench,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' >leaf.ext
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out leaf.pem 2>/dev/null
)

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
CC_TOKEN=$(cat "$work/cp/admin.token")
export CC_ADDR=$api CC_TOKEN CC_CACERT=$work/cp/tls/ca.crt CC_CONFIG=$work/ccctl.json
agent() { # name edge-port advertise-ip core (HTTPS on edge-port + 443)
  local tok
  tok=$(bin/ccctl -o json token create --role agent --uses 1 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  taskset -c "$4" bin/cc-agent --join "$api" --token "$tok" --data-dir "$work/$1" --name "$1" \
    --namespace "cc-bench-$1" --bridge "ccb$2" --subnet "10.214.$(( $2 - 18000 )).0/24" \
    --job-bridge "ccbj$2" --job-subnet "10.217.$(( $2 - 18000 + 100 )).0/24" \
    --advertise-addr "$3" --edge-http-addr "127.0.0.1:$2" --edge-https-addr "127.0.0.1:$(( $2 + 443 ))" --edge-access-log off --log-level warn >"$work/$1.log" 2>&1 &
  pids+=($!)
}
agent bench-a 18000 127.0.0.1 0
edgepid=${pids[-1]}
agent bench-b 18001 127.0.0.1 1
for _ in $(seq 1 300); do
  [ "$(bin/ccctl node ls 2>/dev/null | grep -c ' ready ')" = 2 ] && break
  sleep 0.1
done
# Both over HTTP and HTTPS (no redirect); the certificate is also the default
# one, for wrk's server name 127.0.0.1.
bin/ccctl cert add bench --cert "$work/tls/leaf.pem" --key "$work/tls/leaf.key" >/dev/null
bin/ccctl cluster settings --edge-default-cert bench >/dev/null
bin/ccctl route create bench-proxy --host proxy.bench --upstream "$up" --tls bench --no-https-redirect >/dev/null
bin/ccctl site deploy bench-static "$work/site" --host static.bench --tls bench --no-https-redirect >/dev/null
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null -H 'Host: static.bench' http://127.0.0.1:18000/1k.txt 2>/dev/null &&
    curl -fsS -o /dev/null -H 'Host: proxy.bench' http://127.0.0.1:18000/ 2>/dev/null &&
    curl -fsS -o /dev/null --cacert "$work/tls/ca.pem" --resolve static.bench:18443:127.0.0.1 https://static.bench:18443/1k.txt 2>/dev/null &&
    curl -fsS -o /dev/null --cacert "$work/tls/ca.pem" --resolve proxy.bench:18443:127.0.0.1 https://proxy.bench:18443/ 2>/dev/null && break
  sleep 0.1
done

# --- nginx: one worker on core 0, the same file and upstream, keep-alive to
# it; HTTPS with the TLS 1.3 suites in Go's order (so all three servers use
# AES-128-GCM), session tickets on as in Go's servers.
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
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_prefer_server_ciphers on;
  ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
  ssl_certificate $work/tls/leaf.pem;
  ssl_certificate_key $work/tls/leaf.key;
  server {
    listen 127.0.0.1:18080;
    listen 127.0.0.1:18082 ssl;
    location / { root $work/site; }
  }
  server {
    listen 127.0.0.1:18081;
    listen 127.0.0.1:18083 ssl;
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
https://:18092 {
  bind 127.0.0.1
  tls $work/tls/leaf.pem $work/tls/leaf.key
  root * $work/site
  file_server
}
https://:18093 {
  bind 127.0.0.1
  tls $work/tls/leaf.pem $work/tls/leaf.key
  reverse_proxy $up
}
EOF
GOMAXPROCS=1 taskset -c 0 caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)
caddypid=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:18090/1k.txt 2>/dev/null && break; sleep 0.1; done
for u in https://static.bench:18082/1k.txt https://proxy.bench:18083/ https://static.bench:18092/1k.txt https://proxy.bench:18093/; do
  h=${u#https://}
  h=${h%%/*}
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --cacert "$work/tls/ca.pem" --resolve "$h:127.0.0.1" "$u" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null --cacert "$work/tls/ca.pem" --resolve "$h:127.0.0.1" "$u" ||
    { echo "bench/edge.sh: $u does not answer over HTTPS" >&2; exit 1; }
done

# --- Rounds, interleaved: wrk over kept-alive connections (HTTP, then
# HTTPS), then a new TLS connection per request.
declare -A rps p50 p99 hps hcpu hper hcli hsproto
run() { # label url host
  local out
  out=$(taskset -c 1 wrk -t1 -c$conns -d"$dur" --latency -H "Host: $3" "$2")
  if echo "$out" | grep -q 'Non-2xx' || echo "$out" | grep -q 'Requests/sec: *0\.00'; then
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
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i+1)}'; }
handshake() { # label addr pid: the static file, a full handshake per request
  local out
  out=$(taskset -c 1 bin/edge-bench handshakes -addr "$2" -sni static.bench -path /1k.txt \
    -c $conns -d "$dur" -pid "$3" -ca "$work/tls/ca.pem" -curve "$curve") ||
    { echo "bench/edge.sh: $1: new TLS connections failed; see above" >&2; exit 1; }
  hsproto[$1]=$(echo "$out" | field tls)
  hps[$1]="${hps[$1]:-} $(echo "$out" | field handshakes/s)"
  p50[$1]="${p50[$1]:-} $(echo "$out" | field p50)ms"
  p99[$1]="${p99[$1]:-} $(echo "$out" | field p99)ms"
  hcpu[$1]="${hcpu[$1]:-} $(echo "$out" | field cpu)"
  hper[$1]="${hper[$1]:-} $(echo "$out" | field per-cpu-s)"
  hcli[$1]="${hcli[$1]:-} $(echo "$out" | field client-cpu)"
}
echo "bench/edge.sh: $(git describe --tags --always --dirty 2>/dev/null) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds of $dur, wrk -t1 -c$conns, TLS=$tls"
for _ in $(seq 1 "$rounds"); do
  if [ "$plain" = 1 ]; then
    run cc-static http://127.0.0.1:18000/1k.txt static.bench
    run nginx-static http://127.0.0.1:18080/1k.txt static.bench
    run caddy-static http://127.0.0.1:18090/1k.txt static.bench
    run cc-proxy http://127.0.0.1:18000/ proxy.bench
    run nginx-proxy http://127.0.0.1:18081/ proxy.bench
    run caddy-proxy http://127.0.0.1:18091/ proxy.bench
  fi
  if [ "$tls" != 0 ]; then
    run cc-tls-static https://127.0.0.1:18443/1k.txt static.bench
    run nginx-tls-static https://127.0.0.1:18082/1k.txt static.bench
    run caddy-tls-static https://127.0.0.1:18092/1k.txt static.bench
    run cc-tls-proxy https://127.0.0.1:18443/ proxy.bench
    run nginx-tls-proxy https://127.0.0.1:18083/ proxy.bench
    run caddy-tls-proxy https://127.0.0.1:18093/ proxy.bench
    handshake cc-newconn 127.0.0.1:18443 "$edgepid"
    handshake nginx-newconn 127.0.0.1:18082 "$nginxpid"
    handshake caddy-newconn 127.0.0.1:18092 "$caddypid"
  fi
done

# Medians of the rounds; latencies as wrk prints them (us/ms), converted to ms.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
toms() { tr ' ' '\n' | grep -v '^$' | awk '/us$/ {sub(/us/,""); print $1/1000; next} /ms$/ {sub(/ms/,""); print $1; next} /s$/ {sub(/s/,""); print $1*1000}'; }
kinds=()
[ "$plain" = 1 ] && kinds+=(static proxy)
[ "$tls" != 0 ] && kinds+=(tls-static tls-proxy)
printf "\n%-18s %10s %9s %9s   %s\n" server rps "p50 ms" "p99 ms" "rounds (rps)"
for kind in "${kinds[@]}"; do
  for srv in cc nginx caddy; do
    k=$srv-$kind
    printf "%-18s %10s %9s %9s   %s\n" "$k" "$(echo "${rps[$k]}" | median)" \
      "$(echo "${p50[$k]}" | toms | median)" "$(echo "${p99[$k]}" | toms | median)" "${rps[$k]}"
  done
done
for kind in "${kinds[@]}"; do
  cc=$(echo "${rps[cc-$kind]}" | median)
  ng=$(echo "${rps[nginx-$kind]}" | median)
  ca=$(echo "${rps[caddy-$kind]}" | median)
  cc99=$(echo "${p99[cc-$kind]}" | toms | median)
  ng99=$(echo "${p99[nginx-$kind]}" | toms | median)
  ca99=$(echo "${p99[caddy-$kind]}" | toms | median)
  awk -v k="$kind" -v cc="$cc" -v ng="$ng" -v ca="$ca" -v c9="$cc99" -v n9="$ng99" -v a9="$ca99" 'BEGIN {
    printf "%s: rps cc/nginx %.2f, cc/caddy %.2f; p99 cc/nginx %.2f, cc/caddy %.2f\n", k, cc/ng, cc/ca, c9/n9, c9/a9 }'
done

if [ "$tls" != 0 ]; then
  echo
  echo "a new TLS connection per request (full handshake, no resumption, ECDSA P-256, CURVE=$curve offered;"
  echo "static file; $conns connections; p50/p99 of the whole connection; cpu: the server's, % of one core;"
  echo "per cpu-s: handshakes per second of the server's CPU time, its cost even when the load generator limits;"
  echo "load cpu: the load generator's, % of its one core — near 100 with the server's well under, it is the limit):"
  printf "%-14s %12s %9s %9s %7s %10s %9s   %-44s %s\n" server handshakes/s "p50 ms" "p99 ms" "cpu %" "per cpu-s" "load cpu" negotiated "rounds (handshakes/s)"
  for srv in cc nginx caddy; do
    k=$srv-newconn
    printf "%-14s %12s %9s %9s %7s %10s %9s   %-44s %s\n" "$k" "$(echo "${hps[$k]}" | median)" \
      "$(echo "${p50[$k]}" | toms | median)" "$(echo "${p99[$k]}" | toms | median)" \
      "$(echo "${hcpu[$k]}" | median)" "$(echo "${hper[$k]}" | median)" "$(echo "${hcli[$k]}" | median)" \
      "${hsproto[$k]}" "${hps[$k]}"
  done
  awk -v cc="$(echo "${hps[cc-newconn]}" | median)" -v ng="$(echo "${hps[nginx-newconn]}" | median)" \
    -v ca="$(echo "${hps[caddy-newconn]}" | median)" -v pc="$(echo "${hper[cc-newconn]}" | median)" \
    -v pn="$(echo "${hper[nginx-newconn]}" | median)" -v pa="$(echo "${hper[caddy-newconn]}" | median)" \
    -v c9="$(echo "${p99[cc-newconn]}" | toms | median)" -v n9="$(echo "${p99[nginx-newconn]}" | toms | median)" \
    -v a9="$(echo "${p99[caddy-newconn]}" | toms | median)" 'BEGIN {
    printf "new connections: handshakes/s cc/nginx %.2f, cc/caddy %.2f; per server cpu-s cc/nginx %.2f, cc/caddy %.2f; p99 cc/nginx %.2f, cc/caddy %.2f\n",
      cc/ng, cc/ca, pc/pn, pc/pa, c9/n9, c9/a9 }'
fi

if [ "$plain" = 0 ]; then
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

echo
echo "fixed rate, static file (latency from each request's scheduled time; CPU of the server process):"
for s in "cc 18000 $edgepid" "nginx 18080 $nginxpid" "caddy 18090 $caddypid"; do
  read -r name port pid <<<"$s"
  printf "%-6s " "$name"; taskset -c 1 bin/edge-bench rate -url "http://127.0.0.1:$port/1k.txt" -host static.bench -rps 1000 -d 10s -pid "$pid"
done

echo
echo "idle keep-alive connections (resident memory of the server process):"
for s in "cc 18000 $edgepid" "nginx 18080 $nginxpid" "caddy 18090 $caddypid"; do
  read -r name port pid <<<"$s"
  printf "%-6s " "$name"; taskset -c 1 bin/edge-bench idle -url "http://127.0.0.1:$port/1k.txt" -host static.bench -conns 10000 -pid "$pid"
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
