#!/bin/bash
# Boots the firmware image N times under nested KVM in one outer VM and prints, per boot, the
# firmware's own reset-to-ready and where the time went (the log's timestamps of a few milestones).
#
#   tools/bench/boot-times.sh [--machine q35|microvm] [--image F] [--out build/boot-times] [--exit-trace] [N]
#
# --machine microvm boots the PVH ELF (default build/firmware-pvh.elf) on QEMU microvm with
# vhost-vsock-device: its clock's zero is the PVH entry, so each boot also shows what ran before it
# (qboot; the pvh line's entry_after_us), and, for both shapes, QEMU start -> ready seen from outside.
# With KVM's debugfs statistics (mounted here if need be), each boot also reports the guest's VM
# exits counted when the ready line is seen (all exits, port I/O, MMIO, nested page faults fixed):
# unlike the timestamps, these counts do not depend on the machine's load.
# --exit-trace records KVM's exit tracepoints in the outer VM during each boot and prints where the
# time outside the guest went up to its first idle halt (tools/bench/exit-profile.py; the raw trace
# is kept as boot-N.exits.txt). Tracing slows exits down: compare traced boots with traced boots.
# Only the debugcon log is read: nothing here talks vsock. Each inner QEMU has a timeout and is
# stopped by its own PID.
set -u
cd "$(dirname "$0")/../.."
machine=q35 image= out=build/boot-times exit_trace=0
while [ $# -gt 0 ]; do
  case $1 in
    --machine) machine=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --exit-trace) exit_trace=1; shift ;;
    --inside) shift; break ;;
    *) break ;;
  esac
done
count=${1:-5}

if [ "${BOOT_TIMES_INSIDE:-}" != 1 ]; then
  mkdir -p "$out"
  [ -n "$image" ] || image=$([ "$machine" = microvm ] && echo build/firmware-pvh.elf || echo build/firmware.bin)
  BOOT_TIMES_INSIDE=1 BOOT_TIMES_EXIT_TRACE=$exit_trace exec qemu/vsock-host.sh --machine "$machine" --image "$image" --out "$out" --timeout 600 --guest none \
    -- env BOOT_TIMES_INSIDE=1 BOOT_TIMES_EXIT_TRACE=$exit_trace bash tools/bench/boot-times.sh "$count"
fi

# Inside the outer VM: env IMAGE, RESULTS, RUNDIR, INNER_ACCELS (from l1-job.sh).
accel=${INNER_ACCELS%% *}
accel=${accel:-kvm}
[ -d /sys/kernel/debug/kvm ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# The one running VM's counters (summed over its vCPUs by KVM), when debugfs has them.
kvm_exits() {
  local dir
  dir=$(ls -d /sys/kernel/debug/kvm/*-*/ 2>/dev/null | head -n 1)
  [ -n "$dir" ] || return 0
  local out="" name
  for name in exits io_exits mmio_exits pf_fixed; do
    [ -r "$dir$name" ] && out="$out$name=$(cat "$dir$name") "
  done
  echo "${out% }"
}
tracing=/sys/kernel/debug/tracing
trace_events() {  # $1 = 0|1
  local event
  for event in kvm_entry kvm_exit kvm_pio kvm_page_fault; do echo "$1" >"$tracing/events/kvm/$event/enable"; done
}
if [ "${BOOT_TIMES_EXIT_TRACE:-0}" = 1 ] && [ ! -w "$tracing/trace" ]; then
  echo "boot-times: no KVM tracepoints here ($tracing): --exit-trace ignored" >&2
  BOOT_TIMES_EXIT_TRACE=0
fi
milestones='long mode|pvh start_info|runtime up|scan done|resources assigned|device found|vsock-dev: ready|ready:'
for i in $(seq 1 "$count"); do
  # The log on L1's tmpfs: on the 9p results share each debugcon byte costs a 9p round trip.
  log=$RUNDIR/boot-$i.debugcon.log pidfile=$RESULTS/boot-$i.pid
  if [ "${BOOT_TIMES_EXIT_TRACE:-0}" = 1 ]; then
    echo 0 >"$tracing/tracing_on"; echo 65536 >"$tracing/buffer_size_kb"; : >"$tracing/trace"
    trace_events 1; echo 1 >"$tracing/tracing_on"
  fi
  started=$(date +%s%N)
  bash qemu/nested/inner-qemu.sh "$accel" firmware 33 60 "$log" "$pidfile" "$RESULTS/boot-$i.qemu.log" &
  starter=$!
  for _ in $(seq 1 3000); do  # 10 ms steps: the outside view of QEMU start -> ready
    grep -q 'ready:' "$log" 2>/dev/null && break
    sleep 0.01
  done
  outside_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  pid=$(cat "$pidfile" 2>/dev/null)
  exits=$(kvm_exits)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait "$starter" 2>/dev/null
  cp "$log" "$RESULTS/"
  summary=$(grep -E "$milestones" "$log" | sed -E 's/^\.?\[([0-9.]+)\] [a-z]+ ([a-z-]+): ([a-z :-]+[a-z]).*/\1 \2:\3/' |
    awk '{ printf "%s%.1f %s", sep, $1 * 1000, substr($0, index($0, " ") + 1); sep = " | " }')
  entry_after=$(sed -nE 's/.*pvh .*entry_after_us=([0-9]+).*/\1/p' "$log" | head -n 1)
  echo "boot $i ($accel, ${MACHINE:-q35}): $summary${entry_after:+ | before entry (qboot) $((entry_after / 1000)).$(( (entry_after % 1000) / 100 )) ms} | QEMU start -> ready seen outside ${outside_ms} ms${exits:+ || $exits}"
  if [ "${BOOT_TIMES_EXIT_TRACE:-0}" = 1 ]; then
    echo 0 >"$tracing/tracing_on"; trace_events 0
    cp "$tracing/trace" "$RESULTS/boot-$i.exits.txt"
    python3 tools/bench/exit-profile.py "$RESULTS/boot-$i.exits.txt" | sed 's/^/  /'
  fi
done
