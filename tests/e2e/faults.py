"""Fault cases for the e2e suite (suite.py runs them after its own, in the same outer-VM boot).

A misbehaving host must never cost the other connections a byte: every case runs while an echo
and a sink connection stream CRC-checked data next to it, checks that they kept moving during the
fault and that every byte came back intact, and ends with the firmware's `conns=` back where it
was before the case. Runs on the vhost-vsock host only (AF_VSOCK), never on the development machine.
    python3 tests/e2e/faults.py --child sink|source   (the client the kill cases SIGKILL)
"""
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport  # noqa: E402
from vsockclient import (CaseFailure, Background, connect, recv_exact, recv_to_eof, send_all,  # noqa: E402
                         payload, pattern_bytes, GUEST_CID, ECHO_PORT, SINK_PORT, SOURCE_PORT, OP_TIMEOUT)

MIB = 1 << 20
MAX_CONNECTIONS = 64  # the default image's connection table (make image MAX_CONNECTIONS=...)
FW_LOG = os.environ.get("FW_LOG", "")
CONNS = re.compile(r"\] \w+ vsock: .*\bconns=(\d+)")
CLOSED = re.compile(r"\] \w+ vsock: connection closed .*\bpeer=2:(\d+) reason=(\S+)")


# ---- the firmware's log --------------------------------------------------------------------------

def log_text():
    try:
        return open(FW_LOG, errors="replace").read()
    except OSError:
        return ""


def last_conns():
    found = CONNS.findall(log_text())
    return int(found[-1]) if found else 0


def settled_conns(quiet=1.0, deadline=15):
    """The last `conns=` once the log has stopped growing for `quiet` seconds: the firmware writes
    info lines while idle, so the newest lines can still be on their way out."""
    end = time.monotonic() + deadline
    size, since = len(log_text()), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        now_size = len(log_text())
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last_conns()


