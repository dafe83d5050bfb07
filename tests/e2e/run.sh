#!/bin/bash
# The e2e suite: one outer-VM boot (qemu/vsock-host.sh), the greeting listener started before the
# firmware, then tests/e2e/suite.py on the vhost-vsock host, then in the same boot vsock_test's
# case list through the guest's test-peer (tests/e2e/conformance.py). Results and the firmware log
# in --out. Every connection is logged in full (connection-lines=all): the fault cases read each one's line.
#   [CONFORMANCE_UNSTABLE=1] [CONFORMANCE_REPEAT=N] tests/e2e/run.sh [--conformance also|only|none] [--cases 0,5,22]
#                    [vsock-host.sh options, e.g. --image F --guest linux] [-- suite.py options]
# The exit status is the suite's, or the conformance run's when the suite passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
host_args=() suite_args=() conformance=also cases=
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; suite_args=("$@"); break ;;
    --conformance) conformance=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --guest) host_args+=("$1" "$2"); [ "$2" = linux ] && guest_name=linux; shift 2 ;;
    *) host_args+=("$1"); shift ;;
  esac
done
case "$conformance" in also|only|none) ;; *) echo "run.sh: --conformance also|only|none" >&2; exit 2 ;; esac
runs=()
suite="/usr/bin/python3 tests/e2e/suite.py"
[ ${#suite_args[@]} -gt 0 ] && suite+=" $(printf '%q ' "${suite_args[@]}")"
[ "$conformance" != only ] && runs+=("$suite")
# The outer VM's job gets no environment from here: CONFORMANCE_UNSTABLE and _REPEAT travel on the line.
conformance_env=
for var in CONFORMANCE_UNSTABLE CONFORMANCE_REPEAT; do
  [ -n "${!var:-}" ] && conformance_env+="$var=$(printf '%q' "${!var}") "
done
[ "$conformance" != none ] && runs+=("${conformance_env:+env $conformance_env}/usr/bin/python3 tests/e2e/conformance.py --guest-name ${guest_name:-firmware}${cases:+ --only $cases}")
script='status=0; for run in "$@"; do eval "$run"; s=$?; [ $status = 0 ] && status=$s; done; exit $status'
exec qemu/vsock-host.sh --out build/e2e --timeout 720 --fw-option connection-lines=all "${host_args[@]}" \
  --pre "/usr/bin/python3 tests/e2e/greeting_listener.py" \
  -- /bin/bash -c "$script" run-e2e "${runs[@]}"
