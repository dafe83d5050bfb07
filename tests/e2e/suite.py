"""End-to-end suite against the firmware (guest CID 33) from a real vhost-vsock host, or over the
vhost-user backend's Unix sockets (VSOCK_TRANSPORT=uds:<path>, see transport.py).

Runs inside the vhost-vsock host through qemu/vsock-host.sh (tests/e2e/run.sh); never on a machine
whose own kernel would route AF_VSOCK. Env: VSOCK_CID, FW_LOG (firmware debugcon log), RESULTS.
Usage: python3 tests/e2e/suite.py [--only case,case] [--cycles N]
"""
import argparse
import errno
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport  # noqa: E402
from vsockclient import (CaseFailure, connect_retries, Background, connect, crc_to_eof, recv_exact, recv_to_eof, send_all,  # noqa: E402
                         payload, pattern_bytes, scaled, GUEST_CID, ECHO_PORT, SINK_PORT, SOURCE_PORT, OP_TIMEOUT)
from faults import fault_cases  # noqa: E402  (the misbehaving-host cases, same boot)
from seqpacket_cases import seqpacket_cases  # noqa: E402  (SOCK_SEQPACKET on port 1238)

MIB = 1 << 20
GREETING = b"Hello, Host! This is a message from the VM.\n"
UNBOUND_PORT = 9999
FW_LOG = os.environ.get("FW_LOG", "")
RESULTS = os.environ.get("RESULTS", ".")
SAVED_LOG = os.path.join(RESULTS, "debug.log")  # where vsock-host.sh leaves the firmware log after the run
CONNS_LINE = re.compile(r"\] \w+ vsock: .*\bconns=(\d+)")


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


def echo_once(size, seed):
    """Writer and reader in parallel on one echo connection; checks sha256 of what came back."""
    data = payload(size, seed)
    start = time.monotonic()
    with connect(ECHO_PORT) as s:
        writer = Background(send_all, s, data)
        back = recv_exact(s, size)
        writer.join_result(OP_TIMEOUT)
    took = time.monotonic() - start
    if back != data:
        raise CaseFailure("echo %d B: expected sha256 %s, got %d B sha256 %s"
                          % (size, digest(data), len(back), digest(back)))
    return size, took


def case_greeting():
    path = os.path.join(RESULTS, "greeting.txt")
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not os.path.exists(path):
        raise CaseFailure("no greeting on host port 4050 within 30 s (see %s/pre.log)" % RESULTS)
    got = open(path, "rb").read()
    if got != GREETING:
        raise CaseFailure("greeting: expected %r, got %r" % (GREETING, got))
    return len(got)


def case_echo(size):
    return lambda: echo_once(size, size)


def figures(result, wall):
    """(bytes, seconds, note): a case returns bytes, or (bytes, seconds of the transfer alone[, note])."""
    if not isinstance(result, tuple):
        return result, wall, ""
    return result if len(result) == 3 else result + ("",)


def case_parallel_echo(streams=4, size=4 * MIB):
    """Several large echoes at once: credit and buffers are per connection."""
    start = time.monotonic()
    workers = [Background(echo_once, size, 100 + i) for i in range(streams)]
    for w in workers:
        w.join_result(OP_TIMEOUT * 2)
    return streams * size, time.monotonic() - start


def case_slow_reader(size=2 * MIB, pause=1.5):
    """The host stops reading for a while (its window fills, the firmware must wait for credit), then drains."""
    data = payload(size, 77)
    start = time.monotonic()
    with connect(ECHO_PORT) as s:
        writer = Background(send_all, s, data)
        time.sleep(pause)
        back = recv_exact(s, size)
        writer.join_result(OP_TIMEOUT)
    if back != data:
        raise CaseFailure("slow reader: expected %d B sha256 %s, got %d B sha256 %s"
                          % (size, digest(data), len(back), digest(back)))
    return size, time.monotonic() - start


def case_half_close():
    """Host SHUT_WR after sending: every echoed byte still arrives, then EOF."""
    data = payload(256 * 1024, 7)
    with connect(ECHO_PORT) as s:
        def write_then_shut():
            send_all(s, data)
            s.shutdown(socket.SHUT_WR)
        writer = Background(write_then_shut)
        back = recv_to_eof(s, limit=len(data))
        writer.join_result(OP_TIMEOUT)
    if back != data:
        raise CaseFailure("half-close: expected %d B sha256 %s before EOF, got %d B sha256 %s"
                          % (len(data), digest(data), len(back), digest(back)))
    return len(data)


