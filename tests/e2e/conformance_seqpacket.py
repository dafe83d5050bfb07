"""vsock_test's SOCK_SEQPACKET cases (6, 7, 8, 9, 11, 13, 15; 25 and 35 reuse the STREAM steps
through as_seqpacket) over the test-peer grammar: `send ... eor` is send(MSG_EOR), `recv ...
trunc` recv(MSG_TRUNC), and a recv's answer carries recvmsg's msg_flags as flags=trunc,eor.
Where upstream compares buffers or a running hash in one process, the receiving side here
compares each message's length, CRC-32 and EOR mark with what the sending side says it sent.
"""
import json
import os
import random
import time
import zlib

from conformance_peers import TIMEOUT, CaseFailure, Skip, pattern, set_large_buffer


def as_seqpacket(fn):
    """A STREAM case's side, run on SOCK_SEQPACKET sockets (upstream's shared helpers with a type)."""
    def run(side):
        side.kind = "seqpacket"
        return fn(side)
    return run


def flags_of(r):
    return set(r.keys.get("flags", "").split(",")) - {""}


def expect_message(side, line, r, length, crc, eor=None):
    if r.ret != length or r.bytes != length or r.crc != crc or "trunc" in flags_of(r) or eor is not None and ("eor" in flags_of(r)) != eor:
        side.fail(line, r, "one whole message of %d bytes, crc %08x%s" % (
            length, crc, "" if eor is None else ", flags %s" % ("eor" if eor else "none")))


# ---- 6: msg bounds --------------------------------------------------------------------------------

PAGE = 4096
MAX_MSG_SIZE = 4 * PAGE  # MAX_MSG_PAGES pages


@as_seqpacket
def seqpacket_msg_bounds_client(c):
    fd = c.connect()
    # The sender raises its own buffer too: since "vsock/virtio: cap TX credit to local buffer
    # size" a sender keeps in flight at most its own buffer size (upstream's client does the same).
    own = set_large_buffer(c, fd)
    c.ctl.expectln("SRVREADY")
    # Upstream sends SOCK_BUF_SIZE / MAX_MSG_SIZE messages before the server reads any: they all
    # fit the 2 MiB both sides set. A side that can offer less (the firmware: 256 KiB) gets as many
    # as fit the smaller buffer, so that every message is still queued before the first read: the
    # receiver's holds them, and a sender keeps no more than its own in flight (the TX credit cap).
    size = min(int(c.ctl.readln()), own)
    rng = random.Random(6)
    count = size // MAX_MSG_SIZE
    sent = []
    for i in range(count):
        length = PAGE + rng.randrange(MAX_MSG_SIZE - PAGE) if i & 1 else 1 + rng.randrange(PAGE)
        seed = rng.randrange(256)
        eor = i == count // 2 or rng.random() < 0.5  # at least one MSG_EOR, and some at random
        line = "send %d %d %d%s" % (fd, length, seed, " eor" if eor else "")
        r = c.cmd(line)
        if r.errno != "OK" or r.bytes != length:
            c.fail(line, r, "%d bytes" % length)
        sent.append([length, zlib.crc32(pattern(length, seed)), eor])
    c.ctl.writeln("SENDDONE")
    c.ctl.writeln(json.dumps(sent))  # upstream's control_writeulong(hash)
    c.ok("close %d" % fd)


@as_seqpacket
def seqpacket_msg_bounds_server(s):
    fd = s.accept()
    size = set_large_buffer(s, fd)
    s.ctl.writeln("SRVREADY")
    s.ctl.writeln(str(size))
    s.ctl.expectln("SENDDONE")
    sent = json.loads(s.ctl.readln())
    got = []
    while True:  # recvmsg into MAX_MSG_SIZE bytes until EOF (the client closed)
        r = s.ok("recv %d %d" % (fd, MAX_MSG_SIZE))
        if r.ret == 0:
            break
        got.append([r.ret, r.crc, "eor" in flags_of(r)])
        if "trunc" in flags_of(r) or len(got) > len(sent):
            break
    s.ok("close %d" % fd)
    if got != sent:
        first = next((i for i, (a, b) in enumerate(zip(got, sent)) if a != b), min(len(got), len(sent)))
        raise CaseFailure("%s: message bounds broken: %d messages received, %d sent; the first difference at #%d: "
                          "received %s, sent %s (length, crc, eor)" % (
                              s.name, len(got), len(sent), first, got[first] if first < len(got) else None,
                              sent[first] if first < len(sent) else None))


