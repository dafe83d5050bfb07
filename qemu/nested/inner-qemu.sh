#!/bin/bash
# Starts the guest QEMU on the vhost-vsock host: the firmware image or the Linux stand-in, with the
# same machine, accelerator, memory and vsock device either way (so benchmarks compare like with like).
#
#   inner-qemu.sh ACCEL GUEST CID TIMEOUT DEBUGCON_LOG PIDFILE QEMU_LOG [FW_OPTION NAME=VALUE ...]
#     ACCEL kvm|tcg, GUEST firmware|linux; env IMAGE and MACHINE (firmware: q35, the default, or
#     microvm with IMAGE the PVH ELF; qemu/machine.sh), KDIR and REPO (linux),
#     RESULTS (the Linux console log goes to $RESULTS/guest-console.log).
# Replaces itself with `timeout QEMU`: the caller's PID for it is the one to stop.
set -u
accel=$1 guest=$2 cid=$3 limit=$4 debugcon_log=$5 pidfile=$6 qemu_log=$7
shift 7  # the rest: firmware runtime options (-fw_cfg opt/vsockfw/NAME)
GUEST_MEMORY=256M
cpu=host
[ "$accel" = tcg ] && cpu=max
source "$(dirname "$0")/../machine.sh"
if [ "$guest" = linux ]; then
  machine_shape q35 "" # the stand-in's own payload follows
  MACHINE_ARGS=(-machine q35)
  payload=(-kernel "$KDIR/vmlinuz" -initrd "$KDIR/initrd.gz"
    -append "console=ttyS0 quiet loglevel=3 rdinit=/init-l2 vsockfw.repo=$REPO"
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -serial "file:$RESULTS/guest-console.log")
else
  machine_shape "${MACHINE:-q35}" "$IMAGE"
  payload=()
  for option in "$@"; do payload+=(-fw_cfg "name=opt/vsockfw/${option%%=*},string=${option#*=}"); done
fi
# The HMP monitor, for tests/e2e/stall_snapshot.py when a command fails with the guest still up.
monitor=()
[ -n "${MONITOR:-}" ] && { rm -f "$MONITOR"; monitor=(-monitor "unix:$MONITOR,server=on,wait=off"); }
# A guest that resets (a triple fault: -no-reboot turns it into a shutdown) is paused, not ended, when
# the caller gives a monitor: its registers and memory stay for tests/e2e/stall_snapshot.py (a guest
# lost mid-suite once left only an empty QEMU log; docs/reliability.md). QEMU_DEBUG_LOG: QEMU's
# guest_errors and cpu_reset log (TCG logs a triple fault there; a few KB per boot otherwise).
diagnosis=()
[ -n "${MONITOR:-}" ] && [ "$guest" = firmware ] && diagnosis+=(-action shutdown=pause)
[ -n "${QEMU_DEBUG_LOG:-}" ] && diagnosis+=(-d guest_errors,cpu_reset -D "$QEMU_DEBUG_LOG")
rm -f "$pidfile"
exec timeout -k 5 "$limit" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$GUEST_MEMORY" "${MACHINE_ARGS[@]}" \
  -nodefaults -nic none -display none -no-reboot "${payload[@]}" -device "vhost-vsock-$VIRTIO_SUFFIX,guest-cid=$cid" \
  -debugcon "file:$debugcon_log" -global isa-debugcon.iobase=0x402 \
  -device isa-debug-exit,iobase=0xf4,iosize=4 -pidfile "$pidfile" "${monitor[@]}" "${diagnosis[@]}" \
  </dev/null >"$qemu_log" 2>&1
