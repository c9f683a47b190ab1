#!/usr/bin/env bash
# Installs CRIU >= 4.2 for vpsctl's checkpoint/restore into /usr/local/lib/vpsctl/criu/criu.
#
# Why not `apt-get install criu`: bookworm (and bookworm-backports) ship CRIU 3.17, which dies at
# start-up on kernels >= 6.x ("vdso: Unexpected rt vDSO area bounds"). Debian trixie's 4.1.1
# starts, but cannot dump a single TCP or UDP socket on kernels >= 6.16 (they refuse
# getsockopt(SO_PASSCRED) on inet sockets; CRIU 4.2 asks only unix and netlink ones), so no
# VPS running a network daemon could be checkpointed. Debian testing's (forky) and unstable's
# 4.2.x binaries need a newer glibc than bookworm's. So this script builds upstream 4.2.x from
# the testing (else unstable) source package's orig tarball, staying inside Debian's archive:
#   1. a PRIVATE apt configuration (its own sources list, lists and cache dirs under a temp dir)
#      holding forky and sid deb-src lines on the host's own mirror; the host's apt sources and
#      state are never touched;
#   2. the orig tarball is checked against the SHA-256 in the Sources index, which apt itself
#      verified against the signed InRelease (debian-archive-keyring has the keys);
#   3. bookworm build deps + runtime tools (tar, iproute2, iptables) via the host's apt-get;
#   4. `make criu`, installed as /usr/local/lib/vpsctl/criu/criu (atomic rename).
# Idempotent: exits 0 at once if a criu >= 4.2 is already installed (or on PATH).
#
# Env: VPSCTL_DEBIAN_MIRROR overrides the mirror URL (default: the host's, from its apt sources).
#      VPSCTL_CRIU_DIR installs into another directory (default /usr/local/lib/vpsctl/criu).
#      VPSCTL_CRIU_KEEP_BUILD=1 keeps the work dir.
set -euo pipefail

DEST_DIR=${VPSCTL_CRIU_DIR:-/usr/local/lib/vpsctl/criu}
DEST=$DEST_DIR/criu
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
BUILD_DEPS=(build-essential pkgconf python3 libbsd-dev libcap-dev libgnutls28-dev libnet1-dev
  libnftables-dev libnl-3-dev libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler
  protobuf-compiler uuid-dev libaio-dev xz-utils)
# Runtime helpers criu execs: tar (tmpfs contents), ip (network namespaces), iptables-restore
# (--network-lock iptables, the default). nftables locking is linked in via libnftables.
RUNTIME_DEPS=(tar iproute2 iptables)

say() { echo "install-criu: $*"; }
die() { echo "install-criu: ERROR: $*" >&2; exit 1; }

# version_ok BINARY: prints the version and succeeds if `BINARY --version` says >= 4.2.
version_ok() {
  local out maj min
  out=$("$1" --version 2>/dev/null) || return 1
  [[ $out =~ Version:[[:space:]]*([0-9]+)\.([0-9]+) ]] || return 1
  maj=${BASH_REMATCH[1]} min=${BASH_REMATCH[2]}
  if (( maj > 4 || (maj == 4 && min >= 2) )); then
    echo "$out" | sed -n 's/^Version:[[:space:]]*//p' | head -n1
    return 0
  fi
  return 1
}