def case_unbound_port(burst=32):
    """Right after a burst of closes, connecting to a port nobody listens on is reset at once
    (Linux: ECONNRESET). The firmware's RST must leave by itself: the connect waits at most
    0.5 s (the kernel's own connect timeout would be 2 s), and nothing else follows it."""
    sockets = [connect(ECHO_PORT) for _ in range(burst)]
    for s in sockets:
        s.sendall(b"x")
    for s in sockets:
        recv_exact(s, 1)
        s.close()
    start = time.monotonic()
    try:
        transport.connect_stream(GUEST_CID, UNBOUND_PORT, 10, vsock_connect_timeout=0.5).close()
        raise CaseFailure("connect to unbound port %d succeeded; expected ECONNRESET" % UNBOUND_PORT)
    except OSError as e:
        took = time.monotonic() - start
        if e.errno != errno.ECONNRESET:
            raise CaseFailure("unbound port %d after %d closes: expected ECONNRESET, got %r after %.2f s"
                              % (UNBOUND_PORT, burst, e, took))
    return 0


def case_sink(size=64 * MIB):
    data = payload(size, 1235)
    start = time.monotonic()
    with connect(SINK_PORT) as s:
        send_all(s, data)
        s.shutdown(socket.SHUT_WR)
        answer = recv_to_eof(s, limit=64)
    took = time.monotonic() - start
    expected = b"%d %08x\n" % (size, zlib.crc32(data))
    if answer.lower() != expected:
        raise CaseFailure("sink: expected answer %r, got %r" % (expected, answer))
    return size, took


def case_source(size=64 * MIB):
    start = time.monotonic()
    with connect(SOURCE_PORT) as s:
        s.sendall(b"%d\n" % size)
        got, crc = crc_to_eof(s)
    took = time.monotonic() - start
    expected = zlib.crc32(pattern_bytes(size))
    if got != size or crc != expected:
        raise CaseFailure("source: expected %d B crc32 %08x, got %d B crc32 %08x" % (size, expected, got, crc))
    return size, took


