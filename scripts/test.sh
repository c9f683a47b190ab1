#!/usr/bin/env bash
# The whole test suite, as root, on a fresh machine: installs what the tests need, checks
# formatting and vet, runs unit tests, fuzz seeds and the root integration tests (real VPSs), then
# the VM tier (scripts/vm-test.sh).
#   scripts/test.sh            everything
#   scripts/test.sh -short     skip the slow suites (and the VM tier)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test: run as root (the integration tests create real namespaces and cgroups)" >&2; exit 1; }

need=()
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)   # the issues' acceptance commands ping VPSs from the host
command -v flock >/dev/null || need+=(util-linux)
command -v gcc >/dev/null || need+=(gcc)
command -v musl-gcc >/dev/null || need+=(musl-tools)   # scripts/build.sh: vpsctl is built static with musl
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v sshpass >/dev/null || need+=(sshpass)
command -v systemd-analyze >/dev/null || need+=(systemd)   # contrib's test: systemd-analyze verify on vpsctl.service
command -v ssh >/dev/null || need+=(openssh-client)
command -v nft >/dev/null || need+=(nftables)   # source-address validation of routed addresses
command -v etcd >/dev/null || need+=(etcd-server)   # the cluster registry's tests run real etcd members
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)   # --diskspace's per-VPS images (issue 21)
command -v lxcfs >/dev/null || need+=(lxcfs)   # a VPS's own /proc/meminfo, cpuinfo, uptime (issue 21)
command -v zsh >/dev/null || need+=(zsh)   # the zsh completion script's test
command -v man >/dev/null || need+=(man-db)   # the generated man page, read with man -l
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
export PATH=$PATH:/usr/local/go/bin

echo "== CRIU >= 4.1 (for the checkpoint tests)"
bash scripts/install-criu.sh
echo "== promtool (for the metrics test; the linter only, no Prometheus server)"
bash scripts/install-promtool.sh

echo "== schemathesis (the API's schema test; TestAPISchemaFuzz does its checks where it cannot be had)"
# A PyPI package: where PyPI is unreachable the install fails quickly and TestSchemathesis
# says so and skips.
if ! command -v schemathesis >/dev/null && ! command -v st >/dev/null; then
  timeout 120 pip install -q schemathesis >/dev/null 2>&1 && echo "schemathesis installed" ||
    echo "schemathesis: cannot be installed here (pip install schemathesis failed)"
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$bad" ] || { echo "gofmt needed: $bad"; exit 1; }
echo "== go vet"
go vet ./...
go vet -tags noapi ./cmd/vpsctl   # vpsctl as scripts/build.sh builds it (serve_exec.go)
echo "== go test (unit, fuzz seeds, integration)"
# -p 1: integration packages share the host's cgroup and network tables.
go test -p 1 -count=1 -timeout 40m "$@" ./...
echo "== the glibc build: the paths of the C front door again"
# The suite above ran the musl build (scripts/build.sh's default); the CLI's front door finds its
# arguments differently under glibc (cmd/vpsctl/frontdoor.c), so the paths it takes run again.
VPSCTL_LIBC=glibc go test -p 1 -count=1 -timeout 10m -run 'TestCoreLifecycle|TestExecCommandErrors|TestRun|TestStartPaths|TestMonitorRests|TestEarlyExit|TestSpare$|TestStopKill$|TestDestroy$' "$@" ./tests
echo "== the VM tier: Debian 12 (kernel 6.1, systemd as PID 1, cgroup v2 only) in qemu"
# This machine is none of those; scripts/vm-test.sh boots one that is (README, "The VM tier").
# -short leaves it out: under emulation it takes minutes.
case " $* " in
  *" -short "*) echo "(left out: -short)" ;;
  *) bash scripts/vm-test.sh ;;
esac
