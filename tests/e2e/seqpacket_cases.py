"""SOCK_SEQPACKET cases of the e2e suite (issue 15), against the firmware's SEQPACKET echo on port
1238 (or the Linux stand-in's), over the kernel's vhost-vsock (python's AF_VSOCK SOCK_SEQPACKET) or
the vhost-user backend's <uds-path>.seqpacket (transport.py). Each message must come back whole
and alone: recv on a SEQPACKET socket returns one message, so a boundary lost or moved shows as a
wrong length or wrong bytes."""
import errno
import socket
import time

import transport
from vsockclient import CaseFailure, Background, connect, recv_exact, payload, GUEST_CID, ECHO_PORT, OP_TIMEOUT

SEQPACKET_ECHO_PORT = 1238
SIZES = [1, 4095, 4096, 65536, 65537, 262144]
MAX_MESSAGE = 262144


def connect_seq(port=SEQPACKET_ECHO_PORT, deadline=30.0):
    """Retries while the guest is still coming up (as vsockclient.connect does for STREAM)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return transport.connect_seqpacket(GUEST_CID, port, OP_TIMEOUT)
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.ECONNREFUSED, errno.ETIMEDOUT) or time.monotonic() > end:
                raise
            time.sleep(0.2)


def recv_message(s):
    data, _, flags, _ = s.recvmsg(MAX_MESSAGE + 1)
    if flags & socket.MSG_TRUNC:
        raise CaseFailure("a message longer than %d B came back (MSG_TRUNC)" % MAX_MESSAGE)
    return data


def echo_messages(s, messages):
    """Sends the messages (a writer thread) while reading them back one recv each."""
    writer = Background(lambda: [s.send(m) for m in messages])
    back = [recv_message(s) for _ in messages]
    sent = writer.join_result(OP_TIMEOUT)
    for i, (want, got) in enumerate(zip(messages, back)):
        if got != want:
            raise CaseFailure("message %d: sent %d B, got back %d B%s"
                              % (i, len(want), len(got), " (same length, other bytes)" if len(got) == len(want) else ""))
    if sent != [len(m) for m in messages]:
        raise CaseFailure("send returned %r for messages of %r B" % (sent, [len(m) for m in messages]))
    return sum(len(m) for m in messages) * 2


def case_seq_sizes():
    """Every size, one connection, pipelined: each message back whole, in order."""
    messages = [payload(n, 1500 + i) for i, n in enumerate(SIZES)]
    start = time.monotonic()
    with connect_seq() as s:
        moved = echo_messages(s, messages)
    return moved, time.monotonic() - start, "sizes %s" % ",".join(str(n) for n in SIZES)


def case_seq_truncation():
    """A receive buffer shorter than the message: the start of it, MSG_TRUNC, and the next
    message is unharmed (the kernel's side of the semantics the firmware's recv mirrors)."""
    with connect_seq() as s:
        s.send(payload(5000, 1))
        s.send(b"after")
        data, _, flags, _ = s.recvmsg(100)
        if data != payload(5000, 1)[:100] or not flags & socket.MSG_TRUNC:
            raise CaseFailure("truncated recv: expected 100 B and MSG_TRUNC, got %d B flags %#x" % (len(data), flags))
        data = recv_message(s)
        if data != b"after":
            raise CaseFailure("the message after a truncated one: expected b'after', got %r" % data[:40])
    return 5005


def case_seq_type_mismatch():
    """STREAM to the SEQPACKET port and SEQPACKET to the STREAM echo are refused (RST)."""
    for what, attempt in (("STREAM to 1238", lambda: transport.connect_stream(GUEST_CID, SEQPACKET_ECHO_PORT, 10)),
                          ("SEQPACKET to 1234", lambda: transport.connect_seqpacket(GUEST_CID, ECHO_PORT, 10))):
        try:
            attempt().close()
            raise CaseFailure("%s was accepted; expected ECONNRESET" % what)
        except OSError as e:
            if e.errno != errno.ECONNRESET:
                raise CaseFailure("%s: expected ECONNRESET, got %r" % (what, e))
    return 0


def case_seq_concurrent(count=32, rounds=3):
    """count SEQPACKET connections at once, beside 4 STREAM echo connections moving data."""
    sizes = [1, 4095, 4096, 65537, 300]
    start = time.monotonic()

    def stream_worker(seed):
        with connect(ECHO_PORT) as s:
            data = payload(256 * 1024, seed)
            writer = Background(s.sendall, data)
            back = recv_exact(s, len(data))
            writer.join_result(OP_TIMEOUT)
            if back != data:
                raise CaseFailure("stream %d beside the SEQPACKET connections: bytes differ" % seed)
            return 2 * len(data)

    def seq_worker(i):
        moved = 0
        with connect_seq() as s:
            for r in range(rounds):
                moved += echo_messages(s, [payload(n, i * 100 + r * 10 + k) for k, n in enumerate(sizes)])
        return moved

    streams = [Background(stream_worker, 900 + i) for i in range(4)]
    seqs = [Background(seq_worker, i) for i in range(count)]
    moved = sum(w.join_result(OP_TIMEOUT * 4) for w in seqs + streams)
    return moved, time.monotonic() - start, "%d SEQPACKET + 4 STREAM connections" % count


def seqpacket_cases():
    return [
        ("seq-sizes", case_seq_sizes),
        ("seq-truncation", case_seq_truncation),
        ("seq-type-mismatch", case_seq_type_mismatch),
        ("seq-concurrent-32", case_seq_concurrent),
    ]
