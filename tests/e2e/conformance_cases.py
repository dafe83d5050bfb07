"""vsock_test's case list (tools/testing/vsock/vsock_test.c in Linux), by upstream ID and name,
each STREAM case's client and server steps written over the test-peer grammar
(conformance_peers.Side), and the reason for every case that has no meaning for the firmware.
The steps follow upstream's; where the firmware's socket API lacks an option upstream sets,
the case says how it stands in (see `adapted` notes in conformance.py's output).
"""
import os
import time
import zlib

from conformance_peers import SOCK_BUF_SIZE, TIMEOUT, CaseFailure, Skip, pattern, set_large_buffer
from conformance_seqpacket import (as_seqpacket, seqpacket_bigmsg_client, seqpacket_bigmsg_server, seqpacket_inv_buf_client,
                                   seqpacket_inv_buf_server, seqpacket_invalid_rec_buffer_client,
                                   seqpacket_invalid_rec_buffer_server, seqpacket_msg_bounds_client,
                                   seqpacket_msg_bounds_server, seqpacket_msg_peek_server, seqpacket_msg_trunc_client,
                                   seqpacket_msg_trunc_server, seqpacket_timeout_client, seqpacket_timeout_server)

ZEROCOPY = "MSG_ZEROCOPY/MSG_ERRQUEUE: the firmware's send copies into its send buffer; there is no zero-copy send or error queue"
KMEMLEAK = "a Linux kmemleak regression of zero-copy skbs (needs MSG_ZEROCOPY and kmemleak)"
TRANSPORTS = "Linux's choice among several vsock transports (vhost, virtio, vmci, loopback); the firmware has one transport"


# ---- 0-5 ------------------------------------------------------------------------------------------

def connection_reset_client(c):
    fd = c.socket()
    c.expect("connect %d %d %d" % (fd, c.peer_cid, c.port), "ECONNRESET")
    c.ok("close %d" % fd)


def bind_only_client(c):
    c.ctl.expectln("BIND")
    fd = c.socket()
    c.expect("connect %d %d %d" % (fd, c.peer_cid, c.port), "ECONNRESET")
    c.ctl.writeln("DONE")
    c.ok("close %d" % fd)


def bind_only_server(s):
    fd = s.socket()
    s.ok("bind %d %d" % (fd, s.port))
    s.ctl.writeln("BIND")
    s.ctl.expectln("DONE")
    s.ok("close %d" % fd)


def client_close_client(c):
    fd = c.connect()
    c.send_byte(fd, 1)
    c.ok("close %d" % fd)


def client_close_server(s):
    fd = s.accept()
    s.wait_remote_close(fd)
    s.send_byte(fd, -32)
    s.recv_byte(fd, 1)
    s.recv_byte(fd, 0)
    s.ok("close %d" % fd)


def server_close_client(c):
    fd = c.connect()
    c.wait_remote_close(fd)
    c.send_byte(fd, -32)
    c.recv_byte(fd, 1)
    c.recv_byte(fd, 0)
    c.ok("close %d" % fd)


def server_close_server(s):
    fd = s.accept()
    s.send_byte(fd, 1)
    s.ok("close %d" % fd)


MULTICONN = 100


def needs_connections(side, count):
    info = getattr(side.peer, "info", None)
    if info is not None and int(info.keys.get("max_connections", 0)) < count + 1:
        raise Skip("needs %d connections at once plus the control connection; this image has MAX_CONNECTIONS=%s "
                   "(make image MAX_CONNECTIONS=128 LINEAR_MEMORY_MIB=64 runs it)" % (count, info.keys["max_connections"]))


def multiconn_client(c):
    needs_connections(c, MULTICONN)
    fds = [c.connect() for _ in range(MULTICONN)]
    for i, fd in enumerate(fds):
        c.recv_byte(fd, 1) if i % 2 else c.send_byte(fd, 1)
    for fd in fds:
        c.ok("close %d" % fd)


