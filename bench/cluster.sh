#!/usr/bin/env bash
# What the cluster registry adds to a create, as root:  bench/cluster.sh [-n RUNS]
#   Starts three etcd members (Debian's etcd-server) on 127.0.0.1 (client ports 23821..23823,
#   peer ports 23831..23833), each with its data in a directory of its own, twice: on the disk
#   (/var/tmp: each write waits for the members' fsyncs, as in production) and on tmpfs
#   (/dev/shm: the etcd round trips without the disk). Then times `vpsctl create` of a busybox
#   VPS with an address, each run after a destroy, alternating:
#     local     a state root without CLUSTER (the embedded default)
#     cluster   the same with CLUSTER set: the claim (one etcd transaction, through the host's
#               agent) overlapped with the staging, the settling sent without waiting
# The members are stopped by PID at the end; nothing else is left.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=30
while getopts n: o; do case $o in n) RUNS=$OPTARG ;; *) exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi
export PATH=$PATH:/usr/local/go/bin

W=$(mktemp -d /tmp/vpsctl-bench-cluster.XXXXXX)
V=$W/vpsctl
PIDS=()
stop_etcd() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
  PIDS=()
}
cleanup() {
  for r in local cluster; do
    VPSCTL_CONFIG=$W/$r.conf "$V" --root "$W/$r" destroy -f 790 >/dev/null 2>&1 || true
  done
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" cluster stop >/dev/null 2>&1 || true
  stop_etcd
  rm -rf "$W" /var/tmp/vpsctl-bench-etcd.$$ /dev/shm/vpsctl-bench-etcd.$$
}
trap cleanup EXIT
bash scripts/build.sh "$V"

start_etcd() { # start_etcd DATADIR
  local data=$1 initial="" i
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:$((23831 + i))"; done
  for i in 0 1 2; do
    etcd --name m$i --data-dir "$data/m$i" \
      --listen-client-urls http://127.0.0.1:$((23821 + i)) --advertise-client-urls http://127.0.0.1:$((23821 + i)) \
      --listen-peer-urls http://127.0.0.1:$((23831 + i)) --initial-advertise-peer-urls http://127.0.0.1:$((23831 + i)) \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token bench-$$ >"$data/m$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 0 1 2; do
    for _ in $(seq 200); do curl -fs http://127.0.0.1:$((23821 + i))/health >/dev/null 2>&1 && break; sleep 0.05; done
  done
}

printf '' > "$W/local.conf"
printf 'CLUSTER="http://127.0.0.1:23821,http://127.0.0.1:23822,http://127.0.0.1:23823"\nNODE="bench"\n' > "$W/cluster.conf"
for r in local cluster; do VPSCTL_CONFIG=$W/$r.conf "$V" --root "$W/$r" template build busybox bench >/dev/null; done

# One create timed: wall time of the command in microseconds (bash's $EPOCHREALTIME; the fork
# and exec from bash cost both sides alike).
time_create() { # time_create ROOT -> prints microseconds
  local r=$1 t0 t1
  VPSCTL_CONFIG=$W/$r.conf "$V" --root "$W/$r" destroy -f 790 >/dev/null 2>&1 || true
  t0=$EPOCHREALTIME
  VPSCTL_CONFIG=$W/$r.conf "$V" --root "$W/$r" create 790 --template bench --ipadd 198.18.0.90 >/dev/null
  t1=$EPOCHREALTIME
  echo $(( (${t1/./} - ${t0/./}) ))
}
median() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m / 1000}'; }

# The machine may be busy with other work: local and cluster creates alternate, run by run, so
# that both see the same load; the medians and the median of the pairs' differences are shown.
rows=()
for where in disk tmpfs; do
  case $where in disk) data=/var/tmp/vpsctl-bench-etcd.$$ ;; tmpfs) data=/dev/shm/vpsctl-bench-etcd.$$ ;; esac
  mkdir -p "$data"
  echo "# three etcd members, data on $where: $RUNS creates each, alternating"
  start_etcd "$data"
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" hosts >/dev/null # the agent up first
  for _ in 1 2 3; do time_create local >/dev/null; time_create cluster >/dev/null; done # warm-up
  : > "$W/l" ; : > "$W/c" ; : > "$W/d"
  for ((n = 0; n < RUNS; n++)); do
    if ((n % 2)); then l=$(time_create local); c=$(time_create cluster); else c=$(time_create cluster); l=$(time_create local); fi
    echo "$l" >> "$W/l"; echo "$c" >> "$W/c"; echo $((c - l)) >> "$W/d"
  done
  rows+=("$where $(median < "$W/l") $(median < "$W/c") $(median < "$W/d")")
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" destroy -f 790 >/dev/null 2>&1 || true
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" cluster stop >/dev/null
  stop_etcd
  rm -rf "$data"
done

echo
printf '%-26s %12s %12s %16s\n' "create, median of $RUNS" "local ms" "cluster ms" "added ms (pairs)"
for row in "${rows[@]}"; do
  set -- $row
  printf '%-26s %12s %12s %16s\n' "etcd data on $1" "$2" "$3" "$4"
done
