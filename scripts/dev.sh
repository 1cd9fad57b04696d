#!/usr/bin/env bash
# Runs a single-node dev cluster in the foreground (called by `make dev`).
# Data lives in .dev/ in the checkout (git-ignored). The first run bootstraps
# the cluster; later runs restart it with the same identity and data.
# It writes ccctl's "dev" context so that `bin/ccctl status` just works.
set -euo pipefail
cd "$(dirname "$0")/.."

data=.dev/data
api=${CC_DEV_API_ADDR:-127.0.0.1:7443}
raft=${CC_DEV_RAFT_ADDR:-127.0.0.1:7444}
mkdir -p "$data"

bin/cc-controlplane --bootstrap --data-dir "$data" --api-addr "$api" --raft-addr "$raft" "$@" &
pid=$!
# Ctrl-C or a TERM reaches the server, which shuts down gracefully; if this
# script fails first, it does not leave the server behind.
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT

ready=
for _ in $(seq 1 300); do
  kill -0 $pid 2>/dev/null || break
  if [ -s "$data/admin.token" ] && [ -s "$data/tls/ca.crt" ] &&
     curl -fsS --cacert "$data/tls/ca.crt" "https://$api/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "dev: the control plane did not become ready; see its log above" >&2
  kill -TERM $pid 2>/dev/null || true
  wait $pid || true
  exit 1
fi

bin/ccctl context set --server "$api" --token-file "$data/admin.token" --ca-cert-file "$data/tls/ca.crt" --use dev
cat <<MSG

  Container Codes dev cluster is up (API https://$api, data in $data).
  In another shell:

    bin/ccctl status
    bin/ccctl -o json status
    curl --cacert $data/tls/ca.crt -H "Authorization: Bearer \$(cat $data/admin.token)" https://$api/v1/status

  Ctrl-C stops it; \`make dev\` again restarts it with the same cluster.

MSG
set +e
wait $pid
rc=$?
# The first wait returns when a trapped signal arrives; wait for the exit.
while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
exit $rc
