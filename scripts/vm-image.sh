#!/usr/bin/env bash
# Builds the VM tier's Debian 12 image: what a hosting provider runs (Debian's own kernel,
# systemd as PID 1, cgroup v2 only) with the packages the VM tests use.
#   scripts/vm-image.sh DIR      writes DIR/rootfs.img (raw ext4), DIR/vmlinuz, DIR/initrd.img
# scripts/vm-test.sh calls it and caches DIR keyed on this file's hash: any change here (a
# package, a unit) builds a new image. Nothing in the image is vpsctl's: the test binaries and
# the guest script come in at boot over 9p (scripts/vm-guest.sh).
set -euo pipefail
out=${1:?usage: vm-image.sh DIR}
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
# What the VM tests run inside the guest: busybox for the template, ip/ping for the network
# tests, flock/nsenter/dmesg (util-linux), ps/kill (procps), modprobe (kmod) for 9p and veth,
# nft (nftables) for the source-address filter of routed addresses.
pkgs=linux-image-amd64,systemd-sysv,udev,kmod,busybox-static,iproute2,iputils-ping,util-linux,procps,e2fsprogs,nftables

tmp=$(mktemp -d "${out%/}.build.XXXXXX")
trap 'umount -R "$tmp/root/proc" "$tmp/root/sys" "$tmp/root/dev" 2>/dev/null || true; rm -rf "$tmp"' EXIT
root=$tmp/root
echo "vm-image: debootstrap bookworm ($pkgs)" >&2
debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
  { tail -30 "$tmp/debootstrap.log" >&2; exit 1; }

echo "vmtest" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vmtest\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
# Serial console only: the host reads ttyS0 into a log file, nobody logs in.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
# Timers that would wake up during a test run under emulation and compete for its two CPUs.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
  systemd-tmpfiles-clean.timer dpkg-db-backup.timer e2scrub_reap.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# A provider's host has an address on a NIC, which the kernel picks as the source of the host's
# own packets to a VPS (its routes point at vps<ID> links that have none). The VM has no NIC
# (nothing leaves it), so a dummy link carries one.
cat >"$root/etc/systemd/system/vmtest-net.service" <<'EOF'
[Unit]
Description=vpsctl VM test host address
Before=network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link add host0 type dummy
ExecStart=/sbin/ip address add 198.18.255.1/32 dev host0
ExecStart=/sbin/ip link set host0 up

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/vmtest-net.service "$root/etc/systemd/system/multi-user.target.wants/vmtest-net.service"

# The payload: mount the host's 9p share and hand over to the guest script it brings. If the
# share or the script is missing, power off at once: the host's bounded wait then reports it.
cat >"$root/usr/local/sbin/vmtest-boot" <<'EOF'
#!/bin/sh
modprobe 9pnet_virtio 2>/dev/null
mkdir -p /payload
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 payload /payload && [ -f /payload/guest.sh ]; then
  exec /bin/sh /payload/guest.sh
fi
echo "vmtest-boot: no payload" >/dev/console
systemctl --no-block poweroff
EOF
chmod 755 "$root/usr/local/sbin/vmtest-boot"
cat >"$root/etc/systemd/system/vmtest.service" <<'EOF'
[Unit]
Description=vpsctl VM test payload
After=multi-user.target vmtest-net.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmtest-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/vmtest.service "$root/etc/systemd/system/multi-user.target.wants/vmtest.service"

# Kernel and initrd are booted directly by qemu (-kernel/-initrd): no boot loader.
cp -L "$root/vmlinuz" "$tmp/vmlinuz"
cp -L "$root/initrd.img" "$tmp/initrd.img"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
# mkfs.ext4 -d copies the tree without mounting anything (no loop device needed); 4 GiB sparse
# leaves room for the tests' state roots.
truncate -s 4G "$tmp/rootfs.img"
mkfs.ext4 -q -F -L vmroot -d "$root" "$tmp/rootfs.img"
mkdir -p "$out"
mv "$tmp/rootfs.img" "$tmp/vmlinuz" "$tmp/initrd.img" "$out/"
echo "vm-image: $out" >&2
