#!/bin/busybox sh
# /init-l2 of the Linux stand-in guest (CID 33): a Linux peer that serves what the firmware serves
# (echo 1234, sink 1235, source 1236, greeting to CID 2 port 4050) so the host-side harness and
# benchmarks can run without the firmware. The host root (L1's view of this machine) comes over
# 9p read-only; services.py logs to the debugcon port like the firmware does.
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci vmw_vsock_virtio_transport 9pnet_virtio 9p; do modprobe "$m" || echo "modprobe $m failed"; done
repo=$(sed -n 's/.*vsockfw\.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
r=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot $r || { echo "no host root"; poweroff -f; }
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
# The tmpfs mounts below would hide a repo under /tmp (a clone in /tmp, or L1's own repo share):
# hold it at /repo first and put it back on its path on top of the new tmpfs.
mkdir -p /repo
mount --bind "$r$repo" /repo || { echo "no repo at $repo"; poweroff -f; }
for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs $r/$d; done
mkdir -p "$r$repo" && mount --bind /repo "$r$repo" || { echo "cannot put the repo back at $repo"; poweroff -f; }
chroot $r /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  /usr/bin/python3 -u "$repo/qemu/nested/linux-guest/services.py"
echo "services exited with status $?"
poweroff -f
