#!/usr/bin/env bash
# Makes an OpenVZ container to import, for `vpsctl import-vz` (README, "Coming from OpenVZ"):
#   scripts/vz-testdata.sh DIR      DIR/101.conf (vzimport/testdata/101.conf, a vzctl 4
#                                   config) and DIR/private-101 (a simfs private area: a
#                                   busybox root file system owned by host root, as OpenVZ
#                                   keeps one)
# Needs a vpsctl on PATH (or VPSCTL=path) and busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/vz-testdata.sh DIR}
vpsctl=${VPSCTL:-vpsctl}
mkdir -p "$out"
cp vzimport/testdata/101.conf "$out/101.conf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$vpsctl" --root "$tmp/state" template build busybox >/dev/null
rm -rf "$out/private-101"
cp -a "$tmp/state/templates/busybox/rootfs" "$out/private-101"
echo ct101.example.com > "$out/private-101/etc/hostname"
echo "vz-testdata: $out/101.conf $out/private-101" >&2
