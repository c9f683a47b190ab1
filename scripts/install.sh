#!/usr/bin/env bash
# Installs vpsctl: the binary, its API server, its cluster agent, its man page and its bash and zsh completion.
#   scripts/install.sh                 into /usr/local (PREFIX=/usr for a package's layout)
#   DESTDIR=/tmp/pkg scripts/install.sh   staged, for packaging
#     PREFIX/sbin/vpsctl
#     PREFIX/sbin/vpsctl-api             `vpsctl serve` (cmd/vpsctl/serve.go), beside vpsctl
#     PREFIX/sbin/vpsctl-cluster         the cluster agent (README, "Cluster"), beside vpsctl
#     PREFIX/share/man/man8/vpsctl.8
#     PREFIX/share/bash-completion/completions/vpsctl
#     PREFIX/share/zsh/vendor-completions/_vpsctl
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}$prefix
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash scripts/build.sh "$tmp/vpsctl"
bash scripts/build.sh --man "$tmp/vpsctl.8"
"$tmp/vpsctl" completion bash > "$tmp/vpsctl.bash"
"$tmp/vpsctl" completion zsh > "$tmp/_vpsctl"
install -D -m 0755 "$tmp/vpsctl" "$dest/sbin/vpsctl"
install -D -m 0755 "$tmp/vpsctl-api" "$dest/sbin/vpsctl-api"
install -D -m 0755 "$tmp/vpsctl-cluster" "$dest/sbin/vpsctl-cluster"
install -D -m 0644 "$tmp/vpsctl.8" "$dest/share/man/man8/vpsctl.8"
install -D -m 0644 "$tmp/vpsctl.bash" "$dest/share/bash-completion/completions/vpsctl"
install -D -m 0644 "$tmp/_vpsctl" "$dest/share/zsh/vendor-completions/_vpsctl"
echo "install: $dest/sbin/vpsctl, vpsctl-api, vpsctl-cluster, its man page and completions" >&2