def wait_conns(expected, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if last_conns() == expected:
            return
        time.sleep(0.25)
    raise CaseFailure("firmware log: expected conns=%d again (the count before the fault), last conns=%d after %d s"
                      % (expected, last_conns(), deadline))


def close_reasons(ports):
    """{host port: reason} from the firmware's `connection closed` lines for these host ports."""
    return {int(p): r for p, r in CLOSED.findall(log_text()) if int(p) in ports}


def wait_closed(ports, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        reasons = close_reasons(ports)
        if len(reasons) == len(ports):
            return reasons
        time.sleep(0.25)
    raise CaseFailure("firmware log: no `connection closed` line for host ports %s after %d s"
                      % (sorted(set(ports) - set(close_reasons(ports))), deadline))


# ---- traffic that must survive every fault -------------------------------------------------------

class Bystanders:
    """An echo and a sink connection streaming next to the fault, every byte checked at the end."""

    CHUNK = 32768

    def __init__(self):
        self.stop = threading.Event()
        self.rounds = [0, 0]  # echo round trips, sink chunks
        self.echo = Background(self._echo)
        self.sink = Background(self._sink)
        self._wait_rounds(1, 1, "start streaming")

    def _echo(self):
        moved = 0
        with connect(ECHO_PORT) as s:
            while not self.stop.is_set():
                data = payload(self.CHUNK, 5000 + self.rounds[0])
                s.sendall(data)
                back = recv_exact(s, len(data))
                if back != data:
                    raise CaseFailure("bystander echo round %d: %d B sent, %d B back, %s"
                                      % (self.rounds[0], len(data), len(back),
                                         "differs" if len(back) == len(data) else "short"))
                moved += 2 * len(data)
                self.rounds[0] += 1
                time.sleep(0.01)
        return moved

    def _sink(self):
        crc, moved = 0, 0
        with connect(SINK_PORT) as s:
            while not self.stop.is_set():
                data = payload(self.CHUNK, 7000 + self.rounds[1])
                s.sendall(data)
                crc = zlib.crc32(data, crc)
                moved += len(data)
                self.rounds[1] += 1
                time.sleep(0.01)
            s.shutdown(socket.SHUT_WR)
            answer = recv_to_eof(s, limit=64)
        expected = b"%d %08x\n" % (moved, crc)
        if answer.lower() != expected:
            raise CaseFailure("bystander sink: expected answer %r, got %r" % (expected, answer))
        return moved

    def _wait_rounds(self, echo, sink, what, deadline=OP_TIMEOUT):
        end = time.monotonic() + deadline
        while self.rounds[0] < echo or self.rounds[1] < sink:
            for worker in (self.echo, self.sink):
                if not worker.is_alive():
                    worker.join_result(0)  # raises what stopped it
            if time.monotonic() > end:
                raise CaseFailure("bystanders did not %s: echo rounds %d (want %d), sink chunks %d (want %d) in %.0f s"
                                  % (what, self.rounds[0], echo, self.rounds[1], sink, deadline))
            time.sleep(0.02)

    def mark(self):
        return list(self.rounds)

    def kept_moving_since(self, mark, what):
        """Both went on moving after `mark` (taken while the fault was in place)."""
        self._wait_rounds(mark[0] + 3, mark[1] + 3, "keep moving " + what)

    def finish(self):
        self.stop.set()
        return self.echo.join_result(OP_TIMEOUT) + self.sink.join_result(OP_TIMEOUT)


def with_bystanders(fault):
    """Runs fault(bystanders) with the traffic around it; bytes moved, seconds, note."""
    def run():
        baseline = settled_conns()
        start = time.monotonic()
        bystanders = Bystanders()
        try:
            note = fault(bystanders)
        finally:
            moved = bystanders.finish()
        wait_conns(baseline)
        took = time.monotonic() - start
        return moved, took, "%s; bystanders intact, conns=%d again" % (note, baseline)
    return run


# ---- the faults ----------------------------------------------------------------------------------

def spawn_child(kind):
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", kind],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = child.stdout.readline().split()
    if len(line) != 2 or line[0] != b"port":
        child.kill()
        raise CaseFailure("%s client: expected 'port N', got %r (stderr %r)" % (kind, line, child.stderr.read()[-300:]))
    return child, int(line[1])


def fault_killed(kind):
    """A host client SIGKILLed mid-transfer (the kernel closes its socket for it)."""
    def fault(bystanders):
        child, port = spawn_child(kind)
        try:
            moving = child.stdout.readline().strip()
            if moving != b"moving":
                raise CaseFailure("%s client: expected 'moving', got %r (stderr %r)"
                                  % (kind, moving, child.stderr.read()[-300:]))
            mark = bystanders.mark()
            child.send_signal(signal.SIGKILL)  # this child, by its own PID
            child.wait(OP_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        bystanders.kept_moving_since(mark, "after the kill")
        reason = wait_closed([port])[port]
        return "killed %s client (host port %d) closed with reason=%s" % (kind, port, reason)
    return with_bystanders(fault)


def child_main(kind):
    """The client the kill cases SIGKILL: streams until killed (or 120 s, should nobody kill it)."""
    end = time.monotonic() + 120
    s = connect(SINK_PORT if kind == "sink" else SOURCE_PORT)
    print("port %d" % s.getsockname()[1], flush=True)
    moved, said = 0, False
    if kind == "source":
        s.sendall(b"%d\n" % (1 << 40))
    while time.monotonic() < end:
        if kind == "sink":
            s.sendall(payload(65536, moved // 65536))
            moved += 65536
        else:
            data = s.recv(65536)
            if not data:
                break
            moved += len(data)
        if moved >= MIB and not said:
            print("moving", flush=True)
            said = True
    return 0


def fault_reset_without_shutdown(count=24):
    """The host forgets connections without a SHUTDOWN: a non-blocking connect closed at once, so
    the firmware's RESPONSE finds no socket and the host kernel answers it with RST."""
    def fault(bystanders):
        mark = bystanders.mark()
        ports = []
        for _ in range(count):
            s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            s.setblocking(False)
            code = s.connect_ex((GUEST_CID, ECHO_PORT))
            if code not in (0, errno.EINPROGRESS):
                s.close()
                raise CaseFailure("non-blocking connect: %s" % os.strerror(code))
            ports.append(s.getsockname()[1])
            s.close()
        bystanders.kept_moving_since(mark, "through the resets")
        # Give the firmware time to see every REQUEST and the answers to its RESPONSEs.
        time.sleep(2)
        reasons = close_reasons(ports)
        reset = sum(1 for r in reasons.values() if r == "reset-by-peer")
        if reset == 0:
            raise CaseFailure("no connection of %d ended with reason=reset-by-peer (closed: %s)" % (count, reasons))
        return "%d connects dropped at once: %d RST by the host kernel, %d other closes" % (count, reset, len(reasons) - reset)
    return with_bystanders(fault)


def fault_connect_flood(count=3 * MAX_CONNECTIONS, deadline=30):
    """More connects at once than the firmware has connections: the surplus is reset at once (not left
    to time out), every accepted one echoes, and the table empties again."""
    def fault(bystanders):
        mark = bystanders.mark()
        pending, connected, refused, other = {}, [], 0, []
        poller = select.poll()
        try:
            for _ in range(count):
                s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
                s.setblocking(False)
                code = s.connect_ex((GUEST_CID, ECHO_PORT))
                if code == 0:
                    connected.append(s)
                    continue
                if code != errno.EINPROGRESS:
                    s.close()
                    other.append(os.strerror(code))
                    continue
                pending[s.fileno()] = s
                poller.register(s, select.POLLOUT | select.POLLERR | select.POLLHUP)
            end = time.monotonic() + deadline
            while pending and time.monotonic() < end:
                for fd, _ in poller.poll(250):
                    s = pending.pop(fd, None)
                    if s is None:
                        continue
                    poller.unregister(fd)
                    code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code == 0:
                        connected.append(s)
                    else:
                        s.close()
                        if code == errno.ECONNRESET:
                            refused += 1
                        else:
                            other.append(os.strerror(code))
            if pending:
                raise CaseFailure("%d of %d connects still pending after %d s" % (len(pending), count, deadline))
            if other:
                raise CaseFailure("connects ended with %s (expected success or ECONNRESET)" % sorted(set(other)))
            room = MAX_CONNECTIONS - 2  # the bystanders hold two
            if not connected or len(connected) > room or refused == 0:
                raise CaseFailure("flood of %d: %d connected, %d reset (expected 1..%d connected, the rest reset)"
                                  % (count, len(connected), refused, room))
            bystanders.kept_moving_since(mark, "through the flood")
            for i, s in enumerate(connected):
                s.setblocking(True)
                s.settimeout(OP_TIMEOUT)
                data = payload(100, 900 + i)
                s.sendall(data)
                back = recv_exact(s, len(data))
                if back != data:
                    raise CaseFailure("flood: accepted connection %d echoed %r, expected %d B" % (i, back[:20], len(data)))
        finally:
            for s in connected + list(pending.values()):
                s.close()
        return "%d connects: %d served, %d reset at once" % (count, len(connected), refused)
    return with_bystanders(fault)


def fault_never_reads(request=256 * MIB, hold=3.0):
    """A client asks the source for a lot and never reads: its credit runs out and that connection
    waits, while new connections are served and the bystanders keep going. Then it reads again and
    gets the pattern from its first byte, and closes."""
    def fault(bystanders):
        stalled = connect(SOURCE_PORT)
        try:
            stalled.sendall(b"%d\n" % request)
            time.sleep(hold / 2)
            mark = bystanders.mark()
            # Others are served while that connection is out of credit.
            for i in range(3):
                data = payload(200000, 600 + i)
                with connect(ECHO_PORT) as s:
                    writer = Background(send_all, s, data)
                    back = recv_exact(s, len(data))
                    writer.join_result(OP_TIMEOUT)
                if back != data:
                    raise CaseFailure("echo next to the stalled source: %d B back of %d" % (len(back), len(data)))
            with connect(SOURCE_PORT) as s:
                s.sendall(b"%d\n" % MIB)
                got = recv_to_eof(s, limit=MIB)
            if got != pattern_bytes(MIB):
                raise CaseFailure("source next to the stalled one: %d B, pattern %s" % (len(got), "ok" if got == pattern_bytes(len(got)) else "wrong"))
            time.sleep(hold / 2)
            bystanders.kept_moving_since(mark, "next to the stalled reader")
            # The stalled connection resumes where it stopped: its first 4 MiB are the pattern.
            head = recv_exact(stalled, 4 * MIB)
            if head != pattern_bytes(4 * MIB):
                raise CaseFailure("stalled source after resuming: %d B, %s" % (len(head), "pattern ok" if head == pattern_bytes(len(head)) else "pattern broken"))
        finally:
            stalled.close()
        return "source held without reading for %.1f s (%d MiB asked), others served; it resumed intact" % (hold, request // MIB)
    return with_bystanders(fault)


def fault_cases():
    """The cases, on the kernel's AF_VSOCK only: they rely on its behaviour (a non-blocking connect, RST
    for an unknown tuple, SHUTDOWN when a process dies) and on host ports in the firmware's log."""
    if transport.UDS_PATH:
        return []
    return [
        ("fault-kill-sink", fault_killed("sink")),
        ("fault-kill-source", fault_killed("source")),
        ("fault-rst", fault_reset_without_shutdown()),
        ("fault-flood", fault_connect_flood()),
        ("fault-no-reader", fault_never_reads()),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child" and sys.argv[2] in ("sink", "source"):
        sys.exit(child_main(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