def case_concurrent(count=64, rounds=8, chunk=2048):
    """count connections open at once; each round every connection sends, then every one reads back."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(connect(ECHO_PORT))
        total = 0
        for r in range(rounds):
            sent = [payload(chunk, r * 1000 + i) for i in range(count)]
            for s, data in zip(sockets, sent):
                s.sendall(data)
            for i, (s, data) in enumerate(zip(sockets, sent)):
                back = recv_exact(s, chunk)
                if back != data:
                    raise CaseFailure("concurrent: connection %d round %d: expected %d B sha256 %s, got %d B sha256 %s"
                                      % (i, r, chunk, digest(data), len(back), digest(back)))
                total += 2 * chunk
        return total
    finally:
        for s in sockets:
            s.close()


def case_host_close_mid_transfer():
    """The host drops connections mid-stream (source and echo); new connections are still served."""
    with connect(SOURCE_PORT) as s:
        s.sendall(b"%d\n" % (64 * MIB))
        recv_exact(s, MIB)
    with connect(ECHO_PORT) as s:
        # The writer blocks once the echo backs up (we stop reading); shutdown wakes it, close drops it.
        writer = Background(send_all, s, payload(4 * MIB, 3))
        recv_exact(s, 4096)
        s.shutdown(socket.SHUT_RDWR)
        try:
            writer.join_result(OP_TIMEOUT)
        except OSError:
            pass  # expected: the send was cut off by our own shutdown
    echo_once(64 * 1024, 11)
    case_source(MIB)
    return 2 * MIB


def case_cycles(cycles):
    def run():
        message = b"cycle-%06d\n"
        start = time.monotonic()
        for i in range(cycles):
            with connect(ECHO_PORT) as s:
                s.sendall(message % i)
                back = recv_exact(s, len(message % i))
            if back != message % i:
                raise CaseFailure("cycle %d: expected %r, got %r" % (i, message % i, back))
        took = time.monotonic() - start
        wait_conns_zero()
        return cycles * len(message % 0) * 2, took, "%.1f ms/cycle, firmware conns=0" % (took * 1000 / cycles)
    return run


def last_conns():
    try:
        text = open(FW_LOG, errors="replace").read()
    except OSError:
        return None
    found = CONNS_LINE.findall(text)
    return int(found[-1]) if found else None


def wait_conns_zero(deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if last_conns() == 0:
            return
        time.sleep(0.25)
    raise CaseFailure("firmware log: expected the last vsock conns=0, got conns=%s after %d s" % (last_conns(), deadline))


def run_tool(tool, port, data, seconds=60):
    argv, prefix, hybrid = transport.tool_command(tool, GUEST_CID, port)
    done = subprocess.run(argv, input=prefix + data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=seconds)
    output = transport.strip_ok_line(done.stdout) if hybrid else done.stdout
    if output != data:
        raise CaseFailure("%s: expected %d B sha256 %s, got %d B sha256 %s (exit %d, stderr %r)"
                          % (" ".join(argv), len(data), digest(data), len(output), digest(output),
                             done.returncode, done.stderr[-200:]))
    return len(data)


def case_ncat():
    return run_tool("ncat", ECHO_PORT, payload(100000, 51))


def case_socat():
    return run_tool("socat", ECHO_PORT, payload(100000, 52))


def size_name(size):
    return "%dMiB" % (size // MIB) if size % MIB == 0 else "%dKiB" % (size // 1024)


def cases(cycles):
    return [
        ("greeting", case_greeting),
        ("unbound-port", case_unbound_port),
        ("echo-1B", case_echo(1)),
        ("echo-4KiB", case_echo(4096)),
        ("echo-64KiB", case_echo(65536)),
        ("echo-%s" % size_name(scaled(16 * MIB)), case_echo(scaled(16 * MIB))),
        ("echo-parallel-4", lambda: case_parallel_echo(size=scaled(4 * MIB))),
        ("slow-reader", lambda: case_slow_reader(size=scaled(2 * MIB))),
        ("half-close", case_half_close),
        ("sink-%s" % size_name(scaled(64 * MIB)), lambda: case_sink(scaled(64 * MIB))),
        ("source-%s" % size_name(scaled(64 * MIB)), lambda: case_source(scaled(64 * MIB))),
        ("concurrent-64", case_concurrent),
        ("host-close-mid", case_host_close_mid_transfer),
        ("ncat", case_ncat),
        ("socat", case_socat),
        ("cycles-%d" % cycles, case_cycles(cycles)),
    ] + seqpacket_cases() + fault_cases()


GUEST_LOST_AFTER = 2  # failed cases in a row, each followed by a failed probe, before the rest is not run


def guest_answers():
    """One byte through the echo service within 10 s: after a failed case, whether the guest still
    takes connections at all. A guest that is gone (reset, halted, its QEMU ended) would make every
    later case wait out its own 30 s timeout: conformance.py stops the same way."""
    try:
        with connect(ECHO_PORT, deadline=10, timeout=10) as s:
            send_all(s, b"?")
            return recv_exact(s, 1) == b"?"
    except (CaseFailure, OSError):
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated case names (prefix match)")
    parser.add_argument("--cycles", type=int, default=500)
    args = parser.parse_args()
    wanted = [w for w in args.only.split(",") if w]
    rows, failures, lost = [], 0, 0
    for name, fn in cases(args.cycles):
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        if lost >= GUEST_LOST_AFTER:
            note = "not run: the guest answered no connection after the last %d failed cases" % lost
            rows.append((name, "FAIL", 0, 0.0, note))
            failures += 1
            print("e2e: %-16s FAIL %s" % (name, note), flush=True)
            continue
        if name == "ncat" and not shutil.which("ncat") or name == "socat" and not shutil.which("socat"):
            rows.append((name, "SKIP", 0, 0.0, "not installed"))
            continue
        start = time.monotonic()
        connect_retries[0] = 0
        try:
            result = fn()
            status = "ok"
        except (CaseFailure, OSError, subprocess.SubprocessError) as e:
            result, status = (0, time.monotonic() - start, "%s: %s" % (type(e).__name__, e)), "FAIL"
            failures += 1
        moved, took, note = figures(result, time.monotonic() - start)
        if connect_retries[0]:
            note = ("%s; " % note if note else "") + "connect retried %d times" % connect_retries[0]
        rows.append((name, status, moved, took, note))
        rate = moved / MIB / took if moved and took > 0 else 0
        print("e2e: %-16s %-4s %10d B %7.2f s %8.2f MiB/s %s" % (name, status, moved, took, rate, note), flush=True)
        if status == "FAIL":
            print("e2e:   firmware log: %s (saved after the run as %s)" % (FW_LOG, SAVED_LOG), flush=True)
            lost = lost + 1 if not guest_answers() else 0
        else:
            lost = 0
    print("\n%-16s %-4s %12s %9s %10s" % ("case", "ok", "bytes", "seconds", "MiB/s"))
    for name, status, moved, took, _ in rows:
        rate = moved / MIB / took if moved and took > 0 else 0
        print("%-16s %-4s %12d %9.2f %10.2f" % (name, status, moved, took, rate))
    if failures:
        print("\nfirmware log saved as %s" % SAVED_LOG)
    # The plain closing line test tooling reads: "<N> passed, <M> failed".
    print("\ne2e: %d passed, %d failed" % (len(rows) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
