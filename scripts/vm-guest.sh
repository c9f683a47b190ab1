#!/bin/sh
# The VM tier's guest side, run at every boot of the VM by its vmtest.service (scripts/vm-image.sh)
# from the host's 9p share mounted at /payload. scripts/vm-test.sh writes /payload/env (the
# tests to run and their bound) and /payload/bin (vpsctl and the test binaries, built on the
# host), and reads back what this script writes next to them:
#   boots         one line per boot: the boot id and the stage it found
#   facts         kernel, PID 1, cgroup file system of this boot
#   STEP.out/.rc  each test binary's output and exit status
#   done          the last step ran (the host reports a run without it as unfinished)
#   reboot-requested  the guest reboots on purpose (qemu, run with -no-reboot, then exits and
#                 the host starts it again on the same disk)
# Stages, kept on the VM's own disk (a copy-on-write overlay the host keeps for one run): 0 the
# first boot: the tier, then the reboot test's first half, then a reboot; 1 after that reboot:
# the reboot test's second half, then power-off. A boot that finds a stage marked as running
# was not asked for (a panic, a reset): it is reported, not rerun.
set -u
P=/payload
S=/var/lib/vmtest
mkdir -p "$S"
. "$P/env"
stage=$(cat "$S/stage" 2>/dev/null || echo 0)
echo "$(cat /proc/sys/kernel/random/boot_id) $stage" >>"$P/boots"
say() { echo "vm-guest: $*" >/dev/console; }
{
  echo "boot $stage: kernel $(uname -r), PID 1 $(cat /proc/1/comm), /sys/fs/cgroup $(stat -fc %T /sys/fs/cgroup)"
  echo "  controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
  echo "  cpus $(nproc), memory $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
} >>"$P/facts"

# step NAME ARGS...: runs a test binary from /opt/vt, its output to the share as it comes.
step() {
  name=$1; shift
  say "step $name: $*"
  start=$(date +%s)
  (cd /opt/vt && env VPSCTL_TEST_BIN=/opt/vt/vpsctl VPSCTL_VM_TIER=1 VPSCTL_TEST_SLOW=4 CI=true "$@") >"$P/$name.out" 2>&1
  rc=$?
  echo "$rc" >"$P/$name.rc"
  echo "$name: exit $rc in $(($(date +%s) - start)) s" >>"$P/facts"
  say "step $name: exit $rc"
}
finish() {
  sync
  touch "$P/done"
  systemctl --no-block "$1"
  exit 0
}

if [ -f "$P/debug.sh" ]; then
  # scripts/vm-test.sh's VM_DEBUG: a script of one's own instead of the tier.
  rm -rf /opt/vt && mkdir -p /opt/vt && cp -a "$P/bin/." /opt/vt/
  (cd /opt/vt && sh "$P/debug.sh") >"$P/debug.out" 2>&1
  echo $? >"$P/debug.rc"
  finish poweroff
fi

case $stage in
0)
  echo running-0 >"$S/stage"
  sync
  rm -rf /opt/vt && mkdir -p /opt/vt && cp -a "$P/bin/." /opt/vt/
  # The tier: the kernel feature check on this kernel, then the integration tests (real VPSs).
  step hostcheck ./hostcheck.test -test.v -test.count=1 -test.timeout 2m
  step tests ./tests.test -test.run "$VM_TESTS" -test.v -test.count=1 -test.timeout "$VM_TEST_TIMEOUT"
  if [ -n "${VM_REBOOT:-}" ]; then
    step reboot1 env VPSCTL_REBOOT_STAGE=before VPSCTL_TEST_STATE=$S/state ./tests.test -test.run '^TestHostReboot$' -test.v -test.timeout 5m
    echo 1 >"$S/stage"
    touch "$P/reboot-requested"
    sync
    say "rebooting"
    systemctl --no-block reboot
    exit 0
  fi
  echo done-0 >"$S/stage"
  finish poweroff
  ;;
1)
  echo running-1 >"$S/stage"
  sync
  step reboot2 env VPSCTL_REBOOT_STAGE=after VPSCTL_TEST_STATE=$S/state ./tests.test -test.run '^TestHostReboot$' -test.v -test.timeout 5m
  echo done-1 >"$S/stage"
  finish poweroff
  ;;
*)
  echo "unexpected boot: the previous boot stopped in stage $stage" >>"$P/facts"
  say "unexpected boot in stage $stage"
  finish poweroff
  ;;
esac
