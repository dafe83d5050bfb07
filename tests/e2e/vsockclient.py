"""Host-side AF_VSOCK helpers for the e2e suite (run only on the vhost-vsock host, never here).

Every socket operation is bounded by a timeout; connects are retried until a deadline because a
client that connects before the guest listens gets a reset at once.
"""
import errno
import os
import random
import socket
import threading
import time
import zlib

import transport

GUEST_CID = int(os.environ.get("VSOCK_CID", "33"))
ECHO_PORT, SINK_PORT, SOURCE_PORT, GREETING_PORT = 1234, 1235, 1236, 4050
OP_TIMEOUT = 30.0          # seconds any single send/recv/connect may take
CONNECT_DEADLINE = 30.0    # seconds connect() is retried for
RETRYABLE = (errno.ECONNRESET, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EAGAIN)
CHUNK = 65536
# E2E_SCALE=N divides the suite's large transfers by N (never below 64 KiB): for accelerators that
# run the firmware slowly (an emulating KVM), where the same cases at full size would take hours.
SCALE = max(1, int(os.environ.get("E2E_SCALE", "1")))
PATTERN_PERIOD = 65536
# The source's documented pattern: byte[i] = (i * 7 + (i >> 8)) & 0xff (period 65536).
PATTERN = bytes(((i * 7 + (i >> 8)) & 0xFF) for i in range(2 * PATTERN_PERIOD))


connect_retries = [0]     # connects that were reset/refused and retried (reported per case)


class CaseFailure(Exception):
    """A check failed: the message names what was expected and what came."""


def connect(port, deadline=CONNECT_DEADLINE, timeout=OP_TIMEOUT):
    """A connected stream socket to the guest, retrying resets/refusals until the deadline."""
    end = time.monotonic() + deadline
    while True:
        try:
            return transport.connect_stream(GUEST_CID, port, timeout)
        except OSError as e:
            if e.errno not in RETRYABLE and not isinstance(e, socket.timeout):
                raise
            if time.monotonic() >= end:
                raise CaseFailure("connect to %d:%d: still %s after %.0f s" % (GUEST_CID, port, e, deadline))
            connect_retries[0] += 1
            time.sleep(0.05)


def recv_exact(s, count):
    parts, got = [], 0
    while got < count:
        data = s.recv(min(CHUNK, count - got))
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def recv_to_eof(s, limit=1 << 30):
    parts, got = [], 0
    while got <= limit:
        data = s.recv(CHUNK)
        if not data:
            return b"".join(parts)
        parts.append(data)
        got += len(data)
    raise CaseFailure("more than %d bytes before EOF" % limit)


def crc_to_eof(s):
    """(byte count, zlib CRC-32) of everything read until EOF, without keeping the bytes."""
    got, crc = 0, 0
    while True:
        data = s.recv(CHUNK)
        if not data:
            return got, crc
        got += len(data)
        crc = zlib.crc32(data, crc)


def send_all(s, data):
    view = memoryview(data)
    for offset in range(0, len(view), CHUNK):
        s.sendall(view[offset:offset + CHUNK])


def scaled(size, floor=65536):
    return max(floor, size // SCALE)


def payload(size, seed):
    return random.Random(seed).randbytes(size)


def pattern_bytes(count):
    """The first `count` bytes of the source pattern."""
    full, rest = divmod(count, PATTERN_PERIOD)
    return PATTERN[:PATTERN_PERIOD] * full + PATTERN[:rest]


class Background(threading.Thread):
    """Runs fn(*args) in a thread and re-raises its exception on join()."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.error, self.result = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:  # handed to the joining thread
            self.error = e

    def join_result(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise CaseFailure("background %s still running after %.0f s" % (self.fn.__name__, timeout))
        if self.error:
            raise self.error
        return self.result