ensure_runtime_deps() {
  local need=()
  command -v tar >/dev/null || need+=(tar)
  command -v ip >/dev/null || need+=(iproute2)
  command -v iptables-restore >/dev/null || need+=(iptables)
  if (( ${#need[@]} )); then
    apt_install "${need[@]}"
  fi
}

# apt_install PKG...: host apt (bookworm); refreshes the host's lists once if they are missing/stale.
apt_install() {
  say "apt-get install (bookworm): $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$WORK_LOG" 2>&1; then
    say "apt-get install failed; running apt-get update and retrying"
    apt-get update -q >"$WORK_LOG" 2>&1 || { tail -n 20 "$WORK_LOG" >&2; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$WORK_LOG" 2>&1 ||
      { tail -n 20 "$WORK_LOG" >&2; die "apt-get install $* failed"; }
  fi
}

[[ $(id -u) == 0 ]] || die "run as root"
WORK_LOG=$(mktemp /tmp/install-criu.XXXXXX.log)
trap 'rm -f "$WORK_LOG"' EXIT

# --- 0. already installed? -------------------------------------------------------------------
cands=("$DEST")
[[ -n ${VPSCTL_CRIU_DIR:-} ]] || cands+=("$(command -v criu 2>/dev/null || true)")
for cand in "${cands[@]}"; do
  [[ -n $cand && -x $cand ]] || continue
  if v=$(version_ok "$cand"); then
    ensure_runtime_deps
    say "criu $v already installed at $cand"
    exit 0
  fi
  say "ignoring $cand: not criu >= 4.2 ($("$cand" --version 2>/dev/null | head -n1 || echo 'no version'))"
done

START=$(date +%s)
command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian"
[[ -r $KEYRING ]] || die "$KEYRING missing (install debian-archive-keyring)"

# --- 1. the host's mirror --------------------------------------------------------------------
# First Debian (non-security) URI from the host's apt sources, one-line or deb822 format.
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk 'BEGIN{RS=""}
         /(^|\n)Enabled:[ \t]*no/ { next }
         /(^|\n)Suites:[^\n]*(bookworm|stable)/ {
           n = split($0, l, "\n")
           for (i=1;i<=n;i++) if (l[i] ~ /^URIs:/) { split(l[i], u, /[ \t]+/); print u[2]; exit }
         }' "$f"
  done
}
MIRROR=${VPSCTL_DEBIAN_MIRROR:-}
if [[ -z $MIRROR ]]; then
  MIRROR=$(find_mirror | grep -v -i -e security -e backports | head -n1 || true)
fi
[[ -n $MIRROR ]] || die "no Debian mirror found in /etc/apt/sources.list(.d); set VPSCTL_DEBIAN_MIRROR"
MIRROR=${MIRROR%/}
say "Debian mirror: $MIRROR"

# --- 2. private apt config: testing and unstable deb-src --------------------------------------
W=$(mktemp -d /var/tmp/vpsctl-criu-build.XXXXXX)
cleanup() {
  rm -f "$WORK_LOG"
  if [[ ${VPSCTL_CRIU_KEEP_BUILD:-} == 1 ]]; then say "work dir kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
mkdir -p "$W/etc/preferences.d" "$W/lists/partial" "$W/cache/archives/partial" "$W/src"
# apt downloads as the unprivileged _apt user where it exists: let it write its partial dirs.
chmod 0755 "$W"
if id _apt >/dev/null 2>&1; then chown _apt "$W/lists/partial" "$W/cache/archives/partial" "$W/src"; fi
printf "deb-src [signed-by=$KEYRING] $MIRROR %s main\n" forky sid >"$W/etc/sources.list"
APT_PRIV=(-o "Dir::Etc::sourcelist=$W/etc/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::Etc::preferencesparts=$W/etc/preferences.d" -o "Dir::State::Lists=$W/lists"
  -o "Dir::Cache=$W/cache" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Get::List-Cleanup=0" -o "Acquire::Languages=none")
say "fetching forky and sid Sources indexes (private apt state in $W)"
# apt hands its temporary files to the _apt user under TMPDIR: /var/tmp is world-writable on
# every Debian system, /tmp not always in a container.
TMPDIR=/var/tmp apt-get "${APT_PRIV[@]}" update -q >"$WORK_LOG" 2>&1 || { tail -n 20 "$WORK_LOG" >&2; die "apt-get update of forky/sid deb-src failed"; }
grep -q '^E:' "$WORK_LOG" && { tail -n 20 "$WORK_LOG" >&2; die "apt-get update of forky/sid deb-src reported errors"; }

# apt-cache showsrc prints the verified Sources stanza(s); pick the newest 4.2.x.
STANZAS=$(apt-cache "${APT_PRIV[@]}" showsrc criu 2>/dev/null) || die "criu not found in forky/sid Sources"
VERSION= DIRECTORY= ORIG= SHA= SIZE=
read -r VERSION DIRECTORY ORIG SHA SIZE < <(
  awk 'BEGIN{RS=""}
       /(^|\n)Package: criu(\n|$)/ {
         ver=""; dir=""; n=split($0, l, "\n"); insha=0
         for (i=1;i<=n;i++) {
           if (l[i] ~ /^Version: /) ver=substr(l[i], 10)
           else if (l[i] ~ /^Directory: /) dir=substr(l[i], 12)
           else if (l[i] ~ /^Checksums-Sha256:/) insha=1
           else if (insha && l[i] ~ /^ /) { split(l[i], f, " "); if (f[3] ~ /\.orig\.tar\.(xz|gz|bz2)$/) { sha=f[1]; size=f[2]; orig=f[3] } }
           else insha=0
         }
         if (ver ~ /^4\.2\./) print ver, dir, orig, sha, size
       }' <<<"$STANZAS" | sort -V | tail -n1) || true
[[ -n ${SHA:-} && -n ${ORIG:-} ]] || die "no criu 4.2.x orig tarball with a SHA-256 in forky/sid Sources (found: $(sed -n 's/^Version: //p' <<<"$STANZAS" | tr '\n' ' '))"
say "source criu $VERSION: $DIRECTORY/$ORIG ($SIZE bytes, sha256 $SHA)"

# --- 3. download + verify the orig tarball ---------------------------------------------------
# apt-helper uses apt's own transports/proxy settings and checks the hash; we check it again.
say "downloading $MIRROR/$DIRECTORY/$ORIG"
/usr/lib/apt/apt-helper "${APT_PRIV[@]}" download-file "$MIRROR/$DIRECTORY/$ORIG" "$W/src/$ORIG" "SHA256:$SHA" >"$WORK_LOG" 2>&1 ||
  { tail -n 20 "$WORK_LOG" >&2; die "download of $ORIG failed"; }
got=$(sha256sum "$W/src/$ORIG" | cut -d' ' -f1)
[[ $got == "$SHA" ]] || die "SHA-256 mismatch for $ORIG: got $got, Sources index says $SHA"
say "SHA-256 verified against the signed Sources index"

# --- 4. build deps (bookworm) ----------------------------------------------------------------
apt_install "${BUILD_DEPS[@]}" "${RUNTIME_DEPS[@]}"

# --- 5. build ----------------------------------------------------------------------------------
tar -C "$W/src" -xf "$W/src/$ORIG"
SRC=$(find "$W/src" -mindepth 1 -maxdepth 1 -type d | head -n1)
[[ -f $SRC/Makefile ]] || die "unexpected tarball layout in $ORIG"
JOBS=$(nproc 2>/dev/null || echo 2); (( JOBS >= 2 )) || JOBS=2
say "building criu in $SRC (make -j$JOBS criu; about a minute)"
if ! make -C "$SRC" -j"$JOBS" criu >"$W/build.log" 2>&1; then
  tail -n 30 "$W/build.log" >&2
  VPSCTL_CRIU_KEEP_BUILD=1
  die "make criu failed (full log: $W/build.log)"
fi
[[ -x $SRC/criu/criu ]] || die "build produced no criu/criu"

# --- 6. install ------------------------------------------------------------------------------
mkdir -p "$DEST_DIR"
install -m 0755 "$SRC/criu/criu" "$DEST.new"
mv -f "$DEST.new" "$DEST"
v=$(version_ok "$DEST") || die "installed $DEST does not report version >= 4.2"
say "installed criu $v at $DEST in $(( $(date +%s) - START )) s"
# A smoke test that the binary starts on this kernel (3.17 died here on the vDSO); `criu check`
# may legitimately warn about optional features, so only its start-up is required.
if "$DEST" check >"$WORK_LOG" 2>&1; then
  say "criu check: $(tail -n1 "$WORK_LOG")"
else
  say "criu check reported problems (not fatal):"; tail -n 5 "$WORK_LOG" | sed 's/^/  /'
fi
