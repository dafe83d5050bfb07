"""The crash report under a real host: a SELFTEST=3 image (assembly/apps/crash-ports.ts) serving two
connections is crashed on purpose, and its log must then hold the whole report with those
connections and their packets in it, the run must end with the documented exit, and the host's
sockets must be released (not left hanging).

Runs on the vhost-vsock host through qemu/vsock-host.sh (make test-e2e); never on this machine.
    python3 tests/e2e/crash_check.py [--kind wasm-trap|cpu-exception]
"""
import argparse
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vsockclient import CaseFailure, connect, recv_exact, payload, GUEST_CID, ECHO_PORT, SINK_PORT  # noqa: E402

FW_LOG = os.environ.get("FW_LOG", "")
KINDS = {  # crash port, exit code, the first report line
    "wasm-trap": (1299, 2, r"error wasm: trap kind=unreachable executed"),
    "cpu-exception": (1298, 3, r'error cpu: exception vector=14 name="#PF page fault" .* cr2=0x0000123456789000'),
}


def wait_for(pattern, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        text = open(FW_LOG, errors="replace").read()
        if re.search(pattern, text, re.M):
            return text
        time.sleep(0.2)
    raise CaseFailure("no line matching %r in the firmware log after %d s" % (pattern, deadline))


def expect(text, pattern, what):
    found = re.search(pattern, text, re.M)
    if not found:
        raise CaseFailure("crash report: %s missing (pattern %r)" % (what, pattern))
    return found


def check(kind):
    port, code, first_line = KINDS[kind]
    # Two connections with known traffic: an echo that went both ways (20 round trips, so the
    # 32-entry packet history has wrapped), a sink that only received.
    echo = connect(ECHO_PORT)
    for i in range(20):
        sent = payload(50, i)
        echo.sendall(sent)
        if recv_exact(echo, len(sent)) != sent:
            raise CaseFailure("echo round %d before the crash did not come back" % i)
    sink = connect(SINK_PORT)
    sink.sendall(payload(3000, 2))
    time.sleep(0.5)  # the sink has read it
    echo_port, sink_port = echo.getsockname()[1], sink.getsockname()[1]

    crasher = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    crasher.settimeout(10)
    try:
        crasher.connect((GUEST_CID, port))
    except OSError:
        pass  # the firmware may die before or after the handshake completes
    crasher_port = crasher.getsockname()[1]

    text = wait_for(r"info boot: exit code=%d$" % code)
    report = text[text.index(re.search(first_line, text, re.M).group(0)):]
    expect(report, r"last log line before the (trap|exception) follows\n.*warn selftest: ", "the replayed last line")
    total = int(expect(report, r"error crash: last packets total=(\d+) shown=32$", "the packet history heading").group(1))
    if total < 32:
        raise CaseFailure("crash report: only %d packets recorded, expected more than 32" % total)
    packets = re.findall(r"error crash: packet n=(\d+) t=\d+\.\d{6} (rx|tx) (\w+) (\d+):(\d+) -> (\d+):(\d+) len=(\d+)", report)
    if len(packets) != 32 or [int(p[0]) for p in packets] != list(range(total - 32, total)):
        raise CaseFailure("crash report: expected packets n=%d..%d in order, got %s" % (total - 32, total - 1, [p[0] for p in packets]))
    if ("rx", "REQUEST", "2", str(crasher_port), str(GUEST_CID), str(port)) not in [p[1:7] for p in packets]:
        raise CaseFailure("crash report: the crashing connection's REQUEST (2:%d -> %d:%d) is not among the last packets"
                          % (crasher_port, GUEST_CID, port))
    expect(report, r"error crash: connections live=\d+ shown=\d+$", "the connection table heading")
    expect(report, r"error crash: conn slot=\d+ state=established dir=in local=%d peer=2:%d fd=\d+ rx_bytes=1000 tx_bytes=1000 "
           % (ECHO_PORT, echo_port), "the echo connection (1000 B each way)")
    expect(report, r"error crash: conn slot=\d+ state=established dir=in local=%d peer=2:%d fd=\d+ rx_bytes=3000 tx_bytes=0 "
           % (SINK_PORT, sink_port), "the sink connection (3000 B in)")
    expect(report, r"error crash: device reset: it no longer uses our buffers$", "the device reset")
    expect(report, r"error crash: end of report kind=%s outcome=halt exit_code=%d$" % (kind, code), "the end line")

    # The run ended: the inner QEMU is gone, and with it the device, so the host's sockets are reset.
    pidfile = os.path.join(os.path.dirname(FW_LOG), "inner.pid")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            os.kill(int(open(pidfile).read()), 0)
        except (OSError, ValueError):
            break
        time.sleep(0.2)
    else:
        raise CaseFailure("the firmware's QEMU still runs 30 s after the report ended")
    for name, s in (("echo", echo), ("sink", sink)):
        s.settimeout(10)
        try:
            data = s.recv(100)
            if data:
                raise CaseFailure("%s socket after the crash: got %r, expected EOF or a reset" % (name, data))
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise CaseFailure("%s socket still hangs 10 s after the firmware ended" % name)
        s.close()
    crasher.close()
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=sorted(KINDS), default="wasm-trap")
    kind = parser.parse_args().kind
    try:
        total = check(kind)
    except (CaseFailure, OSError) as e:
        print("crash-check: %s FAIL: %s: %s (firmware log saved as debug.log in the --out directory)"
              % (kind, type(e).__name__, e), flush=True)
        return 1
    print("crash-check: %s ok: full report (%d packets recorded, last 32 shown, both connections), exit code %d"
          % (kind, total, KINDS[kind][1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
