#!/usr/bin/env bash
# Runs a single-node dev cluster in the foreground (called by `make dev`):
# a control plane and one agent on this host, plus a demo image built here
# from busybox-static. Data lives in .dev/ in the checkout (git-ignored). The
# first run bootstraps the cluster and joins the agent; later runs restart
# both with the same identities and data. It writes ccctl's "dev" context so
# that `bin/ccctl status` just works.
set -euo pipefail
cd "$(dirname "$0")/.."

data=.dev/data
agentdir=.dev/agent
api=${CC_DEV_API_ADDR:-127.0.0.1:7443}
raft=${CC_DEV_RAFT_ADDR:-127.0.0.1:7444}
edge_http=${CC_DEV_EDGE_HTTP_ADDR:-127.0.0.1:8000}
edge_https=${CC_DEV_EDGE_HTTPS_ADDR:-127.0.0.1:8443}
agent_metrics=${CC_DEV_AGENT_METRICS_ADDR:-127.0.0.1:7445}
status=${CC_DEV_STATUS_ADDR:-127.0.0.1:7446}
demo=cc-demo:latest
mkdir -p "$data" "$agentdir"

# Config files, written once and then yours to edit: the control plane
# re-reads its file on SIGHUP or `bin/cc-controlplane config reload
# --data-dir .dev/data`, the agent on SIGHUP or `bin/cc-agent config reload
# --data-dir .dev/agent` (what reloads: docs/operations.md). Flags given
# here win over the files.
cpconf=.dev/controlplane.toml
agentconf=.dev/agent.toml
[ -f "$cpconf" ] || cat >"$cpconf" <<'TOML'
# make dev's control plane. Flags of scripts/dev.sh (data dir, addresses)
# win over this file. Every key: docs/controlplane.example.toml.
[log]
level = "info"
TOML
[ -f "$agentconf" ] || cat >"$agentconf" <<'TOML'
# make dev's agent: the keys are cc-agent's flags with _ for -. Flags of
# scripts/dev.sh (data dir, name, edge addresses) win over this file.
log_level = "info"
TOML

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
# Ctrl-C or a TERM reaches both programs, which shut down gracefully; if this
# script fails first, it leaves nothing behind. Containers keep running when
# the agent stops, as on a real node; `ccctl rm -f` removes them.
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done' INT TERM
trap stop_all EXIT

# CC_DEV_TRACING=HOST:PORT sends both programs' traces, every one, in
# plaintext to an OTLP/gRPC receiver there (docs/tracing.md), such as
#   go run ./internal/testing/otlptest/cmd/otlp-receiver -addr 127.0.0.1:4317
# The control plane's [tracing] section is then added to $cpconf: edit it
# and `kill -HUP` the control plane to change it while it runs.
agentflags=()
if [ -n "${CC_DEV_TRACING:-}" ]; then
  grep -q '^\[tracing\]' "$cpconf" || printf '\n[tracing]\nendpoint = "%s"\nsample_ratio = 1.0\ninsecure = true\n' "$CC_DEV_TRACING" >>"$cpconf"
  agentflags=(--tracing-endpoint "$CC_DEV_TRACING" --tracing-sample-ratio 1 --tracing-insecure)
fi

bin/cc-controlplane --config "$cpconf" --bootstrap --data-dir "$data" --api-addr "$api" --raft-addr "$raft" "$@" &
pids+=($!)

ready=
for _ in $(seq 1 300); do
  kill -0 "${pids[0]}" 2>/dev/null || break
  if [ -s "$data/admin.token" ] && [ -s "$data/tls/ca.crt" ] &&
     curl -fsS --cacert "$data/tls/ca.crt" "https://$api/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "dev: the control plane did not become ready; see its log above" >&2
  exit 1
fi
bin/ccctl context set --server "$api" --token-file "$data/admin.token" --ca-cert-file "$data/tls/ca.crt" --use dev

