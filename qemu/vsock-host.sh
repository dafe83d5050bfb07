#!/bin/bash
# Runs a command on a real vhost-vsock host next to the firmware (guest CID 33).
#
#   qemu/vsock-host.sh [--machine q35|microvm] [--image build/firmware.bin] [--out build/e2e] [--timeout SECONDS]
#                      [--ready REGEX] [--inner-accel auto|kvm|tcg] [--pre COMMAND]
#                      [--guest firmware|linux|none] [--cid 33] [--fw-option NAME=VALUE]... -- COMMAND [ARGS...]
#
# With a usable /dev/vhost-vsock here, QEMU runs on this machine. Otherwise (this machine) the host
# is an outer VM ("L1", TCG, Debian kernel, this machine's root shared read-only over 9p) that loads
# vhost_vsock and kvm_amd and runs the inner QEMU under nested KVM (see design/NESTED-HOST.md).
# The COMMAND runs with cwd = repo root and env VSOCK_CID=<--cid, default 33>, FW_LOG=<debugcon log>,
# RESULTS=<writable results dir = --out>; --pre runs in the background before the inner QEMU starts
# (output in $RESULTS/pre.log; it may touch $PRE_READY once listening). --guest linux boots the
# Linux stand-in (qemu/nested/linux-guest/) instead of the image; --guest none starts no guest (the
# command starts its own with qemu/nested/inner-qemu.sh). --fw-option passes a runtime option to the
# firmware (-fw_cfg name=opt/vsockfw/NAME,string=VALUE, e.g. trace=1). --machine microvm boots the
# PVH image (default build/firmware-pvh.elf) on QEMU microvm with vhost-vsock-device (virtio-mmio;
# qemu/machine.sh); the Linux stand-in always runs on q35. Exit status = the command's
# (124: not ready in time / timeout, 125: harness failure, 130: interrupted).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VSOCKFW_CACHE:-$HOME/.cache/vsockfw}
# The outer VM's vCPUs (VSOCKFW_OUTER_CPUS, default 2): 1 takes the second L1 CPU, and with it
# cross-CPU interrupts into the nested guest, out of a run (docs/reliability.md).
outer_cpus=${VSOCKFW_OUTER_CPUS:-2}
case "$outer_cpus" in [1-9]) ;; *) echo "vsock-host: VSOCKFW_OUTER_CPUS must be 1-9" >&2; exit 125 ;; esac
machine=q35 image= out=build/e2e timeout=540 ready= accel=auto pre= guest=firmware cid=33 fw_options=()
ready_timeout=${VSOCKFW_READY_TIMEOUT:-90}

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --machine) machine=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --ready) ready=$2; shift 2 ;;
    --inner-accel) accel=$2; shift 2 ;;
    --pre) pre=$2; shift 2 ;;
    --guest) guest=$2; shift 2 ;;
    --cid) cid=$2; shift 2 ;;
    --fw-option) [[ $2 =~ ^[a-z0-9-]+=[^,]*$ ]] || usage; fw_options+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage
case "$accel" in auto|kvm|tcg) ;; *) usage ;; esac
case "$guest" in firmware|linux|none) ;; *) usage ;; esac
case "$cid" in [3-9]|[1-9][0-9]|[1-9][0-9][0-9]) ;; *) usage ;; esac
ready=${ready:-"ready: cid=$cid"}

case "$machine" in q35|microvm) ;; *) usage ;; esac
[ -n "$image" ] || image=$([ "$machine" = microvm ] && echo build/firmware-pvh.elf || echo build/firmware.bin)
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$repo/$1" ;; esac; }
image=$(abspath "$image")
mkdir -p "$(abspath "$out")"
out=$(cd "$(abspath "$out")" && pwd)
if [ "$guest" = firmware ] && [ ! -s "$image" ]; then
  echo "vsock-host: no firmware image at $image (make image)" >&2; exit 125
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# One run at a time on this machine.
mkdir -p "$cache"
exec 9>"$cache/lock"
if ! flock -n 9; then
  echo "vsock-host: another run holds $cache/lock; waiting ..." >&2
  flock -w "$timeout" 9 || { echo "vsock-host: lock wait timed out" >&2; exit 125; }
fi

