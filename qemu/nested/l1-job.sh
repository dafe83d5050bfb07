#!/bin/bash
# Runs on the vhost-vsock host (inside L1, chrooted into this machine's root; or directly on a
# machine with /dev/vhost-vsock): optional background --pre command, the inner QEMU with the
# firmware (or the Linux stand-in), wait for the ready line, the command, then cleanup by PID.
# $1 = job.env written by qemu/vsock-host.sh. Writes the command's exit status to $RESULTS/.status.
set -u
# shellcheck disable=SC1090
. "$1"   # IMAGE RESULTS REPO READY TIMEOUT READY_TIMEOUT INNER_ACCEL GUEST KDIR PRE RUNDIR CID FW_OPTIONS=(...) CMD=(...)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "vsock-host: $*"; }

mkdir -p "$RUNDIR"
qemu_pid= pre_pid= cmd_pid=
status=125

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
# inner-qemu.sh runs `timeout -k 5 LIMIT qemu`: 124 is its deadline, 128+n a signal (137: timeout's
# KILL), an odd status the firmware's isa-debug-exit ((code << 1) | 1), 0 a guest shutdown.
describe_exit() {
  case "$1" in
    0) echo "exit status 0 (a guest shutdown, or a reset under -no-reboot)" ;;
    124) echo "exit status 124 (its timeout)" ;;
    12[5-7]) echo "exit status $1 (timeout or QEMU could not run)" ;;
    *) if [ "$1" -gt 128 ]; then echo "exit status $1 (signal $(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128))))"
       elif [ $(($1 & 1)) = 1 ]; then echo "exit status $1 (isa-debug-exit code $(($1 >> 1)))"
       else echo "exit status $1"; fi ;;
  esac
}
stop_pid() {  # TERM, then KILL after 3 s; only the given PID
  alive "$1" || return 0
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 30); do alive "$1" || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}
cleanup() {
  stop_pid "$cmd_pid"
  stop_pid "$qemu_pid"
  stop_pid "$(cat "$RUNDIR/inner.pid" 2>/dev/null)"
  stop_pid "$pre_pid"
  # Inside the outer VM (thrown away after the job) the events stay on: one run that passed never
  # finished its cleanup, L1 spinning on both vCPUs, right where they were turned off (or the
  # outer VM's known stall struck there; docs/reliability.md). On a real host they go off.
  [ "$RUNDIR" != /run/vsockfw ] && kvm_trace off
  [ -e "${FW_LOG:-}" ] && [ "$FW_LOG" != "$RESULTS/debug.log" ] && cp "$FW_LOG" "$RESULTS/debug.log"
  [ -s "$RUNDIR/inner-qemu-debug.log" ] && cp "$RUNDIR/inner-qemu-debug.log" "$RESULTS/inner-qemu-debug.log"
  echo "$status" >"$RESULTS/.status"
}
trap 'status=130; cleanup; exit 130' INT TERM
trap cleanup EXIT

cd "$REPO" || exit 125
[ "$RUNDIR" = /run/vsockfw ] && log "L1 boot (kernel start -> job start): $(cut -d' ' -f1 /proc/uptime) s"
# QEMU's debugcon writes one byte per write(2): on the 9p results share that is one 9p round trip per
# byte (~60 ms per log line pair under L1's TCG). So the log lives on L1's tmpfs and is copied back.
export VSOCK_CID=$CID FW_LOG=$RUNDIR/debug.log RESULTS
rm -f "$FW_LOG" "$RESULTS/debug.log" "$RESULTS/pre.ready" "$RUNDIR/inner-qemu-debug.log" "$RESULTS/inner-qemu-debug.log"

if [ -n "$PRE" ]; then
  PRE_READY=$RESULTS/pre.ready bash -c "$PRE" >"$RESULTS/pre.log" 2>&1 &
  pre_pid=$!
  # The pre command may touch $PRE_READY once it listens; do not wait long for one that does not.
  for _ in $(seq 50); do [ -e "$RESULTS/pre.ready" ] && break; alive "$pre_pid" || break; sleep 0.1; done
fi

