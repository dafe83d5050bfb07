"""How the e2e suite reaches the guest: AF_VSOCK (the kernel's vhost-vsock, inside the outer VM)
or Unix sockets of the vhost-user backend (tools/vhost-user-vsock), chosen by VSOCK_TRANSPORT:

  vsock (default)   AF_VSOCK to VSOCK_CID
  uds:<path>        vhost-device-vsock's hybrid protocol: connect to <path>, "CONNECT <port>\\n",
                    then "OK <hostport>\\n" (the socket just closes when the guest refuses);
                    the guest's connects to host port P arrive on <path>_<P>.
                    SEQPACKET: an AF_UNIX SOCK_SEQPACKET socket to <path>.seqpacket, the message
                    "CONNECT <port>\n", the message "OK <hostport>\n", then one Unix message per
                    vsock message (docs/seqpacket.md).
"""
import ctypes
import errno
import os
import socket
import struct

TRANSPORT = os.environ.get("VSOCK_TRANSPORT", "vsock")
UDS_PATH = TRANSPORT[4:] if TRANSPORT.startswith("uds:") else None


def _uds_connect(cid, port, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(UDS_PATH)
        s.sendall(b"CONNECT %d\n" % port)
        line = b""
        while not line.endswith(b"\n"):
            data = s.recv(1)
            if not data:
                # The backend closes the socket when the guest answered RST (or the connect timed out).
                raise ConnectionResetError(errno.ECONNRESET, "guest refused port %d (socket closed before OK)" % port)
            line += data
            if len(line) > 64:
                raise OSError(errno.EPROTO, "no OK line from the backend: %r" % line)
        if not line.startswith(b"OK "):
            raise OSError(errno.EPROTO, "backend answered %r" % line)
        return s
    except BaseException:
        s.close()
        raise


SO_VM_SOCKETS_CONNECT_TIMEOUT = 6  # linux/vm_sockets.h: a struct timeval (two longs on x86-64)


def set_vsock_connect_timeout(s, seconds):
    """setsockopt(2) through libc: Python's socket.setsockopt passes AF_VSOCK options as a u64,
    and this one takes a 16-byte struct timeval (the kernel refuses anything shorter)."""
    whole = int(seconds)
    value = struct.pack("qq", whole, int((seconds - whole) * 1e6))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setsockopt(s.fileno(), socket.AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, value, len(value)) != 0:
        raise OSError(ctypes.get_errno(), "setsockopt(SO_VM_SOCKETS_CONNECT_TIMEOUT)")


def connect_stream(cid, port, timeout, vsock_connect_timeout=None):
    """A connected stream socket to the guest's port (raises OSError like AF_VSOCK's connect).
    vsock_connect_timeout (seconds) replaces the kernel's own 2 s connect timeout, after which
    AF_VSOCK's connect fails with ETIMEDOUT whatever the socket's timeout says."""
    if UDS_PATH:
        return _uds_connect(cid, port, timeout)
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if vsock_connect_timeout is not None:
        set_vsock_connect_timeout(s, vsock_connect_timeout)
    try:
        s.connect((cid, port))
    except BaseException:
        s.close()
        raise
    return s


def connect_seqpacket(cid, port, timeout):
    """A connected SOCK_SEQPACKET socket to the guest's port (raises OSError like AF_VSOCK's connect)."""
    if UDS_PATH:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # A Unix message must fit the sender's buffer whole (default ~208 KiB): room for 256 KiB.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(timeout)
        try:
            s.connect(UDS_PATH + ".seqpacket")
            s.send(b"CONNECT %d\n" % port)
            line = s.recv(64)
            if not line:
                raise ConnectionResetError(errno.ECONNRESET, "guest refused seqpacket port %d (socket closed before OK)" % port)
            if not line.startswith(b"OK ") or not line.endswith(b"\n"):
                raise OSError(errno.EPROTO, "backend answered %r" % line)
            return s
        except BaseException:
            s.close()
            raise
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect((cid, port))
        blocking_with_kernel_timeouts(s, timeout)
    except BaseException:
        s.close()
        raise
    return s


def blocking_with_kernel_timeouts(s, seconds):
    """A SEQPACKET socket for whole messages: blocking, with SO_SNDTIMEO/SO_RCVTIMEO as the bound.
    Python's settimeout() makes the fd non-blocking, and Linux's non-blocking send of a message
    larger than the peer's free credit sends part of it and returns EAGAIN (af_vsock.c); Python then
    retries the whole message, so the peer sees its first part twice and no boundary where it was."""
    s.settimeout(None)
    timeval = struct.pack("qq", int(seconds), int((seconds - int(seconds)) * 1e6))
    libc = ctypes.CDLL(None, use_errno=True)
    for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
        # Through libc: Python's setsockopt on an AF_VSOCK socket takes only integers.
        if libc.setsockopt(s.fileno(), socket.SOL_SOCKET, option, timeval, len(timeval)) != 0:
            raise OSError(ctypes.get_errno(), "setsockopt(SO_SNDTIMEO/SO_RCVTIMEO)")


def listen_host_port(port, backlog=4):
    """A listening socket for the guest's connects to CID 2 port `port`."""
    if UDS_PATH:
        path = "%s_%d" % (UDS_PATH, port)
        if os.path.exists(path):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
    else:
        server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        server.bind((socket.VMADDR_CID_ANY, port))
    server.listen(backlog)
    return server


def tool_command(tool, cid, port):
    """(argv, input prefix, output prefix length) for ncat/socat talking to the guest's port."""
    if UDS_PATH:
        argv = ["ncat", "-U", UDS_PATH] if tool == "ncat" else ["socat", "-t", "20", "-", "UNIX-CONNECT:%s" % UDS_PATH]
        return argv, b"CONNECT %d\n" % port, True
    argv = ["ncat", "--vsock", str(cid), str(port)] if tool == "ncat" else ["socat", "-t", "20", "-", "VSOCK-CONNECT:%d:%d" % (cid, port)]
    return argv, b"", False


def strip_ok_line(output):
    """Tool output without the hybrid protocol's "OK <port>\\n" line."""
    if output.startswith(b"OK "):
        end = output.find(b"\n")
        if end >= 0:
            return output[end + 1:]
    return output
