"""Host-side measurements over the vhost-user backend's Unix sockets (run by tests/vhost-user/measure.ts).

Prints "phase <name> begin|end" around each timed phase (the backend's CPU is read there) and one
JSON line of results at the end. Uses the e2e suite's transport (VSOCK_TRANSPORT=uds:<path>).
"""
import json
import os
import socket
import statistics
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import transport  # noqa: E402
from vsockclient import connect, crc_to_eof, pattern_bytes, recv_exact, recv_to_eof, send_all  # noqa: E402

ECHO, SINK, SOURCE = 1234, 1235, 1236
MIB = 1 << 20


def phase(name, edge):
    print("phase %s %s" % (name, edge), flush=True)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    size = int(os.environ.get("MEASURE_MIB", "64")) * MIB
    cid = int(os.environ.get("VSOCK_CID", "33"))
    results = {}
    # CONNECT -> OK (a whole connection set-up through the guest), then close.
    connects = []
    for _ in range(50):
        start = time.perf_counter()
        s = transport.connect_stream(cid, ECHO, 10)
        connects.append((time.perf_counter() - start) * 1000)
        s.close()
    results["connect_ms_p50"] = round(statistics.median(connects), 2)
    # 64-byte echo round trips on one connection.
    with connect(ECHO) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        message = b"x" * 64
        rtts = []
        for _ in range(300):
            start = time.perf_counter()
            s.sendall(message)
            recv_exact(s, 64)
            rtts.append((time.perf_counter() - start) * 1000)
    results["echo64_ms_p50"] = round(statistics.median(rtts), 3)
    results["echo64_ms_p99"] = round(percentile(rtts, 0.99), 3)
    # host -> guest: the sink reads `size` bytes and answers with their CRC.
    data = bytes(range(256)) * (size // 256)
    phase("host-to-guest", "begin")
    start = time.perf_counter()
    with connect(SINK) as s:
        send_all(s, data)
        s.shutdown(socket.SHUT_WR)
        answer = recv_to_eof(s, 64)
    took = time.perf_counter() - start
    phase("host-to-guest", "end")
    if answer.strip().lower() != b"%d %08x" % (size, zlib.crc32(data)):
        raise SystemExit("sink answered %r" % answer)
    results["host_to_guest_mib_s"] = round(size / MIB / took, 1)
    # guest -> host: the source sends `size` pattern bytes.
    phase("guest-to-host", "begin")
    start = time.perf_counter()
    with connect(SOURCE) as s:
        s.sendall(b"%d\n" % size)
        got, crc = crc_to_eof(s)
    took = time.perf_counter() - start
    phase("guest-to-host", "end")
    if got != size or crc != zlib.crc32(pattern_bytes(size)):
        raise SystemExit("source: %d bytes, crc %08x" % (got, crc))
    results["guest_to_host_mib_s"] = round(size / MIB / took, 1)
    results["mib"] = size // MIB
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