# KVM's events for the inner guest into the kernel's trace ring (512 KiB a CPU, the oldest
# overwritten): at a failure the stall snapshot prints the last of them, i.e. what KVM did just
# before a guest reset (its exits, the interrupts and exceptions it injected, the EOIs) or before
# a halt nothing ended. A few microseconds of L1 time per event; the firmware guest only.
TRACING=/sys/kernel/debug/tracing
KVM_TRACE_EVENTS="kvm_exit kvm_inj_virq kvm_inj_exception kvm_eoi kvm_apic_accept_irq kvm_emulate_insn"
kvm_trace() {  # on|off
  [ "$GUEST" = firmware ] || return 0
  [ -d "$TRACING/events" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  [ -w "$TRACING/events/kvm/kvm_exit/enable" ] || return 0
  local e value=0
  [ "$1" = on ] && value=1
  echo 0 >"$TRACING/tracing_on"
  [ "$1" = on ] && { : >"$TRACING/trace"; echo 512 >"$TRACING/buffer_size_kb"; }
  for e in $KVM_TRACE_EVENTS; do echo "$value" >"$TRACING/events/kvm/$e/enable" 2>/dev/null; done
  # The firmware never runs above the canonical hole: its first exit there is the moment another
  # context's state took over the vCPU (docs/reliability.md). The ring stops at it, so what led
  # there is kept instead of being overwritten by the loop that follows.
  local trigger="traceoff if guest_rip >= $KERNEL_HALF"
  if [ "$1" = on ]; then echo "$trigger" >"$TRACING/events/kvm/kvm_exit/trigger" 2>/dev/null
  else echo "!$trigger" >"$TRACING/events/kvm/kvm_exit/trigger" 2>/dev/null; fi
  echo "$value" >"$TRACING/tracing_on"
}
KERNEL_HALF=0xffff800000000000

start_qemu() {  # $1 = kvm|tcg
  MACHINE=${MACHINE:-q35} IMAGE=$IMAGE KDIR=$KDIR REPO=$REPO RESULTS=$RESULTS MONITOR=$RUNDIR/monitor.sock \
    QEMU_DEBUG_LOG=$RUNDIR/inner-qemu-debug.log bash "$REPO/qemu/nested/inner-qemu.sh" "$1" "$GUEST" \
    "$CID" "$TIMEOUT" "$FW_LOG" "$RUNDIR/inner.pid" "$RESULTS/inner-qemu.log" "${FW_OPTIONS[@]}" &
  qemu_pid=$!
}

wait_ready() {  # 0 ready, 1 inner QEMU died, 2 deadline
  local deadline=$(( $(date +%s) + READY_TIMEOUT ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    grep -qE "$READY" "$FW_LOG" 2>/dev/null && return 0
    alive "$qemu_pid" || return 1
    sleep 0.1
  done
  return 2
}

# Leave the command enough of the overall --timeout to stop cleanly and report (status 124).
command_budget() {
  awk -v t="$TIMEOUT" -v u="$(cut -d' ' -f1 /proc/uptime)" -v d="$([ "$RUNDIR" = /run/vsockfw ] && echo 1 || echo 0)" \
    'BEGIN { l = t - 20 - (d ? u + 5 : 0); print (l < 10 ? 10 : int(l)) }'
}

accels=$INNER_ACCEL
[ "$accels" = auto ] && { if [ -c /dev/kvm ]; then accels="kvm tcg"; else accels=tcg; fi; }
# --guest none: the command starts its guests itself (inner-qemu.sh; e.g. the benchmarks, which
# boot each guest several times). It learns the accelerators to try, the image and the kernel.
if [ "$GUEST" = none ]; then
  MACHINE=${MACHINE:-q35}
  export INNER_ACCELS=$accels IMAGE KDIR REPO MACHINE
  log "no guest started: the command starts its own (accelerators: $accels)"
  t1=$(now)
  timeout -k 5 "$(command_budget)" env VSOCK_CID="$CID" FW_LOG="$FW_LOG" RESULTS="$RESULTS" \
    RUNDIR="$RUNDIR" "${CMD[@]}" &
  cmd_pid=$!
  wait "$cmd_pid"; status=$?
  cmd_pid=
  log "command exited with status $status after $(since "$t1") s"
  exit "$status"
fi
ready=1
kvm_trace on
for accel in $accels; do
  t0=$(now)
  start_qemu "$accel"
  wait_ready; ready=$?
  [ $ready = 1 ] && { wait "$qemu_pid" 2>/dev/null; log "inner QEMU with -accel $accel exited, $(describe_exit $?): $(tail -n 3 "$RESULTS/inner-qemu.log" | tr '\n' ' ')"; continue; }
  break
done
if [ $ready != 0 ]; then
  [ $ready = 2 ] && log "no line matching '$READY' in $FW_LOG after ${READY_TIMEOUT} s"
  log "firmware log tail:"; tail -n 20 "$FW_LOG" 2>/dev/null | sed 's/^/  | /'
  status=124
  exit 124
fi
log "inner QEMU (-accel $accel) start -> ready: $(since "$t0") s"

left=$(command_budget)
t1=$(now)
timeout -k 5 "$left" env VSOCK_CID="$CID" FW_LOG="$FW_LOG" RESULTS="$RESULTS" "${CMD[@]}" &
cmd_pid=$!
wait "$cmd_pid"; status=$?
cmd_pid=
[ "$status" = 124 ] && log "command stopped by its deadline ($left s)"
# A guest that vanished while the command ran (the clients then see ENODEV): how its QEMU ended.
# A guest reset no longer ends it (inner-qemu.sh pauses it: the snapshot below reads it).
if ! alive "$qemu_pid"; then
  wait "$qemu_pid" 2>/dev/null; log "the inner QEMU had ended before the command did: $(describe_exit $?)"
fi
log "command exited with status $status after $(since "$t1") s"
# A failed command with the firmware still up: record what the firmware was doing before cleanup
# stops it (a silent firmware once ended a run with nothing to go on: docs/reliability.md).
if [ "$status" != 0 ] && [ "$GUEST" = firmware ] && alive "$qemu_pid"; then
  timeout 60 python3 "$REPO/tests/e2e/stall_snapshot.py" --monitor "$RUNDIR/monitor.sock" \
    --elf "${IMAGE%.bin}.elf" --out "$RESULTS/stall-snapshot.txt" >/dev/null 2>&1 &&
    log "firmware state after the failure: $RESULTS/stall-snapshot.txt ($(grep -m1 '^status' "$RESULTS/stall-snapshot.txt"); $(grep -m1 '^vCPU samples' "$RESULTS/stall-snapshot.txt"))"
fi
exit "$status"
