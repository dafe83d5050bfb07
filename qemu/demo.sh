#!/bin/bash
# `make run` on a machine without /dev/vhost-vsock: boots the firmware next to a real vhost-vsock
# host (an outer VM, see qemu/vsock-host.sh) and shows it talking to host programs.
#   qemu/demo.sh [--machine q35|microvm] [image]
set -euo pipefail
cd "$(dirname "$0")/.."
machine=q35
if [ "${1:-}" = --machine ]; then machine=$2; shift 2; fi
image=${1:-$([ "$machine" = microvm ] && echo build/firmware-pvh.elf || echo build/firmware.bin)}
if [ ! -w /dev/vhost-vsock ]; then
  echo "demo: no /dev/vhost-vsock on this machine, so the firmware runs inside an outer VM that has one"
fi
exec qemu/vsock-host.sh --machine "$machine" --image "$image" --out build/demo --timeout 240 \
  --pre "/usr/bin/python3 tests/e2e/greeting_listener.py" \
  -- /bin/bash qemu/nested/demo-inside.sh
