#!/bin/bash
# `make bench`: one outer-VM boot (qemu/vsock-host.sh --guest none) in which tools/bench/bench.py
# boots the firmware and then the Linux stand-in, measures both, and writes build/bench/raw.json;
# then, on this machine, the iperf3 rows (tests/vhost-user/iperf3-bench.ts, the vhost-user backend's
# TCP forward) and tools/bench/report.py, which prints the table and writes results.json and plots.
# The firmware is measured in both shapes (q35 pflash + virtio-pci; microvm PVH + virtio-mmio).
#   tools/bench/run.sh [--image build/firmware.bin] [--pvh-image build/firmware-pvh.elf] [--timeout S]
#                      [-- bench.py options, e.g. --quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
# 600 s for the outer VM: a full run takes ~3.5 min, and a hang (README, Performance) fails the bench.
image=build/firmware.bin pvh_image=build/firmware-pvh.elf timeout=600 bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image=$2; shift 2 ;;
    --pvh-image) pvh_image=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "usage: $0 [--image F] [--pvh-image F] [--timeout S] [-- bench.py options]" >&2; exit 2 ;;
  esac
done
out=build/bench
mkdir -p "$out"
rm -f "$out/raw.json"
cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-before.txt"   # the machine's load: other work skews figures
status=0
qemu/vsock-host.sh --guest none --image "$image" --out "$out" --timeout "$timeout" \
  -- /usr/bin/python3 tools/bench/bench.py --pvh-image "$pvh_image" "${bench_args[@]}" || status=$?
cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-after.txt"
# The iperf3 rows: Debian's iperf3 through the vhost-user backend's TCP forward, on this machine
# (no outer VM), TCG; a failure here leaves the rows out and fails the bench.
rm -f "$out/iperf3.json"
make --no-print-directory vhost-user-addon >/dev/null
node --import tsx tests/vhost-user/iperf3-bench.ts --out "$out" || status=$?
[ -s "$out/raw.json" ] || { echo "bench: no figures (status $status)" >&2; exit "${status/#0/1}"; }
/usr/bin/python3 tools/bench/report.py "$out/raw.json" --image "$image" --elf "$(dirname "$image")/firmware.elf" --out "$out"
exit "$status"
