#!/usr/bin/env bash
# Soak: N create/start/exec/stop/destroy cycles (default 1000), then compare host mounts,
# cgroups, links, processes, open files and memory with before. As root:
#   scripts/soak.sh [N]
# Not part of the test suite (it takes a while); exits non-zero if anything leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
[ "$(id -u)" = 0 ] || { echo "soak: run as root" >&2; exit 1; }
W=$(mktemp -d /tmp/vpsctl-soak.XXXXXX)
export VPSCTL_ROOT=$W/state
bash scripts/build.sh "$W/vpsctl"
V="$W/vpsctl"
trap '"$V" destroy -f 998 >/dev/null 2>&1 || true; "$V" lxcfs stop >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$V" template build busybox >/dev/null

counts() {
  local mounts cg links procs files mem
  mounts=$(wc -l < /proc/self/mountinfo)
  # Spare groups (vpsctl/.spare-*, at most two per hierarchy) are a cache, not a leak.
  cg=$(find /sys/fs/cgroup -maxdepth 3 -type d ! -name '.spare-*' 2>/dev/null | wc -l)
  links=$(ip -o link | wc -l)
  procs=$(ls -d /proc/[0-9]* | wc -l)
  files=$(cut -f1 /proc/sys/fs/file-nr)
  mem=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  echo "mounts=$mounts cgroups=$cg links=$links processes=$procs open_files=$files memavail_kib=$mem"
}
before=$(counts)
echo "before: $before"
t0=$SECONDS
for ((i = 1; i <= N; i++)); do
  "$V" create 998 --template busybox --ipadd 198.18.0.98 >/dev/null
  "$V" start 998 >/dev/null 2>"$W/start.err" || { cat "$W/start.err" >&2; exit 1; }   # (host-setting warnings are expected)
  [ "$("$V" exec 998 -- hostname)" = vps998 ] || { echo "cycle $i: exec failed" >&2; exit 1; }
  "$V" stop --kill 998 >/dev/null
  "$V" destroy 998 >/dev/null
  (( i % 100 == 0 )) && echo "  $i cycles, $((SECONDS - t0)) s: $(counts)"
done
sleep 1
after=$(counts)
echo "after:  $after"
status=0
for k in mounts cgroups links; do
  b=$(sed -n "s/.*$k=\([0-9]*\).*/\1/p" <<<"$before"); a=$(sed -n "s/.*$k=\([0-9]*\).*/\1/p" <<<"$after")
  if [ "$a" != "$b" ]; then echo "LEAK: $k $b -> $a"; status=1; else echo "ok: $k $b -> $a"; fi
done
bp=$(sed -n 's/.*processes=\([0-9]*\).*/\1/p' <<<"$before"); ap=$(sed -n 's/.*processes=\([0-9]*\).*/\1/p' <<<"$after")
echo "processes $bp -> $ap (other users of this machine move this number)"
exit $status