# A metrics token for reading the control plane's /metrics (as Prometheus
# would), made once and kept in .dev/metrics.token while it works.
mtok=.dev/metrics.token
if ! { [ -s "$mtok" ] && curl -fsS -o /dev/null --cacert "$data/tls/ca.crt" -H "Authorization: Bearer $(cat "$mtok")" "https://$api/metrics" 2>/dev/null; }; then
  (umask 077; bin/ccctl -o json token create --role metrics -d "make dev: metrics" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' >"$mtok")
  [ -s "$mtok" ] || { echo "dev: could not create a metrics token" >&2; exit 1; }
fi

# The demo image, built here, loaded into the cluster's image store.
bin/cc-mkimage "$demo" .dev/cc-demo.tar
bin/ccctl image load .dev/cc-demo.tar

# One agent on this host: it joins once with a single-use token, then
# restarts as the same node.
if [ -s "$agentdir/identity/node.json" ]; then
  bin/cc-agent --config "$agentconf" --data-dir "$agentdir" --name dev-node --edge-http-addr "$edge_http" --edge-https-addr "$edge_https" --edge-access-log .dev/edge-access.log --status-addr "$status" --metrics-addr "$agent_metrics" ${agentflags[@]+"${agentflags[@]}"} &
else
  token=$(bin/ccctl -o json token create --role agent --uses 1 -d "make dev agent" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "dev: could not create a join token" >&2; exit 1; }
  bin/cc-agent --join "$api" --token "$token" --config "$agentconf" --data-dir "$agentdir" --name dev-node --edge-http-addr "$edge_http" --edge-https-addr "$edge_https" --edge-access-log .dev/edge-access.log --status-addr "$status" --metrics-addr "$agent_metrics" ${agentflags[@]+"${agentflags[@]}"} &
fi
pids+=($!)
for _ in $(seq 1 300); do
  kill -0 "${pids[1]}" 2>/dev/null || { echo "dev: the agent stopped; see its log above" >&2; exit 1; }
  bin/ccctl node ls 2>/dev/null | grep -q 'dev-node.*ready' && break
  sleep 0.1
done

cat <<MSG

  Dashboard: https://$api/ui/  (sign in with the admin token in
  $data/admin.token; the certificate is the cluster CA's,
  $data/tls/ca.crt: trust it in the browser or accept the warning once.
  \`make ui-dev\` serves it with hot reload instead.)

  Container Codes dev cluster is up: API https://$api, one agent (dev-node),
  data in .dev/. The demo image is $demo. The edge (routes and sites)
  serves on http://$edge_http and https://$edge_https (access log:
  .dev/edge-access.log). The agent's /healthz and /readyz: http://$status.
  Config files: $cpconf and $agentconf; after an edit,
  \`kill -HUP <pid>\` or \`bin/cc-controlplane config reload --data-dir $data\`
  applies them. In another shell:

    bin/ccctl status
    bin/ccctl node ls
    bin/ccctl run --name hello $demo -- /bin/busybox echo hello
    bin/ccctl logs hello
    bin/ccctl ps -a
    bin/ccctl run -d --name box $demo -- /bin/busybox sleep 1d
    bin/ccctl exec -it box -- /bin/busybox sh
    bin/ccctl cp box:/etc ./etc-copy
    bin/ccctl job submit --wait $demo -- /bin/busybox sh -c 'echo hi > /output/a.txt'
    bin/ccctl job output JOB -o out/
    bin/ccctl service create web --image $demo --replicas 2 -- /bin/busybox httpd -f -p 80 -h /etc
    bin/ccctl route create web --host web.localhost --service web --port 80
    curl -H 'Host: web.localhost' http://$edge_http/hosts   # each replica in turn
    curl --cacert $data/tls/ca.crt https://$api/readyz        # the server's checks
    bin/cc-controlplane status --data-dir $data               # the same, on this host

  Metrics (docs/metrics.md; Prometheus kit in docs/monitoring/): the control
  plane's with the metrics token in $mtok, the agent's on http://$agent_metrics/metrics:

    curl --cacert $data/tls/ca.crt -H "Authorization: Bearer \$(cat $mtok)" https://$api/metrics
    curl http://$agent_metrics/metrics

  Ctrl-C stops it; \`make dev\` again restarts it with the same cluster.

MSG
set +e
# The control plane ending ends the dev cluster. The agent may be stopped
# and restarted on its own (its containers keep running meanwhile):
#   bin/cc-agent --config .dev/agent.toml --data-dir .dev/agent --name dev-node --edge-http-addr 127.0.0.1:8000 --edge-https-addr 127.0.0.1:8443 --edge-access-log .dev/edge-access.log --metrics-addr 127.0.0.1:7445
wait "${pids[0]}"
