"""The Linux stand-in's services: the same ports and behaviour as the firmware's apps.

echo 1234 (echo until EOF, then close), sink 1235 (read to EOF, answer "<bytes> <crc32-hex>\\n"),
source 1236 (read a decimal count and a newline, send that many bytes of
byte[i] = (i * 7 + (i >> 8)) & 0xff, close), SEQPACKET echo 1238 (each message back as one
message, until EOF; only when the device negotiated SEQPACKET), test-peer 1239 (test_peer.py),
greeting to CID 2 port 4050 at boot (retried), and iperf3 5201: Debian's `iperf3 -s` on the guest's
loopback behind a vsock-to-TCP relay (Debian's iperf3 has no vsock), when iperf3 is installed; the
bench compares it with the firmware's server.
Log lines go to the debugcon port 0x402 in the firmware's format, including `vsock: conns=<n>`.
Runs only inside the stand-in guest (started by its /init-l2).
"""
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import test_peer  # the test-peer grammar on port 1239 (same directory)

DEBUGCON_PORT = 0x402
GREETING = b"Hello, Host! This is a message from the VM.\n"
IOCTL_VM_SOCKETS_GET_LOCAL_CID = 0x7B9
HOST_CID = 2
PATTERN_PERIOD = 65536  # (i >> 8) & 0xff repeats every 65536 bytes, (i * 7) & 0xff every 256
PATTERN = bytes(((i * 7 + (i >> 8)) & 0xFF) for i in range(2 * PATTERN_PERIOD))

started = time.monotonic()
log_lock = threading.Lock()
port_fd = os.open("/dev/port", os.O_WRONLY)
conns = 0


def log(subsystem, message):
    elapsed = time.monotonic() - started
    line = "[%d.%06d] info %s: %s\n" % (int(elapsed), int(elapsed * 1e6) % 1000000, subsystem, message)
    with log_lock:
        for byte in line.encode():  # /dev/port advances the port per byte: one byte per write
            os.pwrite(port_fd, bytes([byte]), DEBUGCON_PORT)


def count_connection(delta):
    global conns
    with log_lock:
        conns += delta
        now = conns
    if delta < 0 and (now == 0 or now % 16 == 0):
        log("vsock", "conns=%d" % now)


def echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)


SEQPACKET_MAX_MESSAGE = 262144  # the firmware's largest message (and Linux's default buffer)


def seqpacket_echo(conn):
    while True:
        data, _, flags, _ = conn.recvmsg(SEQPACKET_MAX_MESSAGE)
        if not data:
            break  # EOF (an empty message cannot be echoed: a send of 0 bytes sends nothing)
        conn.send(data, flags & socket.MSG_EOR)


def sink(conn):
    total, crc = 0, 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        total += len(data)
        crc = zlib.crc32(data, crc)
    conn.sendall(b"%d %08x\n" % (total, crc))


def source(conn):
    line = b""
    while not line.endswith(b"\n") and len(line) < 32:
        data = conn.recv(1)
        if not data:
            return
        line += data
    count = int(line.strip() or b"0")
    sent = 0
    while sent < count:
        offset = sent % PATTERN_PERIOD
        chunk = min(count - sent, PATTERN_PERIOD)
        conn.sendall(PATTERN[offset:offset + chunk])
        sent += chunk


def pump(src, dst):
    """Copies until EOF, then half-closes the other side (so iperf3's ends pass through)."""
    try:
        while True:
            data = src.recv(262144)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def connect_iperf3():
    # iperf3 -s closes and reopens its listener between tests: a client right behind the last
    # one may find it closed for a moment.
    for _ in range(50):
        try:
            return socket.create_connection(("127.0.0.1", 5201))
        except ConnectionRefusedError:
            time.sleep(0.1)
    return socket.create_connection(("127.0.0.1", 5201))


def iperf3_relay(conn):
    with connect_iperf3() as tcp:
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=pump, args=(tcp, conn), daemon=True)
        back.start()
        pump(conn, tcp)
        back.join()


def start_iperf3():
    """iperf3 -s on 127.0.0.1:5201 (the loopback brought up first); False when there is none."""
    if not shutil.which("iperf3"):
        return False
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", "5201"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", 5201), timeout=1).close()  # iperf3 -s takes it as a client that left
            return True
        except OSError:
            time.sleep(0.1)
    return False


def serve_one(handler, conn):
    try:
        handler(conn)
    except OSError:
        pass
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()
        count_connection(-1)


def listen(port, handler, kind=socket.SOCK_STREAM):
    server = socket.socket(socket.AF_VSOCK, kind)
    server.bind((socket.VMADDR_CID_ANY, port))
    server.listen(128)

    def loop():
        while True:
            conn, _ = server.accept()
            count_connection(+1)
            threading.Thread(target=serve_one, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def greet():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect((HOST_CID, 4050))
                s.sendall(GREETING)
                log("apps", "greeting sent")
                return
        except OSError:
            time.sleep(0.5)
    log("apps", "greeting: host did not listen")


def local_cid():
    with open("/dev/vsock", "rb") as dev:
        raw = fcntl.ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\0" * 4)
    return struct.unpack("I", raw)[0]


def main():
    listen(1234, echo)
    listen(1235, sink)
    listen(1236, source)
    threading.Thread(target=test_peer.serve_forever, daemon=True).start()
    if start_iperf3():
        listen(5201, iperf3_relay)
    seqpacket = ""
    try:
        listen(1238, seqpacket_echo, socket.SOCK_SEQPACKET)
        seqpacket = " seqpacket_echo=1238"
    except OSError as e:  # a transport without SEQPACKET (ESOCKTNOSUPPORT, ...)
        log("apps", "no seqpacket echo: %s" % e)
    log("apps", "ready: cid=%d echo=1234 sink=1235 source=1236%s (linux stand-in)" % (local_cid(), seqpacket))
    greet()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
