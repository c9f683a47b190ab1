#!/usr/bin/env bash
# vpsctl's main job on the embedded default, on a fresh machine, as root: install what is
# missing (busybox-static, musl-tools), build vpsctl, build the busybox template, then create,
# start, exec into, stop and destroy a VPS, printing each step.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root" >&2; exit 1; }

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

need=()
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v musl-gcc >/dev/null || need+=(musl-tools)   # scripts/build.sh builds vpsctl static with musl
command -v lxcfs >/dev/null || need+=(lxcfs)            # the VPS's own /proc/meminfo, uptime, CPUs
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

OUT=${VPSCTL_DEMO_DIR:-/tmp/vpsctl-demo}
mkdir -p "$OUT"
step "building vpsctl -> $OUT/vpsctl"
bash scripts/build.sh "$OUT/vpsctl"
export VPSCTL_ROOT=$OUT/state
V="$OUT/vpsctl"
ID=${VPSCTL_DEMO_ID:-101}
# A previous, interrupted demo may have left its VPS: start from scratch.
"$V" destroy --force "$ID" >/dev/null 2>&1 || true

run() { printf '$ %s\n' "$*"; "$@"; }
step "template";  run "$V" template build busybox --force
step "create";    run "$V" create "$ID" --template busybox --hostname demo --name demo --memory 256M
step "start";     run "$V" start "$ID"
step "status";    run "$V" status "$ID"
step "exec";      run "$V" exec demo -- hostname
                  run "$V" exec "$ID" -- ps
                  run "$V" exec "$ID" -- id
                  run "$V" exec "$ID" -- head -1 /proc/meminfo
step "list";      run "$V" list
step "stop";      run "$V" stop "$ID" --timeout 20s
step "destroy";   run "$V" destroy "$ID"
                  run "$V" status "$ID"
                  run "$V" lxcfs stop
step "done: no mounts left: $(grep -c "$VPSCTL_ROOT" /proc/self/mountinfo || true)"
