#!/usr/bin/env bash
# What the cluster registry adds to a create, as root:  bench/cluster.sh [-n RUNS]
#   Starts three etcd members (Debian's etcd-server) on 127.0.0.1 (client ports 23821..23823,
#   peer ports 23831..23833), each with its data in a directory of its own, twice: on the disk
#   (/var/tmp: each write waits for the members' fsyncs, as in production) and on tmpfs
#   (/dev/shm: the etcd round trips without the disk). Then times, with hyperfine, `vpsctl
#   create` of a busybox VPS with an address, each run after a destroy:
#     local     a state root without CLUSTER (the embedded default)
#     cluster   the same with CLUSTER set: the claim (one etcd transaction) overlapped with the
#               staging, the settling sent without waiting
#   and the raw etcd transaction for comparison (etcdctl txn is not used: its own start-up
#   would dominate; the agent's log has no timing either, so the figure is create's).
# The members are stopped by PID at the end; nothing else is left.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=30
while getopts n: o; do case $o in n) RUNS=$OPTARG ;; *) exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v etcd >/dev/null || need+=(etcd-server)
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

med() { sed -n 's/.*"median": *\([0-9.e-]*\).*/\1/p' "$1" | head -1 | awk '{printf "%.2f", $1 * 1000}'; }
time_create() { # time_create ROOT OUT
  local r=$1 out=$2
  VPSCTL_CONFIG=$W/$r.conf hyperfine -N --style none -w 3 -r "$RUNS" --export-json "$out" \
    --prepare "sh -c 'VPSCTL_CONFIG=$W/$r.conf $V --root $W/$r destroy -f 790 >/dev/null 2>&1; true'" \
    "$V --root $W/$r create 790 --template bench --ipadd 198.18.0.90" >/dev/null
}

echo "# create without a cluster"
time_create local "$W/local.json"
rows=()
for where in disk tmpfs; do
  case $where in disk) data=/var/tmp/vpsctl-bench-etcd.$$ ;; tmpfs) data=/dev/shm/vpsctl-bench-etcd.$$ ;; esac
  mkdir -p "$data"
  echo "# create with a three-member etcd, data on $where"
  start_etcd "$data"
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" hosts >/dev/null # the agent up first
  time_create cluster "$W/cluster-$where.json"
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" destroy -f 790 >/dev/null 2>&1 || true
  VPSCTL_CONFIG=$W/cluster.conf "$V" --root "$W/cluster" cluster stop >/dev/null
  stop_etcd
  rm -rf "$data"
  rows+=("$where $(med "$W/cluster-$where.json")")
done

l=$(med "$W/local.json")
echo
printf '%-34s %10s %10s\n' "vpsctl create (median of $RUNS)" "ms" "added ms"
printf '%-34s %10s %10s\n' "local (no CLUSTER)" "$l" "-"
for row in "${rows[@]}"; do
  set -- $row
  printf '%-34s %10s %10s\n' "cluster, etcd data on $1" "$2" "$(awk -v a="$2" -v b="$l" 'BEGIN{printf "%.2f", a - b}')"
done
