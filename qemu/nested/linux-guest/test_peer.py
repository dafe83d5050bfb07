"""The test-peer grammar (README.md, "Test-peer") executed on Linux's own AF_VSOCK sockets.

Two uses: the Linux stand-in guest serves it on port 1239 beside its other services (as the
firmware does, assembly/apps/test-peer/), and the conformance driver (tests/e2e/conformance.py)
runs the host's side of every case through the same grammar, in-process (Executor.execute).
Answers: "<ret> <errno name|OK> <bytes> <crc32>[ key=value ...]"; malformed lines get
"-22 EINVAL 0 00000000 parse=<reason>". Limits as in the firmware: lines of 256 bytes, 8 words,
timeouts 0..60000 ms, 10 s default receive/send timeouts on every socket it opens.
"""
import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
import zlib

PORT = 1239
LINE_CAPACITY = 256
MAX_WORDS = 8
SCRATCH = 266240  # 4 KiB over 256 KiB: one send can offer a SEQPACKET message just over the limit
MAX_TRANSFER = 64 << 20
MAX_TIMEOUT_MS = 60000
DEFAULT_TIMEOUT_S = 10
AF_VSOCK_LEVEL = 40  # SOL_VSOCK: the AF_VSOCK options' level
SO_VM_SOCKETS_BUFFER_SIZE, SO_VM_SOCKETS_BUFFER_MIN_SIZE, SO_VM_SOCKETS_BUFFER_MAX_SIZE = 0, 1, 2
SO_VM_SOCKETS_CONNECT_TIMEOUT = 6  # struct timeval (the _OLD name; 64-bit timeval on x86-64)
SIOCINQ, SIOCOUTQ = 0x541B, 0x5411
POLLRDHUP = 0x2000
EVENT_NAMES = [(select.POLLIN, "in"), (select.POLLOUT, "out"), (select.POLLERR, "err"), (select.POLLHUP, "hup"),
               (select.POLLNVAL, "nval"), (POLLRDHUP, "rdhup")]
EVENT_WORDS = {"in": select.POLLIN, "out": select.POLLOUT, "rdhup": POLLRDHUP}
_libc = ctypes.CDLL(None, use_errno=True)


class Malformed(Exception):
    pass


def errno_name(code):
    if code == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"  # Python's table calls it ENOTSUP (the same number on Linux)
    return "OK" if code == 0 else errno.errorcode.get(code, "E%d" % code)


def send_pattern(offset, length, seed):
    """'A' bytes without a seed; byte[i] = (i * 7 + (i >> 8) + seed) & 0xff with one."""
    if seed is None:
        return b"A" * length
    return bytes(((i * 7 + (i >> 8) + seed) & 0xFF) for i in range(offset, offset + length))


def number(word):
    body = word[1:] if word.startswith("-") else word
    if not body.isdigit() or not body.isascii() or len(body) > 18:
        raise Malformed("bad-number")
    return int(word)


