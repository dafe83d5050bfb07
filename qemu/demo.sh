#!/bin/bash
# `make run` on a machine without /dev/vhost-vsock: boots the firmware next to a real vhost-vsock
# host (an outer VM, see qemu/vsock-host.sh) and shows it talking to host programs.
#   qemu/demo.sh [build/firmware.bin]
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-build/firmware.bin}
if [ ! -w /dev/vhost-vsock ]; then
  echo "demo: no /dev/vhost-vsock on this machine, so the firmware runs inside an outer VM that has one"
fi
exec qemu/vsock-host.sh --image "$image" --out build/demo --timeout 240 \
  --pre "/usr/bin/python3 tests/e2e/greeting_listener.py" \
  -- /bin/bash qemu/nested/demo-inside.sh
