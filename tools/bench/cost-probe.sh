#!/bin/bash
# What each accelerator on this machine charges the firmware per access: boots the image once per
# accelerator on the vhost-user backend (no root, no outer VM) with opt/vsockfw/cost-probe=1 and
# prints the probe's line (ns per code step, clock read, port write, MMIO read, MMIO write, notify,
# and the overshoot of a timed halt). The nested-KVM figures come from `make bench` (outer VM).
#   tools/bench/cost-probe.sh [--image build/firmware.bin] [tcg] [kvm]   (default: tcg, and kvm when usable)
set -euo pipefail
cd "$(dirname "$0")/../.."
image=build/firmware.bin
[ "${1:-}" = --image ] && { image=$2; shift 2; }
accels=("$@")
if [ ${#accels[@]} -eq 0 ]; then
  accels=(tcg)
  [ -r /dev/kvm ] && [ -w /dev/kvm ] && accels+=(kvm)
fi
for accel in "${accels[@]}"; do
  dir=$(mktemp -d /tmp/vsockfw-cost-probe.XXXXXX)
  qemu/vhost-user.sh --image "$image" --accel "$accel" --dir "$dir" --timeout 120 --fw-option cost-probe=1 -- true >/dev/null
  line=$(grep -a -o 'probe: costs .*' "$dir/debug.log" || echo "probe: no line (see $dir/debug.log)")
  printf '%-4s %s\n' "$accel" "${line#probe: costs }"
  rm -rf "$dir"
done
