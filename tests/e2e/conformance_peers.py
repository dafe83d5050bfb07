"""The two sides of a conformance case (tests/e2e/conformance.py): a peer that runs test-peer
commands (README.md, "Test-peer"), the in-process control channel that stands in for
vsock_test's TCP control connection, and the vsock_test helpers (util.c's vsock_connect,
vsock_accept, send_byte, recv_byte, vsock_wait_remote_close, ...) written over both.

LocalPeer runs the commands on this host's own AF_VSOCK sockets (the Python implementation of
the grammar, qemu/nested/linux-guest/test_peer.py); RemotePeer sends them to the guest's
test-peer on port 1239 (the firmware's, or the Linux stand-in's).
"""
import os
import queue
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "qemu", "nested", "linux-guest"))
import test_peer  # noqa: E402

TEST_PEER_PORT = 1239
TIMEOUT = 10.0  # vsock_test's TIMEOUT (seconds)
CONTROL_TIMEOUT = 40.0  # a control line waits longer than any one command may take


class CaseFailure(Exception):
    pass


class Skip(Exception):
    """This direction cannot run here (the reason is printed)."""


class Result:
    def __init__(self, line):
        self.line = line
        words = line.split(" ")
        if len(words) < 4:
            raise CaseFailure("malformed answer %r" % line)
        self.ret, self.errno, self.bytes, self.crc = int(words[0]), words[1], int(words[2]), int(words[3], 16)
        self.keys = dict(w.split("=", 1) for w in words[4:] if "=" in w)


class LocalPeer:
    name = "host"

    def __init__(self):
        self.executor = test_peer.Executor()

    def cmd(self, line):
        return Result(self.executor.execute(line))

    def close(self):
        self.executor.close_all()


class RemotePeer:
    """One control connection to the guest's test-peer (a new one per case: closing it closes
    every socket the case left open there)."""

    def __init__(self, cid, name, deadline=10.0):
        self.name = name
        end = time.monotonic() + deadline
        while True:
            self.sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            self.sock.settimeout(CONTROL_TIMEOUT)
            self.pending = b""
            try:
                self.sock.connect((cid, TEST_PEER_PORT))
                first = self.cmd("info")  # EBUSY while the previous control connection is still closing
                if first.errno == "OK":
                    self.info = first
                    return
            except (OSError, CaseFailure):
                pass
            self.sock.close()
            if time.monotonic() >= end:
                raise CaseFailure("no test-peer control connection to %d:%d within %.0f s" % (cid, TEST_PEER_PORT, deadline))
            time.sleep(0.05)

    def cmd(self, line):
        self.start(line)
        return self.finish(line)

    def start(self, line):
        """Sends a command without waiting for its answer (finish() reads it)."""
        self.sock.sendall(line.encode() + b"\n")

    def finish(self, line):
        while b"\n" not in self.pending:
            data = self.sock.recv(4096)
            if not data:
                raise CaseFailure("%s: control connection closed after %r" % (self.name, line))
            self.pending += data
        answer, self.pending = self.pending.split(b"\n", 1)
        return Result(answer.decode(errors="replace"))

    def close(self):
        self.sock.close()


class Control:
    """One end of the in-process control channel (vsock_test's control_writeln/expectln)."""

    def __init__(self, inbox, outbox):
        self.inbox, self.outbox = inbox, outbox

    @staticmethod
    def pair():
        a, b = queue.Queue(), queue.Queue()
        return Control(a, b), Control(b, a)

    def writeln(self, text):
        self.outbox.put(text)

    def readln(self):
        try:
            return self.inbox.get(timeout=CONTROL_TIMEOUT)
        except queue.Empty:
            raise CaseFailure("control: no line from the other side in %.0f s" % CONTROL_TIMEOUT)

    def expectln(self, text):
        got = self.readln()
        if got != text:
            raise CaseFailure("control: expected %r, got %r" % (text, got))


A_CRC = zlib.crc32(b"A")