# ---- 7: MSG_TRUNC ---------------------------------------------------------------------------------

TRUNC_SZ = 32


@as_seqpacket
def seqpacket_msg_trunc_client(c):
    fd = c.connect()
    c.ok("send %d %d 7" % (fd, TRUNC_SZ))
    c.ctl.writeln("SENDDONE")
    c.ok("close %d" % fd)


@as_seqpacket
def seqpacket_msg_trunc_server(s):
    fd = s.accept()
    s.ctl.expectln("SENDDONE")
    line = "recv %d %d trunc" % (fd, TRUNC_SZ // 2)
    r = s.cmd(line)
    half = pattern(TRUNC_SZ, 7)[:TRUNC_SZ // 2]
    if r.errno != "OK" or r.ret != TRUNC_SZ or "trunc" not in flags_of(r) or (r.bytes, r.crc) != (len(half), zlib.crc32(half)):
        s.fail(line, r, "ret %d (the real length), flags with trunc, the first %d bytes" % (TRUNC_SZ, len(half)))
    s.ok("close %d" % fd)


# ---- 8: timeout -----------------------------------------------------------------------------------

RCVTIMEO_S = 1
READ_OVERHEAD_S = 0.25


@as_seqpacket
def seqpacket_timeout_client(c):
    fd = c.connect()
    c.ok("setsockopt %d rcvtimeo %d" % (fd, RCVTIMEO_S * 1000))
    # The read is timed here, around the command: one control round trip (measured now) is not
    # the peer's read time and is taken off the overhead.
    start = time.monotonic()
    c.ok("info")
    round_trip = time.monotonic() - start
    line = "recv %d 1" % fd
    start = time.monotonic()
    r = c.cmd(line)
    took = time.monotonic() - start
    if r.errno != "EAGAIN":
        c.fail(line, r, "EAGAIN")
    overhead = took - round_trip - RCVTIMEO_S
    if overhead > READ_OVERHEAD_S:
        raise CaseFailure("%s: too much time in read: %.3f s over SO_RCVTIMEO (%.3f s round trip taken off; at most %.2f s)"
                          % (c.name, overhead, round_trip, READ_OVERHEAD_S))
    c.ctl.writeln("WAITDONE")
    c.ok("close %d" % fd)


@as_seqpacket
def seqpacket_timeout_server(s):
    fd = s.accept()
    s.ctl.expectln("WAITDONE")
    s.ok("close %d" % fd)


# ---- 9: invalid receive buffer --------------------------------------------------------------------

REC_BUF = 3 * PAGE


@as_seqpacket
def seqpacket_invalid_rec_buffer_client(c):
    fd = c.connect()
    for seed in (1, 2):  # upstream's 'a' and 'b' patterns
        r = c.ok("send %d %d %d" % (fd, REC_BUF, seed))
        if r.bytes != REC_BUF:
            c.fail("send", r, "%d bytes" % REC_BUF)
    c.ok("close %d" % fd)


def wait_message(side, fd):
    """Upstream's blocking read waits for the message before the copy fails; the test-peer's
    nullbuf (address 0) may be refused before any wait, so first wait until a message is there."""
    line = "poll %d in %d" % (fd, TIMEOUT * 1000)
    r = side.ok(line)
    if "in" not in r.keys.get("revents", "").split(","):
        side.fail(line, r, "revents with in")


def read_invalid_buffer(side, fd, length):
    side.expect_linux_quirk("recv %d %d nullbuf" % (fd, length), "EFAULT", {
        "ENOMEM": "Linux 6.1 (this setup's kernel) reports the failed copy as ENOMEM; newer kernels as EFAULT"})


@as_seqpacket
def seqpacket_invalid_rec_buffer_server(s):
    fd = s.accept()
    wait_message(s, fd)
    read_invalid_buffer(s, fd, REC_BUF)  # the first message: lost with the failed read
    line = "recv %d %d" % (fd, REC_BUF)
    expect_message(s, line, s.ok(line), REC_BUF, zlib.crc32(pattern(REC_BUF, 2)))  # the second, whole
    s.ok("close %d" % fd)


# ---- 11: big message ------------------------------------------------------------------------------

@as_seqpacket
def seqpacket_bigmsg_client(c):
    fd = c.connect()
    size = int(c.ok("getsockopt %d buffer_size" % fd).keys["value"]) + 1
    c.expect_linux_quirk("send %d %d" % (fd, size), "EMSGSIZE", {
        "ENOMEM": "Linux 6.1 (this setup's kernel) turns every transport error of send into ENOMEM; newer kernels "
                  "pass EMSGSIZE through"})
    c.ctl.writeln("CLISENT")
    c.ok("close %d" % fd)


@as_seqpacket
def seqpacket_bigmsg_server(s):
    fd = s.accept()
    s.ctl.expectln("CLISENT")
    s.ok("close %d" % fd)


# ---- 13: test invalid buffer ----------------------------------------------------------------------

INV_BUF_LEN = 512


@as_seqpacket
def seqpacket_inv_buf_client(c):
    fd = c.connect()
    c.ctl.expectln("SENDDONE")
    wait_message(c, fd)
    read_invalid_buffer(c, fd, INV_BUF_LEN)
    c.expect("recv %d %d dontwait" % (fd, INV_BUF_LEN), "EAGAIN")  # SEQPACKET: the message went with it
    c.ctl.writeln("DONE")
    c.ok("close %d" % fd)


@as_seqpacket
def seqpacket_inv_buf_server(s):
    fd = s.accept()
    s.ok("send %d %d" % (fd, INV_BUF_LEN))
    s.ctl.writeln("SENDDONE")
    s.ctl.expectln("DONE")
    s.ok("close %d" % fd)


# ---- 15: MSG_PEEK (the client is case 5's) --------------------------------------------------------

PEEK_LEN = 64


@as_seqpacket
def seqpacket_msg_peek_server(s):
    fd = s.accept()
    s.expect("recv %d %d peek dontwait" % (fd, PEEK_LEN), "EAGAIN")  # peek from an empty socket
    s.ctl.writeln("SRVREADY")
    data = pattern(PEEK_LEN, 5)
    line = "recv %d %d peek" % (fd, PEEK_LEN // 2)  # blocks until the whole message is there
    half = s.cmd(line)
    if half.errno == "ENOMEM" and s.linux:
        raise Skip("%s: Linux %s answers recv(MSG_PEEK) on a SEQPACKET socket with ENOMEM: MSG_PEEK for SEQPACKET "
                   "came in a later kernel, with this case" % (s.name, os.uname().release))
    if (half.ret, half.bytes, half.crc) != (PEEK_LEN // 2, PEEK_LEN // 2, zlib.crc32(data[:PEEK_LEN // 2])):
        s.fail(line, half, "the message's first %d bytes" % (PEEK_LEN // 2))
    line = "recv %d %d peek" % (fd, PEEK_LEN)
    expect_message(s, line, s.ok(line), PEEK_LEN, zlib.crc32(data))
    line = "recv %d %d peek trunc" % (fd, PEEK_LEN // 2)  # MSG_PEEK | MSG_TRUNC: the message's length
    r = s.ok(line)
    if r.ret != PEEK_LEN:
        s.fail(line, r, "ret %d" % PEEK_LEN)
    line = "recv %d %d" % (fd, PEEK_LEN)
    expect_message(s, line, s.ok(line), PEEK_LEN, zlib.crc32(data))
    s.ok("close %d" % fd)