t_start=$(now)
job=$(mktemp -d "$cache/job.XXXXXX")
l1_pid=
cleanup() {
  local p
  for p in "$l1_pid" "$(cat "$job/l1.pid" 2>/dev/null || true)"; do
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null || true
  done
  sleep 0.2
  for p in "$l1_pid" "$(cat "$job/l1.pid" 2>/dev/null || true)"; do
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$job"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

rm -f "$out/.status"
kdir=
if [ "$guest" != firmware ] || [ ! -w /dev/vhost-vsock ]; then
  kdir=$(VSOCKFW_CACHE=$cache "$repo/qemu/nested/prepare.sh")
fi
# The outer VM's QEMU (L0): bookworm-backports' (qemu/nested/outer-qemu.sh), which runs it faster than
# the system's 7.2 and does not deliver interrupts inside STI's shadow (docs/reliability.md); the
# system's if that cannot be had.
# VSOCKFW_OUTER_QEMU names another (e.g. qemu-system-x86_64 to reproduce on 7.2).
outer_qemu=${VSOCKFW_OUTER_QEMU:-}
if [ -z "$outer_qemu" ] && [ ! -w /dev/vhost-vsock ]; then
  outer_qemu=$(VSOCKFW_CACHE=$cache "$repo/qemu/nested/outer-qemu.sh") ||
    { outer_qemu=qemu-system-x86_64; echo "vsock-host: warning: the outer VM runs on the system's QEMU (slower, and it delivers interrupts inside STI's shadow: docs/reliability.md)" >&2; }
fi

write_job() {  # $1 = job.env path, $2 = rundir; then the command
  local env=$1 rundir=$2; shift 2
  {
    printf 'IMAGE=%q RESULTS=%q REPO=%q\n' "$image" "$out" "$repo"
    printf 'READY=%q TIMEOUT=%q READY_TIMEOUT=%q\n' "$ready" "$timeout" "$ready_timeout"
    printf 'INNER_ACCEL=%q GUEST=%q KDIR=%q PRE=%q RUNDIR=%q CID=%q MACHINE=%q\n' "$accel" "$guest" "$kdir" "$pre" "$rundir" "$cid" "$machine"
    printf 'FW_OPTIONS=('; [ ${#fw_options[@]} -gt 0 ] && printf '%q ' "${fw_options[@]}"; printf ')\n'
    printf 'CMD=('; printf '%q ' "$@"; printf ')\n'
  } >"$env"
}

if [ -w /dev/vhost-vsock ]; then
  echo "vsock-host: /dev/vhost-vsock is here; running QEMU on this machine"
  write_job "$job/job.env" "$job/run" "$@"
  set +e
  timeout -k 10 "$timeout" bash "$repo/qemu/nested/l1-job.sh" "$job/job.env" &
  l1_pid=$!
  wait "$l1_pid"
  set -e
else
  # The image travels in the job share (a tmpfs on /tmp inside L1 would hide an image under /tmp).
  # Its ELF beside it names the firmware's code and data for a stall snapshot (tests/e2e/stall_snapshot.py).
  # (The PVH image is an ELF itself: it is its own symbol table.)
  elf=${image%.bin}.elf; [ "${image%.elf}" != "$image" ] && elf=$image
  [ "$guest" != linux ] && [ -s "$elf" ] && cp "$elf" "$job/firmware.elf"
  [ "$guest" != linux ] && [ -s "$image" ] && cp "$image" "$job/firmware.bin" && image=/run/vsockfw-job/firmware.bin
  write_job "$job/job.env" /run/vsockfw "$@"
  printf '%s\n%s\n' "$out" "$repo" >"$job/paths"
  # Which QEMU ran the outer VM, for whoever reads the results (tools/bench/report.py).
  "$outer_qemu" --version | head -1 >"$out/outer-qemu.txt"
  echo "vsock-host: booting the outer VM (L1: TCG on $(sed 's/.*version \([^ ]*\).*/QEMU \1/' "$out/outer-qemu.txt"), $(basename "$kdir")) ..."
  # L1's kernel prints errors (loglevel=4) and reports tasks blocked for 30 s: the outer VM has
  # been seen to stop making progress while a guest was being stopped, and its console (this
  # script's output) is then the only witness.
  set +e
  timeout -k 10 "$timeout" "$outer_qemu" -accel tcg,thread=multi -cpu max -m 2048 -smp "$outer_cpus" \
    -nodefaults -display none -no-reboot -serial stdio -pidfile "$job/l1.pid" \
    -kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=4 hung_task_timeout_secs=30 panic=-1" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$job,mount_tag=job,security_model=none,readonly=on" \
    -virtfs "local,path=$out,mount_tag=results,security_model=none" \
    -virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on" \
    </dev/null &
  l1_pid=$!
  wait "$l1_pid"
  set -e
fi
l1_pid=
status=$(cat "$out/.status" 2>/dev/null || echo 125)
echo "vsock-host: total $(since "$t_start") s, status $status (results in $out)"
exit "$status"