def multiconn_server(s):
    needs_connections(s, MULTICONN)
    fds = [s.accept() for _ in range(MULTICONN)]
    for i, fd in enumerate(fds):
        s.send_byte(fd, 1) if i % 2 else s.recv_byte(fd, 1)
    for fd in fds:
        s.ok("close %d" % fd)


PEEK_LEN = 64


def msg_peek_client(c):
    fd = c.connect()
    c.ctl.expectln("SRVREADY")
    c.ok("send %d %d 5" % (fd, PEEK_LEN))
    c.ok("close %d" % fd)


def msg_peek_server(s):
    fd = s.accept()
    s.expect("recv %d %d peek dontwait" % (fd, PEEK_LEN), "EAGAIN")  # peek from an empty socket
    s.ctl.writeln("SRVREADY")
    data = pattern(PEEK_LEN, 5)
    s.ok("wait %d %d %d" % (fd, PEEK_LEN, TIMEOUT * 1000))  # recv_buf's loop would re-peek the start
    half = s.ok("recv %d %d peek" % (fd, PEEK_LEN // 2))
    whole = s.ok("recv %d %d peek" % (fd, PEEK_LEN))
    normal = s.ok("recv %d %d all" % (fd, PEEK_LEN))
    if (half.bytes, half.crc) != (PEEK_LEN // 2, zlib.crc32(data[:PEEK_LEN // 2])):
        raise CaseFailure("%s: partial peek: %s (expected 32 bytes crc %08x)" % (s.name, half.line, zlib.crc32(data[:32])))
    if (whole.bytes, whole.crc) != (PEEK_LEN, zlib.crc32(data)) or (normal.bytes, normal.crc) != (whole.bytes, whole.crc):
        raise CaseFailure("%s: full peek %s and read %s differ (expected 64 bytes crc %08x)" % (s.name, whole.line, normal.line, zlib.crc32(data)))
    s.ok("close %d" % fd)


# ---- 10, 12, 14 -----------------------------------------------------------------------------------

RCVLOWAT_BUF_SIZE = 128


def poll_rcvlowat_server(s):
    fd = s.accept()
    s.send_byte(fd, 1)
    s.ctl.writeln("SRVSENT")
    s.ctl.expectln("CLNSENT")
    for _ in range(RCVLOWAT_BUF_SIZE - 1):
        s.send_byte(fd, 1)
    s.ctl.expectln("POLLDONE")
    s.ok("close %d" % fd)


def poll_rcvlowat_client(c):
    fd = c.connect()
    c.ok("setsockopt %d rcvlowat %d" % (fd, RCVLOWAT_BUF_SIZE))
    c.ctl.expectln("SRVSENT")
    r = c.ok("poll %d in 1000" % fd)  # one byte is there, below SO_RCVLOWAT: nothing to report
    if r.keys.get("revents") != "none":
        c.fail("poll %d in 1000" % fd, r, "revents=none")
    c.ctl.writeln("CLNSENT")
    r = c.ok("poll %d in 10000" % fd)
    if r.keys.get("revents") != "in":
        c.fail("poll %d in 10000" % fd, r, "revents=in")
    r = c.ok("recv %d %d dontwait all" % (fd, RCVLOWAT_BUF_SIZE))
    if r.bytes != RCVLOWAT_BUF_SIZE:
        c.fail("recv", r, "%d bytes" % RCVLOWAT_BUF_SIZE)
    c.ctl.writeln("POLLDONE")
    c.ok("close %d" % fd)


INV_BUF_LEN = 512


def inv_buf_client(c):
    fd = c.connect()
    c.ctl.expectln("SENDDONE")
    c.expect_linux_quirk("recv %d %d nullbuf" % (fd, INV_BUF_LEN), "EFAULT", {
        "ENOMEM": "Linux 6.1 (this setup's kernel) reports the failed copy as ENOMEM; newer kernels as EFAULT"})
    r = c.ok("recv %d %d dontwait all" % (fd, INV_BUF_LEN))  # STREAM: the data is still there
    if r.bytes != INV_BUF_LEN:
        c.fail("recv %d %d dontwait all" % (fd, INV_BUF_LEN), r, "%d bytes" % INV_BUF_LEN)
    c.ctl.writeln("DONE")
    c.ok("close %d" % fd)


def inv_buf_server(s):
    fd = s.accept()
    s.ok("send %d %d" % (fd, INV_BUF_LEN))
    s.ctl.writeln("SENDDONE")
    s.ctl.expectln("DONE")
    s.ok("close %d" % fd)


HELLO, WORLD = pattern(5, 1), pattern(5, 2)  # stand-ins for "HELLO" and "WORLD"


def skb_merge_client(c):
    fd = c.connect()
    c.ok("send %d 5 1" % fd)
    c.ctl.writeln("SEND0")
    c.ctl.expectln("REPLY0")
    c.ok("send %d 5 2" % fd)
    c.ctl.writeln("SEND1")
    c.ctl.expectln("REPLY1")
    c.ok("close %d" % fd)


def skb_merge_server(s):
    fd = s.accept()
    s.ctl.expectln("SEND0")
    first = s.ok("recv %d 2 all" % fd)  # read the first packet partly
    s.ctl.writeln("REPLY0")
    s.ctl.expectln("SEND1")
    rest = s.ok("recv %d 8 all" % fd)  # the rest of both
    s.expect("recv %d 54 dontwait" % fd, "EAGAIN")
    whole = HELLO + WORLD
    if (first.bytes, first.crc, rest.bytes, rest.crc) != (2, zlib.crc32(whole[:2]), 8, zlib.crc32(whole[2:])):
        raise CaseFailure("%s: pattern mismatch: %s then %s" % (s.name, first.line, rest.line))
    s.ctl.writeln("REPLY1")
    s.ok("close %d" % fd)


# ---- 16, 17, 21 -----------------------------------------------------------------------------------

def check_epipe(c, fd):
    """test_stream_check_sigpipe: send fails with EPIPE, with and without MSG_NOSIGNAL (there are no
    signals on the firmware; both rounds check EPIPE)."""
    for _ in range(2):
        r = c.send_until_error(fd)
        if r.errno != "EPIPE":
            c.fail("send %d 1" % fd, r, "EPIPE")


def shutwr_client(c):
    fd = c.connect()
    c.ok("shutdown %d wr" % fd)
    check_epipe(c, fd)
    c.ctl.writeln("CLIENTDONE")
    c.ok("close %d" % fd)


def shutwr_server(s):
    fd = s.accept()
    s.ctl.expectln("CLIENTDONE")
    s.ok("close %d" % fd)


def shutrd_client(c):
    fd = c.connect()
    c.ctl.expectln("SHUTRDDONE")
    check_epipe(c, fd)
    c.ctl.writeln("CLIENTDONE")
    c.ok("close %d" % fd)


def shutrd_server(s):
    fd = s.accept()
    s.ok("shutdown %d rd" % fd)
    s.ctl.writeln("SHUTRDDONE")
    s.ctl.expectln("CLIENTDONE")
    s.ok("close %d" % fd)


def double_bind_connect_server(s):
    listener = s.listen()
    for _ in range(2):
        child = s.accept_signalled(listener)
        s.wait_remote_close(child)
        s.ok("close %d" % child)
    s.ok("close %d" % listener)


def double_bind_connect_client(c):
    for _ in range(2):
        c.ctl.expectln("LISTENING")
        fd = c.socket()
        c.ok("bind %d %d" % (fd, c.port + 1))  # the same local port both times
        c.ok("connect %d %d %d" % (fd, c.peer_cid, c.port))
        c.ok("close %d" % fd)


# ---- 22, 23: credit update ------------------------------------------------------------------------

CREDIT_BUF = 128 * 1024
MAX_PKT = 64 * 1024


def credit_client(c):
    fd = c.connect()
    c.recv_byte(fd, 1)  # the server has set its buffer size
    r = c.ok("send %d %d 3" % (fd, CREDIT_BUF + 1))
    if r.bytes != CREDIT_BUF + 1:
        c.fail("send", r, "%d bytes" % (CREDIT_BUF + 1))
    c.ok("close %d" % fd)


def linux_too_old(s, low_rx_bytes):
    """The sender's last byte never got credit. A Linux receiver whose kernel sends no credit
    update when SO_RCVLOWAT is raised (Linux 6.1 here; virtio_transport_notify_set_rcvlowat is
    newer) cannot pass the receiving side of case 22: that side is skipped, not failed."""
    if s.linux and not low_rx_bytes:
        raise Skip("%s: Linux %s sends no credit update when SO_RCVLOWAT is raised: the receiving side of "
                   "this case cannot pass on this kernel" % (s.name, os.uname().release))


def credit_server(s, low_rx_bytes):
    fd = s.accept()
    s.ok("setsockopt %d buffer_size %d" % (fd, CREDIT_BUF))
    if low_rx_bytes:
        s.ok("setsockopt %d rcvlowat %d" % (fd, MAX_PKT + 1))
    s.send_byte(fd, 1)
    r = s.ok("wait %d %d %d" % (fd, CREDIT_BUF, TIMEOUT * 1000))  # the MSG_PEEK loop: 128 KiB queued
    peek = s.ok("recv %d %d peek" % (fd, CREDIT_BUF))
    if peek.bytes != CREDIT_BUF:
        s.fail("recv peek", peek, "%d bytes" % CREDIT_BUF)
    s.ok("recv %d %d all" % (fd, MAX_PKT))
    if not low_rx_bytes:
        s.ok("setsockopt %d rcvlowat %d" % (fd, MAX_PKT + 1))  # Linux sends a credit update here
    r = s.ok("poll %d in %d" % (fd, TIMEOUT * 1000))
    if "in" not in r.keys.get("revents", "").split(","):
        linux_too_old(s, low_rx_bytes)
        s.fail("poll", r, "revents with in")
    r = s.cmd("recv %d %d dontwait all" % (fd, MAX_PKT + 1))
    if r.bytes == MAX_PKT:
        linux_too_old(s, low_rx_bytes)
    if r.bytes != MAX_PKT + 1 or r.crc != zlib.crc32(pattern(MAX_PKT + 1, 3, CREDIT_BUF - MAX_PKT)):
        s.fail("recv %d %d dontwait all" % (fd, MAX_PKT + 1), r, "the last %d bytes" % (MAX_PKT + 1))
    s.ok("close %d" % fd)


# ---- 24, 34: SIOCOUTQ / SIOCINQ -------------------------------------------------------------------

IOCTL_LEN = 64


def queue_ioctl(side, fd, which, expected):
    """vsock_ioctl_int: retries until the value is `expected` (TIMEOUT); Skip when unsupported."""
    end = time.monotonic() + TIMEOUT
    while True:
        r = side.cmd("%s %d" % (which, fd))
        if r.errno in ("EOPNOTSUPP", "ENOTSUP", "ENOTTY", "ENOIOCTLCMD"):
            raise Skip("%s: %s not supported (%s), as upstream skips it" % (side.name, {"inq": "SIOCINQ", "outq": "SIOCOUTQ"}[which], r.errno))
        if r.errno != "OK":
            side.fail("%s %d" % (which, fd), r, "OK")
        if r.ret == expected:
            return
        if time.monotonic() >= end:
            side.fail("%s %d" % (which, fd), r, str(expected))
        time.sleep(0.01)


def unsent_bytes_server(s):
    fd = s.accept()
    s.ok("recv %d %d all" % (fd, IOCTL_LEN))
    s.ctl.writeln("RECEIVED")
    s.ok("close %d" % fd)


def unsent_bytes_client(c):
    fd = c.connect()
    c.ok("send %d %d 7" % (fd, IOCTL_LEN))
    c.ctl.expectln("RECEIVED")
    try:
        queue_ioctl(c, fd, "outq", 0)
    finally:
        c.ok("close %d" % fd)


def unread_bytes_server(s):
    fd = s.accept()
    s.ok("send %d %d 9" % (fd, IOCTL_LEN))
    s.ctl.writeln("SENT")
    s.ok("close %d" % fd)


def unread_bytes_client(c):
    fd = c.connect()
    c.ctl.expectln("SENT")
    try:
        queue_ioctl(c, fd, "inq", IOCTL_LEN)
        r = c.ok("recv %d %d all" % (fd, IOCTL_LEN))
        if r.bytes != IOCTL_LEN or r.crc != zlib.crc32(pattern(IOCTL_LEN, 9)):
            c.fail("recv", r, "the 64 bytes sent")
        queue_ioctl(c, fd, "inq", 0)
    finally:
        c.ok("close %d" % fd)


# ---- 26, 30, 31, 32, 38 ---------------------------------------------------------------------------

def leak_acceptq_client(c):
    end = time.monotonic() + 2.0  # ACCEPTQ_LEAK_RACE_TIMEOUT
    while time.monotonic() < end:
        c.ctl.writeln("CONTINUE")
        c.ctl.expectln("LISTENING")
        fd = c.socket()
        c.connect_fd(fd)  # races the server's close: either outcome is fine
        c.ok("close %d" % fd)
    c.ctl.writeln("DONE")
    left = c.ok("info").keys.get("sockets")
    if left not in (None, "0"):
        raise CaseFailure("%s: %s sockets left open after the loop" % (c.name, left))


def leak_acceptq_server(s):
    while s.ctl.readln() == "CONTINUE":
        fd = s.listen()
        s.ctl.writeln("LISTENING")
        s.ok("close %d" % fd)
    left = s.ok("info").keys.get("sockets")
    if left not in (None, "0"):
        raise CaseFailure("%s: %s sockets left open after the loop" % (s.name, left))


def connect_retry_client(c):
    fd = c.socket()
    r = c.connect_fd(fd)
    if r.errno == "OK":
        c.fail("connect #1", r, "a failure (nothing listens yet)")
    c.ctl.writeln("LISTEN")
    c.ctl.expectln("LISTENING")
    r = c.connect_fd(fd)
    if r.errno != "OK":
        c.fail("connect #2 on the same socket", r, "OK")
    c.ok("close %d" % fd)


def connect_retry_server(s):
    s.ctl.expectln("LISTEN")
    fd = s.accept()
    s.wait_remote_close(fd)
    s.ok("close %d" % fd)


def set_linger(side, fd, seconds):
    """enable_so_linger; the firmware's API has no SO_LINGER (its close never blocks): noted."""
    r = side.cmd("setsockopt %d linger %d" % (fd, seconds))
    if r.errno == "EOPNOTSUPP":
        side.notes.append("%s has no SO_LINGER: close() never lingers there" % side.name)
    elif r.errno != "OK":
        side.fail("setsockopt linger", r, "OK")


def linger_client(c):
    fd = c.connect()
    set_linger(c, fd, 1)
    c.ok("close %d" % fd)


def linger_server(s):
    fd = s.accept()
    s.wait_remote_close(fd)
    s.ok("close %d" % fd)


LINGER_TIMEOUT = TIMEOUT / 2


def nolinger_client(c):
    fd = c.connect()
    set_linger(c, fd, int(LINGER_TIMEOUT))
    c.send_byte(fd, 1)  # left unread by the server
    try:
        queue_ioctl(c, fd, "outq", 0)  # vsock_wait_sent
    except Skip as why:
        c.notes.append(str(why))
    start = time.monotonic()
    c.ok("close %d" % fd)
    took = time.monotonic() - start
    if took >= LINGER_TIMEOUT and c.linux:
        raise Skip("%s: Linux %s lingers %.1f s on data the peer has not read, the behaviour this case was "
                   "written to catch (fixed in later kernels)" % (c.name, os.uname().release, took))
    if took >= LINGER_TIMEOUT:
        raise CaseFailure("%s: close() lingered %.1f s on data the peer had not read" % (c.name, took))
    c.ctl.writeln("DONE")


def nolinger_server(s):
    fd = s.accept()
    s.ctl.expectln("DONE")
    s.ok("close %d" % fd)


SMALL_BUF = 64 * 1024


def tx_credit_bounds_client(c):
    fd = c.connect()
    c.ok("setsockopt %d buffer_max_size %d" % (fd, SMALL_BUF))
    c.ok("setsockopt %d buffer_size %d" % (fd, SMALL_BUF))
    c.ctl.expectln("SRVREADY")
    total = 0
    while True:
        r = c.cmd("send %d 4096 dontwait" % fd)
        if r.errno == "EAGAIN" and r.bytes == 0:
            break
        if r.errno not in ("OK", "EAGAIN"):
            c.fail("send %d 4096 dontwait" % fd, r, "OK or EAGAIN")
        total += r.bytes
        if total > 16 * SOCK_BUF_SIZE:
            break
    c.ctl.writeln("CLIDONE")
    c.ok("close %d" % fd)
    if total > SMALL_BUF:
        raise CaseFailure("%s: TX credit too large: queued %d bytes (expected <= %d, its own buffer size)" % (c.name, total, SMALL_BUF))


def tx_credit_bounds_server(s):
    fd = s.accept()
    set_large_buffer(s, fd)
    s.ctl.writeln("SRVREADY")
    s.ctl.expectln("CLIDONE")
    s.ok("close %d" % fd)


# ---- the list -------------------------------------------------------------------------------------

# Case 26's burst of connects that the host abandons before accept() has ended the whole outer VM
# once (a fresh-clone CI run, 2026-12-07: the TCG outer VM's QEMU exited mid-case, no job status)
# and the guest twice in nine runs of a helper's image. Until that is diagnosed it runs only when
# asked: CONFORMANCE_UNSTABLE=1 (docs/conformance.md). It passed both ways in every run it lived through.
UNSTABLE_HOST = None if os.environ.get("CONFORMANCE_UNSTABLE") == "1" else (
    "ended the outer VM (TCG, nested KVM) once and the guest twice in about twenty runs: runs only with "
    "CONFORMANCE_UNSTABLE=1 until diagnosed (docs/conformance.md)")

# (name, client, server, skip reason). client/server None: upstream has no such side.
CASES = [
    ("SOCK_STREAM connection reset", connection_reset_client, None, None),
    ("SOCK_STREAM bind only", bind_only_client, bind_only_server, None),
    ("SOCK_STREAM client close", client_close_client, client_close_server, None),
    ("SOCK_STREAM server close", server_close_client, server_close_server, None),
    ("SOCK_STREAM multiple connections", multiconn_client, multiconn_server, None),
    ("SOCK_STREAM MSG_PEEK", msg_peek_client, msg_peek_server, None),
    ("SOCK_SEQPACKET msg bounds", seqpacket_msg_bounds_client, seqpacket_msg_bounds_server, None),
    ("SOCK_SEQPACKET MSG_TRUNC flag", seqpacket_msg_trunc_client, seqpacket_msg_trunc_server, None),
    ("SOCK_SEQPACKET timeout", seqpacket_timeout_client, seqpacket_timeout_server, None),
    ("SOCK_SEQPACKET invalid receive buffer", seqpacket_invalid_rec_buffer_client, seqpacket_invalid_rec_buffer_server, None),
    ("SOCK_STREAM poll() + SO_RCVLOWAT", poll_rcvlowat_client, poll_rcvlowat_server, None),
    ("SOCK_SEQPACKET big message", seqpacket_bigmsg_client, seqpacket_bigmsg_server, None),
    ("SOCK_STREAM test invalid buffer", inv_buf_client, inv_buf_server, None),
    ("SOCK_SEQPACKET test invalid buffer", seqpacket_inv_buf_client, seqpacket_inv_buf_server, None),
    ("SOCK_STREAM virtio skb merge", skb_merge_client, skb_merge_server, None),
    ("SOCK_SEQPACKET MSG_PEEK", as_seqpacket(msg_peek_client), seqpacket_msg_peek_server, None),
    ("SOCK_STREAM SHUT_WR", shutwr_client, shutwr_server, None),
    ("SOCK_STREAM SHUT_RD", shutrd_client, shutrd_server, None),
    ("SOCK_STREAM MSG_ZEROCOPY", None, None, ZEROCOPY),
    ("SOCK_SEQPACKET MSG_ZEROCOPY", None, None, ZEROCOPY),
    ("SOCK_STREAM MSG_ZEROCOPY empty MSG_ERRQUEUE", None, None, ZEROCOPY),
    ("SOCK_STREAM double bind connect", double_bind_connect_client, double_bind_connect_server, None),
    ("SOCK_STREAM virtio credit update + SO_RCVLOWAT", credit_client, lambda s: credit_server(s, False), None),
    ("SOCK_STREAM virtio credit update + low rx_bytes", credit_client, lambda s: credit_server(s, True), None),
    ("SOCK_STREAM ioctl(SIOCOUTQ) 0 unsent bytes", unsent_bytes_client, unsent_bytes_server, None),
    ("SOCK_SEQPACKET ioctl(SIOCOUTQ) 0 unsent bytes", as_seqpacket(unsent_bytes_client), as_seqpacket(unsent_bytes_server), None),
    ("SOCK_STREAM leak accept queue", leak_acceptq_client, leak_acceptq_server, UNSTABLE_HOST),
    ("SOCK_STREAM MSG_ZEROCOPY leak MSG_ERRQUEUE", None, None, KMEMLEAK),
    ("SOCK_STREAM MSG_ZEROCOPY leak completion skb", None, None, KMEMLEAK),
    ("SOCK_STREAM transport release use-after-free", None, None, TRANSPORTS),
    ("SOCK_STREAM retry failed connect()", connect_retry_client, connect_retry_server, None),
    ("SOCK_STREAM SO_LINGER null-ptr-deref", linger_client, linger_server, None),
    ("SOCK_STREAM SO_LINGER close() on unread", nolinger_client, nolinger_server, None),
    ("SOCK_STREAM transport change null-ptr-deref, lockdep warn", None, None, TRANSPORTS + ", and signals interrupting connect()"),
    ("SOCK_STREAM ioctl(SIOCINQ) functionality", unread_bytes_client, unread_bytes_server, None),
    ("SOCK_SEQPACKET ioctl(SIOCINQ) functionality", as_seqpacket(unread_bytes_client), as_seqpacket(unread_bytes_server), None),
    ("SOCK_STREAM accept()ed socket custom setsockopt()", None, None, "a Linux setsockopt(SO_ZEROCOPY) regression on accept()ed sockets; the firmware has no SO_ZEROCOPY"),
    ("SOCK_STREAM virtio MSG_ZEROCOPY coalescence corruption", None, None, ZEROCOPY),
    ("SOCK_STREAM TX credit bounds", tx_credit_bounds_client, tx_credit_bounds_server, None),
]


# Failures of the firmware the list found and that are not fixed yet: still printed as fail, with
# this reason; they do not fail the run unless --strict (docs/conformance.md, "What the list found").
KNOWN_FIRMWARE_FAILURES = {
}
