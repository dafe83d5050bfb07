#!/bin/bash
# The e2e suite: one outer-VM boot (qemu/vsock-host.sh), the greeting listener started before the
# firmware, then tests/e2e/suite.py on the vhost-vsock host. Results and the firmware log in --out.
# Every connection is logged in full (connection-lines=all): the fault cases read each one's line.
#   tests/e2e/run.sh [vsock-host.sh options, e.g. --image F --guest linux] [-- suite.py options]
set -euo pipefail
cd "$(dirname "$0")/../.."
host_args=() suite_args=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; suite_args=("$@"); break; fi
  host_args+=("$1"); shift
done
exec qemu/vsock-host.sh --out build/e2e --timeout 540 --fw-option connection-lines=all "${host_args[@]}" \
  --pre "/usr/bin/python3 tests/e2e/greeting_listener.py" \
  -- /usr/bin/python3 tests/e2e/suite.py "${suite_args[@]}"