class Side:
    """One side of a case: its peer, its end of the control channel, the other side's CID."""

    def __init__(self, peer, control, peer_cid, port):
        self.peer, self.ctl, self.peer_cid, self.port = peer, control, peer_cid, port
        self.name = peer.name
        self.linux = peer.name in ("host", "linux")  # the sides whose kernel is Linux's
        self.notes = []
        self.kind = "stream"  # the type socket() makes: "seqpacket" in the SOCK_SEQPACKET cases

    def cmd(self, line):
        return self.peer.cmd(line)

    def fail(self, line, r, want):
        raise CaseFailure("%s: %s -> %s (expected %s)" % (self.name, line, r.line, want))

    def ok(self, line):
        r = self.cmd(line)
        if r.errno != "OK":
            self.fail(line, r, "OK")
        return r

    def expect(self, line, errno_name):
        r = self.cmd(line)
        if r.errno != errno_name:
            self.fail(line, r, errno_name)
        return r

    def expect_linux_quirk(self, line, errno_name, quirks):
        """expect(), except that a Linux side may answer one of `quirks` (errno -> why), which is
        noted: the reference kernel here predates the behaviour the case was written for."""
        r = self.cmd(line)
        if r.errno == errno_name:
            return r
        if self.linux and r.errno in quirks:
            self.notes.append("%s: %s -> %s: %s" % (self.name, line, r.errno, quirks[r.errno]))
            return r
        self.fail(line, r, errno_name)

    # util.c's helpers
    def socket(self):
        r = self.cmd("socket %s" % self.kind)
        if r.errno == "ESOCKTNOSUPPORT" and self.kind == "seqpacket":
            raise Skip("%s: no SOCK_SEQPACKET here (socket seqpacket: ESOCKTNOSUPPORT: the device "
                                       "did not offer VIRTIO_VSOCK_F_SEQPACKET)" % self.name)
        if r.errno != "OK":
            self.fail("socket %s" % self.kind, r, "OK")
        return r.ret

    def listen(self, port=None, backlog=1):
        fd = self.socket()
        self.ok("bind %d %d" % (fd, self.port if port is None else port))
        self.ok("listen %d %d" % (fd, backlog))
        return fd

    def connect_fd(self, fd, port=None):
        return self.cmd("connect %d %d %d" % (fd, self.peer_cid, self.port if port is None else port))

    def connect(self):
        """vsock_stream_connect: waits for the server's LISTENING, then connects."""
        self.ctl.expectln("LISTENING")
        fd = self.socket()
        line = "connect %d %d %d" % (fd, self.peer_cid, self.port)
        r = self.cmd(line)
        if r.errno != "OK":
            self.fail(line, r, "OK")
        return fd

    def accept_signalled(self, listener):
        """LISTENING to the other side, then accept(). vsock_test's server calls accept() right
        after writing the line; a remote peer gets its accept command first (answered once a
        connection comes), so that the guest waits in accept() by the time the client connects,
        as the upstream server does, instead of a control round trip later."""
        line = "accept %d" % listener
        if hasattr(self.peer, "start"):
            self.peer.start(line)
            self.ctl.writeln("LISTENING")
            r = self.peer.finish(line)
        else:
            self.ctl.writeln("LISTENING")
            r = self.cmd(line)
        if r.errno != "OK":
            self.fail(line, r, "OK")
        return r.ret

    def accept(self):
        """vsock_stream_accept: listen (backlog 1), LISTENING, accept, close the listener."""
        listener = self.listen()
        child = self.accept_signalled(listener)
        self.ok("close %d" % listener)
        return child

    def send_byte(self, fd, expected=1):
        line = "send %d 1" % fd
        r = self.cmd(line)
        if expected < 0:
            if r.errno != expected_name(expected):
                self.fail(line, r, expected_name(expected))
        elif r.ret != expected or (expected == 1 and r.crc != A_CRC):
            self.fail(line, r, "%d byte 'A'" % expected)

    def recv_byte(self, fd, expected=1):
        line = "recv %d 1 all" % fd
        r = self.cmd(line)
        if expected < 0:
            if r.errno != expected_name(expected):
                self.fail(line, r, expected_name(expected))
        elif r.ret != expected or (expected == 1 and r.crc != A_CRC):
            self.fail(line, r, "%d byte 'A'" % expected if expected else "EOF")

    def wait_remote_close(self, fd):
        """vsock_wait_remote_close: EPOLLRDHUP or EPOLLHUP within TIMEOUT."""
        line = "poll %d rdhup %d" % (fd, TIMEOUT * 1000)
        r = self.cmd(line)
        revents = r.keys.get("revents", "").split(",")
        if "rdhup" not in revents and "hup" not in revents:
            self.fail(line, r, "rdhup or hup")

    def send_until_error(self, fd):
        """test_stream_check_sigpipe's loop: send 1 byte every 10 ms until it fails (TIMEOUT)."""
        end = time.monotonic() + TIMEOUT
        while True:
            r = self.cmd("send %d 1" % fd)
            if r.errno != "OK":
                return r
            if time.monotonic() >= end:
                self.fail("send %d 1" % fd, r, "an error within %.0f s" % TIMEOUT)
            time.sleep(0.01)


SOCK_BUF_SIZE = 2 * 1024 * 1024  # vsock_test's receive buffer in cases 6 and 38


def set_large_buffer(s, fd):
    """SO_VM_SOCKETS_BUFFER_MAX_SIZE and _SIZE to 2 MiB; returns the size set. The firmware's
    receive buffers are preallocated (at most 256 KiB): it sets its largest instead (noted)."""
    size = SOCK_BUF_SIZE
    r = s.cmd("setsockopt %d buffer_max_size %d" % (fd, size))
    if r.errno == "EINVAL":
        size = int(s.ok("getsockopt %d buffer_max_size" % fd).keys["value"])
        s.notes.append("%s advertises its largest buffer, %d bytes, not 2 MiB" % (s.name, size))
    elif r.errno != "OK":
        s.fail("setsockopt buffer_max_size", r, "OK")
    s.ok("setsockopt %d buffer_size %d" % (fd, size))
    return size


ERRNO_NAMES = {11: "EAGAIN", 14: "EFAULT", 32: "EPIPE", 90: "EMSGSIZE", 104: "ECONNRESET"}


def expected_name(negative):
    return ERRNO_NAMES[-negative]


def pattern(length, seed, offset=0):
    return test_peer.send_pattern(offset, length, seed)
