#!/usr/bin/env bash
# The VM tier: vpsctl's tests on the host most providers run, which this machine is not:
# Debian 12's own kernel (6.1), systemd as PID 1, cgroup v2 only. As root:
#   scripts/vm-test.sh                   build (or reuse) the image, boot it, run the tier
#   VM_TESTS='^TestIdentity$' scripts/vm-test.sh      another -test.run selection
#   VM_REBOOT=0 scripts/vm-test.sh       leave out the host reboot test
#   VM_ACCEL=tcg|kvm scripts/vm-test.sh  skip the KVM probe
#   VM_DEBUG=FILE scripts/vm-test.sh     run the shell script FILE in the guest instead (in the
#                                        directory of vpsctl and the test binaries), show its output
# Each run's outputs are kept in /var/tmp/vpsctl-vm-results (VM_RESULTS) until the next run.
# The image (scripts/vm-image.sh: debootstrap, mkfs.ext4 -d) is cached in /var/cache/vpsctl-vm
# (VM_CACHE) keyed on vm-image.sh's hash. vpsctl and the test binaries are built here (nothing
# is compiled in the emulated VM), shared with the guest over 9p with scripts/vm-guest.sh,
# which runs them at boot and powers off. The guest writes to a qcow2 overlay of the image (the
# cached image stays clean), which its reboot (the reboot test) keeps: qemu is started again.
# Every wait is bounded: the boot (a guest that prints nothing for long is stalled), the whole
# run (VM_TIMEOUT seconds). KVM is used where it boots this kernel, else TCG emulation.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "vm-test: run as root (debootstrap, and the tests inside make real VPSs)" >&2; exit 1; }
export PATH=$PATH:/usr/local/go/bin

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v gcc >/dev/null || need+=(gcc)
command -v musl-gcc >/dev/null || need+=(musl-tools)
if [ ${#need[@]} -gt 0 ]; then
  echo "== vm-test: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The tier: lifecycle, identity, cgroup (limits, beancounters, suspend, device filter,
# placement under systemd), network and bad-input tests, and the hostile-tenant rows that
# lean on cgroup v2 (a device node made late; the fork bomb row, against the default process
# limit, takes 3 minutes under TCG: TestCgroupLimits' fork bomb covers pids.max here).
tests_default='^(TestCgroupEveryLimit|TestCoreLifecycle|TestPoweroffFromInside|TestSurvivesCLIAndKill|TestExecCommandErrors|TestMonitorRests|TestDestroyReclaims|TestRun|TestKillAndStartAgain|TestStartPaths|TestRunRmKilled|TestMonitorLeavesTakenOverVPS|TestStopKill|TestDestroy|TestHostileLateDeviceNode|TestIdentity|TestCgroupLimits|TestSpareGroups|TestSystemdPlacement|TestDeviceFilter|TestNetworkRouted|TestNetworkRefusals|TestNetworkCrash|TestNetworkBridged|TestBadInput|TestFailedStartLeavesNothing|TestCreateFailureLeavesNoTrace|TestStartCgroupRefusal|TestStartOutOfDescriptors)$'
# A test renamed or removed would drop out of the tier unseen: each name must still be a test.
for t in $(echo "$tests_default" | tr -d '^()$' | tr '|' ' '); do
  grep -q "^func $t(" tests/*.go || { echo "vm-test: $t is no test in tests/ any more: update the tier's list" >&2; exit 1; }
done
VM_TESTS=${VM_TESTS:-$tests_default}
VM_REBOOT=${VM_REBOOT:-1}
VM_TIMEOUT=${VM_TIMEOUT:-1200}      # the whole run, boots included: the tier's budget, 20 min
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-300}   # from qemu's start to the guest script's first word
VM_STALL=${VM_STALL:-150}           # boot console silent this long: stalled (a TCG boot on a busy host
                                    # has been silent for 61 s while systemd loaded its units)
VM_MEM=${VM_MEM:-3072}
cache=${VM_CACHE:-/var/cache/vpsctl-vm}

# The image, built once per recipe.
key=$(sha256sum scripts/vm-image.sh | cut -c1-16)
img=$cache/$key
if [ ! -f "$img/rootfs.img" ]; then
  echo "== vm-test: building the Debian 12 image ($img)"
  t0=$(date +%s)
  mkdir -p "$cache"
  bash scripts/vm-image.sh "$img"
  echo "== vm-test: image built in $(($(date +%s) - t0)) s"
  # Images of older recipes are of no further use.
  find "$cache" -mindepth 1 -maxdepth 1 ! -name "$key" ! -name "*$key" ! -name '*.build.*' -exec rm -rf {} +
fi

work=$(mktemp -d /tmp/vpsctl-vm.XXXXXX)
qpid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== vm-test: building vpsctl and the test binaries on the host"
payload=$work/payload
mkdir -p "$payload/bin"
bash scripts/build.sh "$payload/bin/vpsctl"
CGO_ENABLED=1 go test -c -o "$payload/bin/tests.test" ./tests
go test -c -o "$payload/bin/hostcheck.test" ./internal/hostcheck
cp scripts/vm-guest.sh "$payload/guest.sh"
[ -z "${VM_DEBUG:-}" ] || { cp "$VM_DEBUG" "$payload/debug.sh"; VM_REBOOT=0; }
results=${VM_RESULTS:-/var/tmp/vpsctl-vm-results}

# run ACCEL: one run of the tier: a fresh copy-on-write disk over the cached image, then as
# many boots as the guest asks for (it asks for one reboot, the reboot test's). 0 if the guest
# script finished, 2 if the first boot stalled or timed out before the guest script started,
# 1 otherwise.
run() {
  local accel=$1 rc boots=0
  rm -rf "$payload"/{boots,facts,done,reboot-requested,*.out,*.rc}
  cat >"$payload/env" <<EOF
VM_TESTS='$VM_TESTS'
VM_TEST_TIMEOUT=$((VM_TIMEOUT / 60))m
VM_REBOOT=$([ "$VM_REBOOT" = 1 ] && echo 1)
EOF
  # The overlay takes the guest's writes (and keeps them across its reboot); the cached image
  # is only read.
  rm -f "$work/disk.qcow2"
  qemu-img create -q -f qcow2 -F raw -b "$img/rootfs.img" "$work/disk.qcow2"
  : >"$work/console.log"
  while :; do
    boots=$((boots + 1))
    rc=0
    boot "$accel" || rc=$?
    [ "$rc" = 0 ] || { [ "$boots" -gt 1 ] && [ "$rc" = 2 ] && rc=1; return "$rc"; }
    # A reboot of the guest ends qemu (-no-reboot): a cold start of the emulator on the same
    # disk boots it again. Started afresh, TCG boots this kernel in 30 s; a warm reset inside
    # qemu took four times as long.
    [ -f "$payload/reboot-requested" ] && [ "$boots" -lt 3 ] || break
    rm -f "$payload/reboot-requested"
    echo "== vm-test: the guest rebooted; booting it again"
  done
  [ -f "$payload/done" ] || return 1
}

# boot ACCEL: one boot of the VM, until qemu exits: 0, or 2 if the boot stalled or timed out
# before the guest script started.
boot() {
  local accel=$1 cpu left
  left=$((deadline - $(date +%s)))
  [ "$left" -gt 0 ] || { echo "vm-test: the VM ran out of its ${VM_TIMEOUT} s" >&2; return 1; }
  case $accel in
    kvm) cpu=(-accel kvm -cpu "${VM_KVM_CPU:-qemu64}") ;;
    tcg) cpu=(-accel tcg,thread=multi -cpu max) ;;
  esac
  # -no-reboot: a guest reboot or a kernel panic (panic=5) ends qemu; run() tells them apart
  # by the guest script's reboot-requested.
  timeout --kill-after=10 "$left" qemu-system-x86_64 -name vpsctl-vmtest -machine q35 \
    "${cpu[@]}" -smp 2 -m "$VM_MEM" -nodefaults -display none -monitor none -no-reboot \
    -chardev "file,id=console,path=$work/console.log,append=on" -serial chardev:console -nic none \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=5 edd=off" \
    -drive "file=$work/disk.qcow2,format=qcow2,if=virtio" \
    -virtfs "local,path=$payload,mount_tag=payload,security_model=passthrough,id=payload" &
  qpid=$!
  local t0 last size seen=0 now shown=0 before
  t0=$(date +%s); last=$t0
  size=$(stat -c %s "$work/console.log")
  before=$(cat "$payload/boots" 2>/dev/null | wc -l)
  while kill -0 "$qpid" 2>/dev/null; do
    sleep 2
    now=$(date +%s)
    if [ "$seen" = 0 ]; then
      if [ "$(cat "$payload/boots" 2>/dev/null | wc -l)" -gt "$before" ]; then
        seen=1
        echo "== vm-test: booted ($accel) in $((now - t0)) s"
      else
        local s; s=$(stat -c %s "$work/console.log")
        [ "$s" != "$size" ] && { size=$s; last=$now; }
        if [ $((now - last)) -ge "$VM_STALL" ] || [ $((now - t0)) -ge "$VM_BOOT_TIMEOUT" ]; then
          echo "== vm-test: boot ($accel) stalled: no progress for $((now - last)) s, $((now - t0)) s since start; console's last lines:" >&2
          tail -5 "$work/console.log" >&2
          kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true; qpid=
          return 2
        fi
      fi
    fi
    # Pass on the tests' progress: the lines naming a test's result.
    if [ -f "$payload/tests.out" ]; then
      local n; n=$(wc -l <"$payload/tests.out")
      if [ "$n" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${n}p" "$payload/tests.out" | grep -E '^(--- |    --- |ok|FAIL|PASS|panic)' || true
        shown=$n
      fi
    fi
  done
  local rc=0
  wait "$qpid" || rc=$?
  qpid=
  echo "== vm-test: qemu exited ($rc) after $(($(date +%s) - t0)) s"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "vm-test: the VM ran out of its ${VM_TIMEOUT} s" >&2
    return 1
  fi
  [ "$seen" = 1 ] || return 2
}

deadline=$(($(date +%s) + VM_TIMEOUT))
accel=${VM_ACCEL:-}
verdict=$cache/accel-$(uname -r)-$(qemu-system-x86_64 --version | head -1 | tr -dc '0-9.')-$key
if [ -z "$accel" ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ "$(cat "$verdict" 2>/dev/null)" != tcg ]; then accel=kvm; else accel=tcg; fi
fi
rc=0
if [ "$accel" = kvm ]; then
  # A KVM that cannot boot this kernel stalls early (seen: after "Probing EDD"): a short boot
  # bound, then TCG, and the verdict kept for this host kernel, qemu and image.
  VM_BOOT_TIMEOUT_SAVED=$VM_BOOT_TIMEOUT VM_STALL_SAVED=$VM_STALL
  VM_BOOT_TIMEOUT=60 VM_STALL=30
  run kvm || rc=$?
  VM_BOOT_TIMEOUT=$VM_BOOT_TIMEOUT_SAVED VM_STALL=$VM_STALL_SAVED
  if [ "$rc" = 2 ] && [ -z "${VM_ACCEL:-}" ]; then
    echo tcg >"$verdict"
    echo "== vm-test: KVM does not boot this kernel here; TCG"
    accel=tcg rc=0
  fi
fi
[ "$accel" = tcg ] && { run tcg || rc=$?; }

rm -rf "$results" && mkdir -p "$results"
cp "$work/console.log" "$payload"/{boots,facts,*.out,*.rc} "$results/" 2>/dev/null || true
echo "== vm-test: the guest (outputs in $results)"
cat "$payload/facts" 2>/dev/null || true
status=0
[ "$rc" = 0 ] || status=1
for s in hostcheck tests reboot1 reboot2 debug; do
  [ -f "$payload/$s.out" ] || continue
  r=$(cat "$payload/$s.rc" 2>/dev/null || echo none)
  echo "== vm-test: $s: exit $r"
  [ "$s" != debug ] || cat "$payload/debug.out"
  if [ "$r" != 0 ]; then
    status=1
    grep -E -B2 -A20 '^(--- FAIL|    --- FAIL|panic:)' "$payload/$s.out" | head -200 || tail -50 "$payload/$s.out"
  fi
  grep -E '^(ok|PASS|FAIL)' "$payload/$s.out" | tail -3 || true
done
if [ "$VM_REBOOT" = 1 ] && [ "$(wc -l <"$payload/boots" 2>/dev/null || echo 0)" -lt 2 ]; then
  echo "vm-test: the VM was not rebooted" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "== vm-test: console's last lines"
  tail -30 "$work/console.log"
  echo "vm-test: FAILED" >&2
  exit 1
fi
echo "== vm-test: green"
