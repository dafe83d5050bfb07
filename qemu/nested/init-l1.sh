#!/bin/busybox sh
# /init of the outer VM (L1): the vhost-vsock host. Loads the modules, mounts this machine's root
# (read-only, 9p "hostroot"), the job share (read-only, 9p "job": job.env + paths) and the results
# share (writable, 9p "results") at the results path and the repo (read-only, 9p "repo") at its own
# path, chroots into the host root and runs the
# repo's qemu/nested/l1-job.sh there. Powers off when it returns.
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "vsock-host: L1 kernel up after $(cut -d' ' -f1 /proc/uptime) s" >/dev/console

fail() { echo "vsock-host: L1: $*" >/dev/console; echo 125 >/results/.status 2>/dev/null; sync; poweroff -f; }

for m in virtio_pci 9pnet_virtio 9p vhost_vsock; do modprobe "$m" || fail "modprobe $m failed"; done
modprobe kvm_amd nested=1 2>/dev/null || echo "vsock-host: L1: kvm_amd did not load (inner QEMU will use TCG)"
modprobe vsockmon 2>/dev/null || true   # the capture device (tests/e2e/vsockmon.py); the rest works without it
# Guests' RAM in 4 KiB pages: under this VM's TCG, the first touch of each 2 MiB of a guest's RAM
# cost 10-158 ms (a transparent huge page zeroed by emulated code), half the firmware's boot; on real
# hardware that is ~0.1 ms. Both guests of the benchmarks get the same.
echo never >/sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true

opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$opts,rw" results /results || fail "cannot mount the results share"
mount -t 9p -o "$opts,ro" job /job || fail "cannot mount the job share"
mount -t 9p -o "$opts,ro,cache=loose" hostroot /newroot || fail "cannot mount the host root"
mkdir -p /repo
mount -t 9p -o "$opts,ro" repo /repo || fail "cannot mount the repo share"
results=$(sed -n 1p /job/paths)

r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/shm $r/dev/pts
mount -t tmpfs -o mode=1777 shm $r/dev/shm
mount -t devpts devpts $r/dev/pts
for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs $r/$d; done
mkdir -p $r/run/vsockfw-job
mount --bind /job $r/run/vsockfw-job
# The repo too has its own share: a clone under /tmp would be hidden by the tmpfs above.
repo=$(sed -n 2p /job/paths)
mkdir -p "$r$repo" 2>/dev/null
mount --bind /repo "$r$repo" || fail "cannot mount the repo share at $repo"
# The results path (usually inside the repo) is bound after it, so it is not hidden by it.
# The results path may lie under a tmpfs just mounted (e.g. /tmp/...): create it there then.
mkdir -p "$r$results" 2>/dev/null
mount --bind /results "$r$results" || fail "cannot mount the results share at $results"

chroot $r /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 /bin/bash "$repo/qemu/nested/l1-job.sh" /run/vsockfw-job/job.env
echo "vsock-host: L1 job finished with status $?" >/dev/console
sync
umount "$r$repo" /repo 2>/dev/null
umount "$r$results" /results 2>/dev/null
echo 0 >/proc/sys/kernel/printk   # no "reboot: Power down" line
poweroff -f
