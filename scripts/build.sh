#!/usr/bin/env bash
# Builds vpsctl: the one recipe the README, the tests, the demo and the benchmarks use.
#   scripts/build.sh [OUT]          default OUT: ./vpsctl
#   scripts/build.sh --man [OUT]    the man page vpsctl.8 (default OUT: ./vpsctl.8), from a
#                                   build with the CLI library's generator, which the fast
#                                   binary leaves out (see Tags)
#   VPSCTL_LIBC=musl|glibc          force the C library (default: musl when musl-gcc exists)
#
# Why musl: vpsctl is a cgo program (its C constructor joins namespaces and runs a VPS's init
# child before the Go runtime exists), and every vpsctl process, the init child's re-exec
# included, pays its C library's start-up. glibc's does more (IFUNC relocations, the CPU's
# features and cache geometry asked with CPUID, which traps to the hypervisor in some VMs) and
# touches more pages: an empty static program, exec to exit, 1.5 ms against musl's 0.7 ms on
# the machine docs/BENCHMARKS.md describes (0.6 against 0.1 ms on one where CPUID traps). A
# static binary needs no dynamic loader either. The glibc build works the same, only slower.
#
# Tags: urfave_cli_no_docs drops the CLI library's man-page generator (its markdown package's
# initialisation was 0.3 ms per command); netgo and osusergo keep a static binary free of NSS.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --man ]; then
  out=$(realpath -m "${2:-vpsctl.8}")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo -o "$tmp/vpsctl" ./cmd/vpsctl
  "$tmp/vpsctl" __man > "$out"
  echo "build: $out (man page)" >&2
  exit 0
fi
out=${1:-vpsctl}
tags=urfave_cli_no_docs,netgo,osusergo
# --version: the version (git describe: a tag, or the commit's short hash) and the commit.
ver=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
rev=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$rev" ] && ! git diff --quiet HEAD 2>/dev/null; then rev=$rev-dirty; fi
xflags="-X main.version=$ver -X main.commit=$rev"
libc=${VPSCTL_LIBC:-}
if [ -z "$libc" ]; then
  if command -v musl-gcc >/dev/null; then libc=musl; else libc=glibc; fi
fi
# vpsctl leaves the HTTP API's server out (tag noapi); vpsctl-api, beside it, is the same CLI
# with it, which `vpsctl serve` executes (cmd/vpsctl/serve.go says why).
api="$(dirname "$out")/vpsctl-api"
build() { # build OUT TAGS
  case $libc in
    musl)
      command -v musl-gcc >/dev/null || { echo "build: VPSCTL_LIBC=musl needs musl-gcc (apt-get install musl-tools)" >&2; exit 1; }
      CGO_ENABLED=1 CC=musl-gcc go build -trimpath -tags "$2" \
        -ldflags "$xflags -linkmode external -extldflags -static" -o "$1" ./cmd/vpsctl ;;
    glibc)
      CGO_ENABLED=1 go build -trimpath -tags "$2" -ldflags "$xflags" -o "$1" ./cmd/vpsctl ;;
    *)
      echo "build: VPSCTL_LIBC must be musl or glibc, not \"$libc\"" >&2; exit 2 ;;
  esac
}
build "$out" "$tags,noapi"
build "$api" "$tags"
# The cluster agent (cmd/vpsctl-cluster, package cluster), beside vpsctl, where vpsctl looks for
# it: pure Go, static. It is a program of its own because the etcd client's initialisation
# would cost every vpsctl command about 7 ms (see package registry).
agent="$(dirname "$out")/vpsctl-cluster"
CGO_ENABLED=0 go build -trimpath -tags netgo,osusergo -ldflags "-X main.version=$ver" -o "$agent" ./cmd/vpsctl-cluster
echo "build: $out ($libc), $api, $agent" >&2
