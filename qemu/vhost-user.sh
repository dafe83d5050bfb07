#!/bin/bash
# Boots the firmware (or the Linux stand-in) under QEMU with vhost-user-vsock-pci on our backend
# (tools/vhost-user-vsock): no root, no vhost-vsock module. Host programs reach the guest over a
# Unix socket with vhost-device-vsock's hybrid protocol:
#   printf 'CONNECT 1234\nhello\n' | ncat -U <dir>/vm.vsock      (answer: "OK <port>" then the echo)
# The guest's connects to host port P go to <dir>/vm.vsock_P.
#   qemu/vhost-user.sh [--machine q35|microvm] [--image F] [--guest firmware|linux] [--accel kvm|tcg|auto] [--cid N] [--dir D]
#                      [--timeout S] [--fw-option NAME=VALUE]... [-- CMD ...]
# --machine microvm boots build/firmware-pvh.elf with vhost-user-vsock-device (virtio-mmio,
# qemu/machine.sh); the default q35 boots the pflash image with vhost-user-vsock-pci.
# --accel auto (the default) is KVM where /dev/kvm can be opened, TCG otherwise; the Linux stand-in
# always runs under TCG (this machine kind's paravirtual KVM cannot boot a stock kernel).
# Without CMD it waits until QEMU ends (Ctrl-C stops it); with CMD it runs CMD once the guest is
# ready (env VSOCK_UDS=<dir>/vm.vsock), then stops everything. QEMU and the backend are stopped by
# their own PIDs; QEMU always runs under a timeout (default 3600 s).
set -euo pipefail
cd "$(dirname "$0")/.."

source qemu/machine.sh
machine=q35 image= guest=firmware accel=auto cid=33 dir= timeout_s=3600 fw_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --machine) machine=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --guest) guest=$2; shift 2 ;;
    --accel) accel=$2; shift 2 ;;
    --fw-option)  # a runtime option for the firmware: -fw_cfg name=opt/vsockfw/NAME,string=VALUE
      [[ $2 =~ ^([a-z0-9-]+)=([^,]*)$ ]] || { echo "vhost-user: --fw-option takes NAME=VALUE" >&2; exit 2; }
      fw_args+=(-fw_cfg "name=opt/vsockfw/${BASH_REMATCH[1]},string=${BASH_REMATCH[2]}"); shift 2 ;;
    --cid) cid=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--machine q35|microvm] [--image F] [--guest firmware|linux] [--accel kvm|tcg|auto] [--cid N] [--dir D] [--timeout S] [--fw-option N=V]... [-- CMD ...]" >&2; exit 2 ;;
  esac
done
[ -n "$image" ] || image=$(machine_default_image "$machine")
case "$accel" in
  auto) if [ "$guest" = firmware ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi ;;
  kvm|tcg) ;;
  *) echo "vhost-user: --accel takes kvm, tcg or auto" >&2; exit 2 ;;
esac
[ -n "$dir" ] || dir=$(mktemp -d /tmp/vsockfw-vhost-user.XXXXXX)
mkdir -p "$dir"
uds=$dir/vm.vsock sock=$dir/vhost-user.sock log=$dir/debug.log
backend_pid= qemu_pid=

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
stop_pid() {  # TERM, then KILL after 3 s; only the given PID
  alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 30); do alive "$1" || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
cleanup() { stop_pid "$qemu_pid"; stop_pid "$backend_pid"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

make --no-print-directory -s vhost-user-addon
node --import tsx tools/vhost-user-vsock/main.ts --guest-cid "$cid" --socket "$sock" --uds-path "$uds" \
  >"$dir/backend.log" 2>&1 &
backend_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && [ -S "$uds" ] && break; alive "$backend_pid" || break; sleep 0.1; done
[ -S "$sock" ] || { echo "vhost-user: backend did not start:" >&2; cat "$dir/backend.log" >&2; exit 1; }

if [ "$guest" = linux ]; then
  kdir=$(qemu/nested/prepare.sh)
  mem=512
  VIRTIO_SUFFIX=pci # the stand-in is always q35
  guest_args=(-machine q35,memory-backend=mem -cpu max -kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.gz"
    -append "console=ttyS0 quiet loglevel=3 rdinit=/init-l2 vsockfw.repo=$PWD"
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -serial "file:$dir/console.log")
  ready='ready: cid='
else
  mem=256
  machine_shape "$machine" "$image" mem
  guest_args=("${MACHINE_ARGS[@]}" "${fw_args[@]}")
  ready='info app: ready:'
fi
rm -f "$log"
timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel "$accel" -m "${mem}M" \
  -object "memory-backend-memfd,id=mem,size=${mem}M,share=on" \
  -nodefaults -display none -nic none -no-reboot "${guest_args[@]}" \
  -chardev "socket,id=char0,path=$sock" -device "vhost-user-vsock-$VIRTIO_SUFFIX,chardev=char0" \
  -debugcon "file:$log" -global isa-debugcon.iobase=0x402 -device isa-debug-exit,iobase=0xf4,iosize=4 \
  </dev/null >"$dir/qemu.log" 2>&1 &
qemu_pid=$!
for _ in $(seq 1200); do grep -q "$ready" "$log" 2>/dev/null && break; alive "$qemu_pid" || break; sleep 0.1; done
if ! grep -q "$ready" "$log" 2>/dev/null; then
  echo "vhost-user: the guest did not become ready; QEMU: $(tail -n 3 "$dir/qemu.log")" >&2
  tail -n 20 "$log" >&2 2>/dev/null || true
  exit 1
fi
echo "vhost-user: $guest ready (cid $cid, $accel); logs in $dir"
echo "  echo:  printf 'CONNECT 1234\\nhello\\n' | ncat -U $uds"
echo "  sink:  (printf 'CONNECT 1235\\n'; head -c 1000000 /dev/urandom) | socat -t 5 - UNIX-CONNECT:$uds"
echo "  guest -> host port 4050 arrives on $uds""_4050"

if [ $# -gt 0 ]; then
  VSOCK_UDS=$uds "$@"
  exit $?
fi
echo "vhost-user: running until QEMU ends (at most $timeout_s s); Ctrl-C stops it"
wait "$qemu_pid" || true
