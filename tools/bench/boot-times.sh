#!/bin/bash
# Boots the firmware image N times under nested KVM in one outer VM and prints, per boot, the
# firmware's own reset-to-ready and where the time went (the log's timestamps of a few milestones).
#
#   tools/bench/boot-times.sh [--image build/firmware.bin] [--out build/boot-times] [--exit-trace] [N]
#
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
image=build/firmware.bin out=build/boot-times exit_trace=0
while [ $# -gt 0 ]; do
  case $1 in
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
  BOOT_TIMES_INSIDE=1 BOOT_TIMES_EXIT_TRACE=$exit_trace exec qemu/vsock-host.sh --image "$image" --out "$out" --timeout 600 --guest none \
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
milestones='long mode|runtime up|scan done|resources assigned|device found|vsock-dev: ready|ready:'
for i in $(seq 1 "$count"); do
  # The log on L1's tmpfs: on the 9p results share each debugcon byte costs a 9p round trip.
  log=$RUNDIR/boot-$i.debugcon.log pidfile=$RESULTS/boot-$i.pid
  if [ "${BOOT_TIMES_EXIT_TRACE:-0}" = 1 ]; then
    echo 0 >"$tracing/tracing_on"; echo 65536 >"$tracing/buffer_size_kb"; : >"$tracing/trace"
    trace_events 1; echo 1 >"$tracing/tracing_on"
  fi
  bash qemu/nested/inner-qemu.sh "$accel" firmware 33 60 "$log" "$pidfile" "$RESULTS/boot-$i.qemu.log" &
  starter=$!
  for _ in $(seq 1 300); do
    grep -q 'ready:' "$log" 2>/dev/null && break
    sleep 0.1
  done
  pid=$(cat "$pidfile" 2>/dev/null)
  exits=$(kvm_exits)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait "$starter" 2>/dev/null
  cp "$log" "$RESULTS/"
  summary=$(grep -E "$milestones" "$log" | sed -E 's/^\.?\[([0-9.]+)\] [a-z]+ ([a-z-]+): ([a-z :-]+[a-z]).*/\1 \2:\3/' |
    awk '{ printf "%s%.1f %s", sep, $1 * 1000, substr($0, index($0, " ") + 1); sep = " | " }')
  echo "boot $i ($accel): $summary${exits:+ || $exits}"
  if [ "${BOOT_TIMES_EXIT_TRACE:-0}" = 1 ]; then
    echo 0 >"$tracing/tracing_on"; trace_events 0
    cp "$tracing/trace" "$RESULTS/boot-$i.exits.txt"
    python3 tools/bench/exit-profile.py "$RESULTS/boot-$i.exits.txt" | sed 's/^/  /'
  fi
done
