#!/usr/bin/env bash
# vpsctl at scale, as root:  bench/scale.sh [-N 1000] [-n RUNS]
#   1. create from a large template (a Debian 12 tree, built with debootstrap if the state root
#      has none) against the busybox one: create is O(1), independent of the template's size;
#   2. N stopped VPSs: `vpsctl list -a` (table and JSON) and `status`;
#   3. the same N VPSs running at once: start each (per-VPS time), host memory per VPS
#      (MemAvailable drop, monitors included), `vpsctl list` of N running VPSs, then destroy -f
#      each (per-VPS time); nothing may be left (cgroups, links, monitors).
# Prints a table at the end. Host limits it checks first (vpsctl changes none of them):
# kernel.pid_max, kernel.pty.max, fs.inotify.max_user_instances, user.max_*_namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
N=1000 RUNS=20
while getopts N:n: o; do case $o in N) N=$OPTARG ;; n) RUNS=$OPTARG ;; *) exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine; }

W=${SCALE_DIR:-$(mktemp -d /tmp/vpsctl-scale.XXXXXX)}
mkdir -p "$W"
export VPSCTL_ROOT=$W/state
V=$W/vpsctl
BASE=20000
cleanup() {
  for ((i = 1; i <= N; i++)); do "$V" destroy -f $((BASE + i)) >/dev/null 2>&1 || true; done
  "$V" destroy -f 19999 >/dev/null 2>&1 || true
  "$V" lxcfs stop >/dev/null 2>&1 || true
  [ -n "${SCALE_DIR:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
bash scripts/build.sh "$V"

# Host limits a run of N VPSs needs (each running VPS: a monitor, an init and a getty, one pty).
need_pids=$((N * 4 + 2000))
[ "$(sysctl -n kernel.pid_max)" -ge "$need_pids" ] || echo "# note: kernel.pid_max $(sysctl -n kernel.pid_max) < $need_pids: raise it for $N VPSs" >&2
[ "$(sysctl -n kernel.pty.max)" -ge "$N" ] || { echo "kernel.pty.max < $N: sysctl -w kernel.pty.max=$((N + 1024))" >&2; exit 1; }
for ns in user net pid mnt ipc uts cgroup; do
  [ "$(sysctl -n user.max_${ns}_namespaces)" -ge "$N" ] || { echo "user.max_${ns}_namespaces < $N" >&2; exit 1; }
done

"$V" template list > "$W/templates"   # (not piped into grep -q: pipefail would see SIGPIPE)
grep -q '^bench ' "$W/templates" || "$V" template build busybox bench >/dev/null
if ! grep -q '^debian-12 ' "$W/templates"; then
  echo "# building the debian-12 template (debootstrap, about a minute)"
  "$V" template build debian-12 >/dev/null
fi
big=$(du -sm "$W/state/templates/debian-12" 2>/dev/null | cut -f1)
small=$(du -sm "$W/state/templates/bench" 2>/dev/null | cut -f1)

med() { sed -n 's/.*"median": *\([0-9.e-]*\).*/\1/p' "$1" | head -1 | awk '{printf "%.2f", $1 * 1000}'; }
hf() { # hf OUT CMD [PREPARE]
  local out=$1 cmd=$2 prep=${3:-}
  if [ -n "$prep" ]; then hyperfine -N --style none -w 2 -r "$RUNS" --prepare "$prep" --export-json "$out" "$cmd" >/dev/null
  else hyperfine -N --style none -w 2 -r "$RUNS" --export-json "$out" "$cmd" >/dev/null; fi
}

echo "# create from a ${big} MB template vs a ${small} MB one (each run after a destroy)"
hf "$W/c-big.json" "$V create 19999 --template debian-12" "sh -c '$V destroy -f 19999 >/dev/null 2>&1; true'"
hf "$W/c-small.json" "$V create 19999 --template bench" "sh -c '$V destroy -f 19999 >/dev/null 2>&1; true'"
"$V" destroy -f 19999 >/dev/null

echo "# creating $N VPSs"
t0=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do "$V" create $((BASE + i)) --template bench >/dev/null; done
t1=$EPOCHREALTIME
create_all=$(echo "($t1 - $t0) * 1000 / $N" | bc -l)
hf "$W/list-a.json" "$V list -a"
hf "$W/list-a-json.json" "$V list -a --format json"
hf "$W/status.json" "$V status $((BASE + N / 2))"

mi() { awk -v k="$1:" '$1==k {print $2}' /proc/meminfo; }
sync; sleep 2
mem0=$(mi MemAvailable)
echo "# starting $N VPSs"
t0=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do "$V" start $((BASE + i)) >/dev/null; done
t1=$EPOCHREALTIME
start_all=$(echo "($t1 - $t0) * 1000 / $N" | bc -l)
sleep 5
mem1=$(mi MemAvailable)
running=$("$V" list --format json | grep -c '"state": "running"')
hf "$W/list-run.json" "$V list"
hf "$W/list-run-json.json" "$V list --format json"
hf "$W/exec.json" "$V exec $((BASE + N / 2)) -- /bin/true"
monitors=$(ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "vpsctl-monitor"' | wc -l)
mon_priv=$(for p in $(ps -eo pid=,comm= | awk '$2=="vpsctl-monitor" {print $1}' | head -50); do
  awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' /proc/"$p"/smaps_rollup; done | awk '{s += $1; n++} END {if (n) printf "%.0f", s / n}')

echo "# destroying $N running VPSs"
t0=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do "$V" destroy -f $((BASE + i)) >/dev/null; done
t1=$EPOCHREALTIME
destroy_all=$(echo "($t1 - $t0) * 1000 / $N" | bc -l)
left_cg=$( (ls -d /sys/fs/cgroup/*/vpsctl/2[0-9][0-9][0-9][0-9] 2>/dev/null || true) | wc -l)
left_mon=$(ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "vpsctl-monitor"' | wc -l)

printf '\n== vpsctl at scale (N=%d, %s)\n' "$N" "$(date -u +%F)"
printf '| measurement | median | target |\n|---|---|---|\n'
printf '| create from debian-12 (%s MB) | %s ms | <= 50 ms, independent of size |\n' "$big" "$(med "$W/c-big.json")"
printf '| create from busybox (%s MB) | %s ms | |\n' "$small" "$(med "$W/c-small.json")"
printf '| create, per VPS, %d in a row (mean) | %.2f ms | |\n' "$N" "$create_all"
printf '| `list -a`, %d stopped | %s ms | <= 100 ms |\n' "$N" "$(med "$W/list-a.json")"
printf '| `list -a --format json`, %d stopped | %s ms | <= 100 ms |\n' "$N" "$(med "$W/list-a-json.json")"
printf '| `status`, with %d VPSs | %s ms | |\n' "$N" "$(med "$W/status.json")"
printf '| start, per VPS, up to %d running (mean) | %.2f ms | |\n' "$N" "$start_all"
printf '| running at once | %d of %d (%d monitors) | %d |\n' "$running" "$N" "$monitors" "$N"
printf '| host memory per running VPS (MemAvailable drop) | %d KiB | <= 1536 KiB |\n' "$(( (mem0 - mem1) / N ))"
printf '| monitor private memory (Private_Clean+Dirty, mean of 50) | %s KiB | |\n' "$mon_priv"
printf '| `list`, %d running | %s ms | <= 100 ms |\n' "$N" "$(med "$W/list-run.json")"
printf '| `list --format json`, %d running | %s ms | <= 100 ms |\n' "$N" "$(med "$W/list-run-json.json")"
printf '| `exec -- /bin/true` with %d running | %s ms | |\n' "$N" "$(med "$W/exec.json")"
printf '| destroy -f, per running VPS (mean) | %.2f ms | |\n' "$destroy_all"
printf '| left behind: cgroups, monitors | %d, %d | 0, 0 |\n' "$left_cg" "$left_mon"
