#!/usr/bin/env bash
# What `vpsctl metrics` costs, as root:  bench/metrics.sh [-N 100] [-n RUNS]
# Starts N busybox VPSs in a state root of its own, then times RUNS runs of `vpsctl metrics`
# (wall clock, and the CPU time of the command: user + system) and of `vpsctl list` beside it,
# checks the output with promtool (scripts/install-promtool.sh), and destroys the VPSs. The
# per-VPS figures extrapolate to 1000 VPSs (each VPS is read the same way: its groups'
# counters and its init's /proc/PID/net/dev). Nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
N=100 RUNS=20
while getopts N:n: o; do case $o in N) N=$OPTARG ;; n) RUNS=$OPTARG ;; *) exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
W=$(mktemp -d /tmp/vpsctl-metrics.XXXXXX)
export VPSCTL_ROOT=$W/state
V=$W/vpsctl
BASE=21000
cleanup() {
  for ((i = 1; i <= N; i++)); do "$V" destroy -f $((BASE + i)) >/dev/null 2>&1 || true; done
  rm -rf "$W"
}
trap cleanup EXIT
bash scripts/build.sh "$V" >/dev/null
"$V" template build busybox bench >/dev/null
echo "# starting $N VPSs"
for ((i = 1; i <= N; i++)); do "$V" create $((BASE + i)) --template bench >/dev/null && "$V" start $((BASE + i)) >/dev/null; done
sleep 2

# measure CMD: RUNS runs; prints the median wall time and the median CPU time, in ms.
measure() {
  local walls=() cpus=() out
  for ((r = 0; r < RUNS; r++)); do
    out=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null; } 2>&1 )
    read -r real user sys <<<"$out"
    walls+=("$(echo "$real * 1000" | bc -l)")
    cpus+=("$(echo "($user + $sys) * 1000" | bc -l)")
  done
  local w c
  w=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$((RUNS / 2 + 1))p")
  c=$(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "$((RUNS / 2 + 1))p")
  printf '%.1f %.1f\n' "$w" "$c"
}
read -r mw mc <<<"$(measure "$V" metrics)"
read -r lw lc <<<"$(measure "$V" list)"
"$V" metrics >"$W/out.prom"
bytes=$(wc -c <"$W/out.prom")
pt=$(command -v promtool || echo /usr/local/lib/vpsctl/prometheus/promtool)
if [ -x "$pt" ]; then "$pt" check metrics <"$W/out.prom" && check=ok || check=FAILED; else check="(no promtool)"; fi
running=$(grep -c 'state="running"} 1' "$W/out.prom")
printf '\n%-40s %10s %10s\n' "$N VPSs running ($running in the output)" "wall ms" "CPU ms"
printf '%-40s %10s %10s\n' "vpsctl metrics" "$mw" "$mc"
printf '%-40s %10s %10s\n' "vpsctl list (for comparison)" "$lw" "$lc"
printf '%-40s %10.2f %10.2f\n' "metrics per VPS" "$(echo "$mw / $N" | bc -l)" "$(echo "$mc / $N" | bc -l)"
printf '%-40s %10.0f %10.0f\n' "metrics, 1000 VPSs (extrapolated)" "$(echo "$mw * 1000 / $N" | bc -l)" "$(echo "$mc * 1000 / $N" | bc -l)"
printf '%-40s %10d\n' "output bytes" "$bytes"
printf '%-40s %10s\n' "promtool check metrics" "$check"
