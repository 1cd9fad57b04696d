#!/usr/bin/env bash
# Installs what Container Codes needs on a Debian machine, idempotently:
# containerd, runc, the CNI plugins, busybox-static (test images),
# iproute2, curl, prometheus (for promtool, which checks the monitoring
# kit; its daemon is not started) and chromium (the dashboard's
# end-to-end tests drive it headless; no browser is ever downloaded) from
# Debian's packages; then starts containerd when it is not running, and
# checks that node and npm (which build the dashboard) are there. Safe to run again: it does nothing
# when all is in place.
set -euo pipefail

need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# systemd-analyze checks the generated systemd units in `make test`.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The dashboard's end-to-end tests (internal/testing/e2e/ui) drive Debian's
# chromium headless.
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "prereqs: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "prereqs: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Only promtool is wanted of the prometheus package: its daemon must not
  # start. Without systemd, its init script would start it unless a
  # policy-rc.d says no; one is put in place for the install when none is.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/prereqs.sh: no daemon starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  status=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } || status=$?
  [ -z "$own_policy" ] || rm -f "$policy"
  [ "$status" = 0 ] || exit "$status"
  # Nor start at the next boot.
  if [[ " ${need[*]} " == *" prometheus "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/prometheus ]; then
      update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
fi

# containerd: start it when its socket does not answer (no systemd here).
sock=/run/containerd/containerd.sock
if ! ctr --address "$sock" version >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "prereqs: containerd is not running; start it as root" >&2
    exit 1
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start containerd
  else
    mkdir -p /var/log
    # A session of its own (setsid -f forks, so it never shares the caller's
    # process group): stopping `make dev` by its process group, or closing
    # the terminal, leaves containerd running.
    setsid -f containerd >>/var/log/containerd.log 2>&1 </dev/null
  fi
  for _ in $(seq 1 100); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctr --address "$sock" version >/dev/null 2>&1 || { echo "prereqs: containerd did not start; see /var/log/containerd.log" >&2; exit 1; }
  echo "prereqs: containerd started"
fi

# node and npm build the dashboard (frontend/, `make ui`). Without them the
# Go programs still build, serving a page that says how to build it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "prereqs: node or npm is missing: the dashboard (frontend/) cannot be built; install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)" >&2
else
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ]; then
    echo "prereqs: node $(node --version) is older than 20: the dashboard (frontend/) needs Node.js 20 or newer" >&2
  fi
fi
