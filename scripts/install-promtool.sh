#!/usr/bin/env bash
# Installs promtool (for the metrics test: `promtool check metrics` on vpsctl's output) as
# /usr/local/lib/vpsctl/prometheus/promtool, from Debian's prometheus package.
#
# Why not `apt-get install prometheus`: the package ships /etc/init.d/prometheus, and on a host
# whose PID 1 is not systemd (this CI machine) its postinst starts a Prometheus server that
# listens on :9090 and keeps a TSDB, for a test that only needs the linter. So the .deb is
# fetched with `apt-get download` (apt checks it against the signed archive as for an
# install) and only usr/bin/promtool is unpacked. Idempotent: exits at once if promtool is on
# PATH or already installed.
set -euo pipefail
DEST_DIR=/usr/local/lib/vpsctl/prometheus
DEST=$DEST_DIR/promtool
say() { echo "install-promtool: $*"; }
if command -v promtool >/dev/null || [ -x "$DEST" ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-promtool: run as root" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
chmod 755 "$work"   # apt drops to _apt for downloads into the current directory
if ! apt-get download prometheus >download.log 2>&1; then
  say "apt-get download failed; refreshing the package lists once"
  apt-get update -qq
  apt-get download prometheus >download.log 2>&1 || { cat download.log >&2; exit 1; }
fi
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
mkdir -p "$DEST_DIR"
install -m 0755 usr/bin/promtool "$DEST.tmp"
mv "$DEST.tmp" "$DEST"
say "installed $("$DEST" --version 2>&1 | head -n1) as $DEST"