def timeval(ms):
    return struct.pack("qq", ms // 1000, (ms % 1000) * 1000)


# Through libc: Python's setsockopt/getsockopt on an AF_VSOCK socket take and give only a u64,
# and SO_RCVTIMEO, SO_LINGER or SO_VM_SOCKETS_CONNECT_TIMEOUT need their own structs.
def raw_setsockopt(s, level, name, raw):
    buf = ctypes.create_string_buffer(raw, len(raw))
    if _libc.setsockopt(s.fileno(), level, name, buf, ctypes.c_uint32(len(raw))) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def raw_getsockopt(s, level, name, size):
    buf = ctypes.create_string_buffer(size)
    length = ctypes.c_uint32(size)
    if _libc.getsockopt(s.fileno(), level, name, buf, ctypes.byref(length)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return buf.raw[:length.value]


class Executor:
    """Runs test-peer commands on sockets it opened (socket, accept)."""

    def __init__(self):
        self.sockets = {}

    def close_all(self):
        for s in self.sockets.values():
            s.close()
        self.sockets.clear()

    def execute(self, line):
        """One command line (str, no newline) -> one answer line (str, no newline)."""
        words = line.split()
        try:
            if len(line.encode("utf-8", "surrogateescape")) > LINE_CAPACITY:
                raise Malformed("line-too-long")
            if not words:
                raise Malformed("empty")
            if len(words) > MAX_WORDS:
                raise Malformed("extra-argument")
            handler = getattr(self, "cmd_" + words[0], None) if words[0].isascii() and words[0].isalpha() else None
            if handler is None:
                raise Malformed("unknown-command")
            return handler(words[1:])
        except Malformed as e:
            return "-22 EINVAL 0 00000000 parse=%s" % e

    # ---- helpers ----
    @staticmethod
    def arity(args, least, most):
        if len(args) < least:
            raise Malformed("missing-argument")
        if len(args) > most:
            raise Malformed("extra-argument")

    def sock(self, word):
        fd = number(word)
        if fd < 0:
            raise Malformed("bad-number")
        return self.sockets.get(fd)

    @staticmethod
    def answer(ret, err=0, count=0, crc=0, **keys):
        text = "%d %s %d %08x" % (ret, errno_name(err), count, crc)
        return text + "".join(" %s=%s" % (k, v) for k, v in keys.items())

    @staticmethod
    def failed(e):
        code = e.errno if isinstance(e, OSError) and e.errno else errno.EIO
        return Executor.answer(-code, code)

    def adopt(self, s):
        raw_setsockopt(s, socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(DEFAULT_TIMEOUT_S * 1000))
        raw_setsockopt(s, socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(DEFAULT_TIMEOUT_S * 1000))
        self.sockets[s.fileno()] = s
        return s.fileno()

    @staticmethod
    def address(word):
        if word == "any":
            return 0xFFFFFFFF
        v = number(word)
        if v < 0 or v > 0xFFFFFFFF:
            raise Malformed("bad-number")
        return v

    @staticmethod
    def timeout_ms(word):
        ms = number(word)
        if ms < 0 or ms > MAX_TIMEOUT_MS:
            raise Malformed("timeout-range")
        return ms

    # ---- commands ----
    def cmd_socket(self, args):
        self.arity(args, 1, 1)
        kinds = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET}
        if args[0] not in kinds:
            raise Malformed("bad-word")
        try:
            return self.answer(self.adopt(socket.socket(socket.AF_VSOCK, kinds[args[0]])))
        except OSError as e:
            return self.failed(e)

    def cmd_bind(self, args):
        self.arity(args, 2, 3)
        s = self.sock(args[0])
        port, cid = self.address(args[1]), self.address(args[2]) if len(args) > 2 else 0xFFFFFFFF
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            s.bind((cid, port))
            return self.answer(0)
        except OSError as e:
            return self.failed(e)

    def cmd_listen(self, args):
        self.arity(args, 1, 2)
        s = self.sock(args[0])
        backlog = number(args[1]) if len(args) > 1 else 1
        if backlog < 0 or backlog > 1024:
            raise Malformed("bad-number")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            s.listen(backlog)
            return self.answer(0)
        except OSError as e:
            return self.failed(e)

    def cmd_accept(self, args):
        self.arity(args, 1, 1)
        s = self.sock(args[0])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            child, (cid, port) = s.accept()
        except OSError as e:
            return self.failed(e)
        return self.answer(self.adopt(child), peer="%d:%d" % (cid, port))

    def cmd_connect(self, args):
        self.arity(args, 3, 3)
        s = self.sock(args[0])
        cid, port = number(args[1]), number(args[2])
        if not (0 <= cid <= 0xFFFFFFFF and 0 <= port <= 0xFFFFFFFF):
            raise Malformed("bad-number")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        code = s.connect_ex((cid, port))
        return self.answer(-code if code else 0, code)

    def cmd_send(self, args):
        self.arity(args, 2, 5)
        s = self.sock(args[0])
        length = number(args[1])
        if length < 0 or length > MAX_TRANSFER:
            raise Malformed("length-range")
        flags, seed = 0, None
        for w in args[2:]:
            if w == "dontwait":
                flags |= socket.MSG_DONTWAIT
            elif w == "eor":
                flags |= socket.MSG_EOR
            else:
                try:
                    seed = number(w)
                except Malformed:
                    raise Malformed("bad-word")
                if not 0 <= seed <= 255:
                    raise Malformed("bad-word")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        total, crc, err = 0, 0, 0
        while True:
            chunk = send_pattern(total, min(length - total, SCRATCH), seed)
            try:
                n = s.send(chunk, flags)
            except OSError as e:
                err = e.errno
                break
            crc = zlib.crc32(chunk[:n], crc)
            total += n
            if n < len(chunk) or total >= length:
                break
        return self.answer(total if total or not err else -err, err, total, crc)

    def cmd_recv(self, args):
        self.arity(args, 2, 7)
        s = self.sock(args[0])
        length = number(args[1])
        flags, everything, null = 0, False, False
        for w in args[2:]:
            if w == "peek":
                flags |= socket.MSG_PEEK
            elif w == "dontwait":
                flags |= socket.MSG_DONTWAIT
            elif w == "all":
                everything = True
            elif w == "nullbuf":
                null = True
            elif w == "trunc":
                flags |= socket.MSG_TRUNC
            else:
                raise Malformed("bad-word")
        limit = MAX_TRANSFER if everything and not flags & socket.MSG_PEEK else SCRATCH
        if length < 0 or length > limit:
            raise Malformed("length-range")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        total, reported, crc, err, eof, seen = 0, 0, 0, 0, False, 0
        while True:
            want = min(length - total, SCRATCH)
            if null:  # address 0: vsock_test's invalid buffer (Python's recv cannot pass one)
                r = _libc.recv(s.fileno(), None, ctypes.c_size_t(want), flags)
                if r < 0:
                    err = ctypes.get_errno()
                    break
                data = b""
            else:
                buf = bytearray(want)
                try:  # recvmsg_into: with MSG_TRUNC, r is the message's real length, beyond the buffer
                    r, _, msg_flags, _ = s.recvmsg_into([buf], 0, flags)
                except OSError as e:
                    err = e.errno
                    break
                seen |= msg_flags
                data = bytes(buf[:min(r, want)])
            if r == 0 and want > 0:
                eof = True
            crc = zlib.crc32(data, crc)
            total += len(data)
            reported += r
            if r == 0 or not everything or total >= length:
                break
        keys = {"eof": 1} if eof else {}
        names = [n for bit, n in ((socket.MSG_TRUNC, "trunc"), (socket.MSG_EOR, "eor")) if seen & bit]
        if names:
            keys["flags"] = ",".join(names)
        return self.answer(reported if reported or not err else -err, err, total, crc, **keys)

    def cmd_shutdown(self, args):
        self.arity(args, 2, 2)
        s = self.sock(args[0])
        how = {"rd": socket.SHUT_RD, "wr": socket.SHUT_WR, "rdwr": socket.SHUT_RDWR}.get(args[1])
        if how is None:
            raise Malformed("bad-word")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            s.shutdown(how)
            return self.answer(0)
        except OSError as e:
            return self.failed(e)

    def cmd_close(self, args):
        self.arity(args, 1, 1)
        s = self.sock(args[0])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        del self.sockets[s.fileno()]
        s.close()
        return self.answer(0)

    OPTIONS = {"buffer_size": (AF_VSOCK_LEVEL, SO_VM_SOCKETS_BUFFER_SIZE, "u64"),
               "buffer_min_size": (AF_VSOCK_LEVEL, SO_VM_SOCKETS_BUFFER_MIN_SIZE, "u64"),
               "buffer_max_size": (AF_VSOCK_LEVEL, SO_VM_SOCKETS_BUFFER_MAX_SIZE, "u64"),
               "connect_timeout": (AF_VSOCK_LEVEL, SO_VM_SOCKETS_CONNECT_TIMEOUT, "ms"),
               "rcvtimeo": (socket.SOL_SOCKET, socket.SO_RCVTIMEO, "ms"),
               "sndtimeo": (socket.SOL_SOCKET, socket.SO_SNDTIMEO, "ms"),
               "rcvlowat": (socket.SOL_SOCKET, socket.SO_RCVLOWAT, "int"),
               "linger": (socket.SOL_SOCKET, socket.SO_LINGER, "linger"),
               "error": (socket.SOL_SOCKET, socket.SO_ERROR, "int")}

    def cmd_setsockopt(self, args):
        self.arity(args, 3, 3)
        s = self.sock(args[0])
        option = self.OPTIONS.get(args[1])
        if option is None or args[1] == "error":
            raise Malformed("bad-word")
        level, name, kind = option
        value = self.timeout_ms(args[2]) if kind == "ms" else number(args[2])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        raw = {"u64": lambda v: struct.pack("Q", v & (2**64 - 1)), "ms": timeval, "int": lambda v: struct.pack("i", v),
               "linger": lambda v: struct.pack("ii", 1, v)}[kind](value)
        try:
            raw_setsockopt(s, level, name, raw)
            return self.answer(0)
        except OSError as e:
            return self.failed(e)

    def cmd_getsockopt(self, args):
        self.arity(args, 2, 2)
        s = self.sock(args[0])
        option = self.OPTIONS.get(args[1])
        if option is None:
            raise Malformed("bad-word")
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        level, name, kind = option
        size = {"u64": 8, "ms": 16, "int": 4, "linger": 8}[kind]
        try:
            raw = raw_getsockopt(s, level, name, size)
        except OSError as e:
            return self.failed(e)
        if kind == "u64":
            value = struct.unpack("Q", raw)[0]
        elif kind == "ms":
            sec, usec = struct.unpack("qq", raw)
            value = sec * 1000 + usec // 1000
        elif kind == "linger":
            value = struct.unpack("ii", raw)[1]
        else:
            value = struct.unpack("i", raw)[0]
        return self.answer(0, value=errno_name(value) if args[1] == "error" else value)

    @staticmethod
    def events(word):
        bits = 0
        for part in word.split(","):
            if part == "none":
                continue
            if part not in EVENT_WORDS:
                raise Malformed("bad-word")
            bits |= EVENT_WORDS[part]
        return bits

    @staticmethod
    def event_names(bits):
        names = [n for b, n in EVENT_NAMES if bits & b]
        return ",".join(names) if names else "none"

    def cmd_poll(self, args):
        self.arity(args, 3, 3)
        s = self.sock(args[0])
        bits = self.events(args[1])
        ms = self.timeout_ms(args[2])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        p = select.poll()
        p.register(s.fileno(), bits)
        ready = p.poll(ms)
        revents = ready[0][1] if ready else 0
        return self.answer(len(ready), revents=self.event_names(revents))

    def cmd_wait(self, args):
        """Until `bytes` are ready to read (peeked), the read side ended, or the timeout."""
        self.arity(args, 3, 3)
        s = self.sock(args[0])
        want = number(args[1])
        if want < 0 or want > SCRATCH:
            raise Malformed("bad-number")
        ms = self.timeout_ms(args[2])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        deadline = time.monotonic() + ms / 1000
        while True:
            try:
                ready = len(s.recv(max(want, 1), socket.MSG_PEEK | socket.MSG_DONTWAIT)) if want else 0
                if ready == 0 and want:
                    return self.answer(0, revents="in")  # EOF
            except BlockingIOError:
                ready = 0
            except OSError as e:
                return self.failed(e)
            if ready >= want:
                return self.answer(ready)
            if time.monotonic() >= deadline:
                return self.answer(ready if ready else -errno.ETIMEDOUT, errno.ETIMEDOUT)
            time.sleep(0.001)

    def _name(self, args, peer):
        self.arity(args, 1, 1)
        s = self.sock(args[0])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            cid, port = s.getpeername() if peer else s.getsockname()
        except OSError as e:
            return self.failed(e)
        return self.answer(0, addr="%d:%d" % (cid, port))

    def cmd_sockname(self, args):
        return self._name(args, False)

    def cmd_peername(self, args):
        return self._name(args, True)

    def _ioctl(self, args, request):
        self.arity(args, 1, 1)
        s = self.sock(args[0])
        if s is None:
            return self.answer(-errno.EBADF, errno.EBADF)
        try:
            value = struct.unpack("i", fcntl.ioctl(s.fileno(), request, b"\0" * 4))[0]
        except OSError as e:
            return self.failed(e)
        return self.answer(value)

    def cmd_inq(self, args):
        """SIOCINQ: bytes ready to read."""
        return self._ioctl(args, SIOCINQ)

    def cmd_outq(self, args):
        """SIOCOUTQ: bytes sent by the application that the transport has not sent yet."""
        return self._ioctl(args, SIOCOUTQ)

    def cmd_info(self, args):
        self.arity(args, 0, 0)
        try:
            with open("/dev/vsock", "rb") as dev:
                cid = struct.unpack("I", fcntl.ioctl(dev, 0x7B9, b"\0" * 4))[0]
        except OSError:
            cid = 2
        return self.answer(0, cid=cid, max_connections=1024, sockets=len(self.sockets), scratch=SCRATCH)


def serve_control(conn):
    executor = Executor()
    pending = b""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            pending += data
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.replace(b"\r", b"").decode("utf-8", "surrogateescape")
                conn.sendall((executor.execute(line) + "\n").encode())
            if len(pending) > LINE_CAPACITY:  # a line too long: answered once its newline comes
                pending = pending[:LINE_CAPACITY + 1]
    except OSError:
        pass
    finally:
        executor.close_all()
        conn.close()


def serve_forever(port=PORT):
    """One control connection at a time; a second one is answered EBUSY and closed."""
    server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    server.bind((socket.VMADDR_CID_ANY, port))
    server.listen(4)
    busy = threading.Lock()

    def run(conn):
        try:
            serve_control(conn)
        finally:
            busy.release()

    while True:
        conn, _ = server.accept()
        if not busy.acquire(blocking=False):
            conn.sendall(b"-16 EBUSY 0 00000000 reason=another-control-connection\n")
            conn.close()
            continue
        threading.Thread(target=run, args=(conn,), daemon=True).start()
