#!/usr/bin/env bash
# Boots the firmware in QEMU and follows its debugcon log live.
#   qemu/run.sh [--machine q35|microvm] [image] [QEMU args...]
# q35 (default): build/firmware.bin as pflash, vhost-vsock-pci; microvm: build/firmware-pvh.elf as a
# PVH kernel, vhost-vsock-device on virtio-mmio (qemu/machine.sh).
# KVM when it works, TCG otherwise. With a usable /dev/vhost-vsock the guest gets
# vhost-vsock-pci,guest-cid=33 and this prints how to connect; QEMU is bounded by RUN_TIMEOUT
# seconds (default 600) and stopped by its own PID on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

source qemu/machine.sh
machine=q35
if [ "${1:-}" = --machine ]; then machine=$2; shift 2; fi
image=${1:-$(machine_default_image "$machine")}
[ $# -gt 0 ] && shift
log=${LOG:-build/debug.log}
timeout_s=${RUN_TIMEOUT:-600}
cid=${GUEST_CID:-33}
[ -f "$image" ] || { echo "run: no image at $image (make image)" >&2; exit 1; }

machine_shape "$machine" "$image"
args=("${MACHINE_ARGS[@]}" -m 256M -nodefaults -display none -nic none
  -debugcon "file:$log" -global isa-debugcon.iobase=0x402
  -device isa-debug-exit,iobase=0xf4,iosize=4)
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  args+=(-accel kvm -accel tcg) # QEMU falls back to the next -accel when KVM cannot start
else
  args+=(-accel tcg)
fi
if [ -r /dev/vhost-vsock ] && [ -w /dev/vhost-vsock ]; then
  args+=(-device "vhost-vsock-$VIRTIO_SUFFIX,guest-cid=$cid")
  echo "run: vhost-vsock guest CID $cid. Connect from this machine with:"
  echo "       ncat --vsock $cid 1234"
  echo "       python3 -c 'import socket; s=socket.socket(socket.AF_VSOCK); s.connect(($cid,1234)); s.sendall(b\"hi\\n\"); print(s.recv(99))'"
fi

mkdir -p "$(dirname "$log")"
: >"$log"
echo "run: qemu-system-x86_64 ${args[*]}"
echo "run: log $log (Ctrl-C stops QEMU; timeout ${timeout_s}s)"
qemu-system-x86_64 "${args[@]}" "$@" &
qemu_pid=$!
tail -n +1 -f "$log" --pid="$qemu_pid" &
tail_pid=$!
stop() { kill "$qemu_pid" 2>/dev/null || true; }
trap stop INT TERM EXIT
waited=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$waited" -ge "$timeout_s" ]; then
    echo "run: timeout after ${timeout_s}s, stopping QEMU (pid $qemu_pid)"
    stop
    break
  fi
  sleep 1
  waited=$((waited + 1))
done
status=0
wait "$qemu_pid" || status=$?
wait "$tail_pid" 2>/dev/null || true
# isa-debug-exit: status = firmware code * 2 + 1.
if [ $((status & 1)) = 1 ] && [ "$status" -lt 128 ]; then
  echo "run: firmware exited with code $(((status - 1) / 2))"
else
  echo "run: QEMU ended with status $status"
fi
