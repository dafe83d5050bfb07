"""The firmware's packet trace against the kernel's own capture (run inside the vhost-vsock host).

qemu/vsock-host.sh --fw-option trace=64 -- python3 tests/e2e/vsockmon.py

vsockmon (`ip link add type vsockmon`) sees every packet vhost-vsock moves; tcpdump records it. A
known exchange runs both ways (a short echo, 600 KiB into the sink so the firmware sends credit
updates, 300 KB out of the source), then the firmware's trace lines for those connections and the
capture must agree packet for packet, in order, each direction: op, cids, ports, len, type, flags,
buf_alloc, fwd_cnt, and the payload bytes the trace shows. Also: the stats service (1237) answers
with the counters. Last line: "vsockmon: N passed, M failed".
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vsockclient import CaseFailure, ECHO_PORT, GUEST_CID, SINK_PORT, SOURCE_PORT, connect, recv_exact  # noqa: E402

STATS_PORT = 1237
RESULTS = os.environ.get("RESULTS", "build/e2e-vsockmon")
FW_LOG = os.environ.get("FW_LOG", "build/e2e-vsockmon/debug.log")
PCAP = os.path.join(RESULTS, "vsockmon.pcap")
LINKTYPE_VSOCK = 271
HOST_CID = 2
OPS = {"INVALID": 0, "REQUEST": 1, "RESPONSE": 2, "RST": 3, "SHUTDOWN": 4, "RW": 5, "CREDIT_UPDATE": 6, "CREDIT_REQUEST": 7}
FIELDS = ("op", "src_cid", "src_port", "dst_cid", "dst_port", "len", "type", "flags", "buf_alloc", "fwd_cnt")
TRACE = re.compile(
    r"^\.*\[\d+\.\d{6}\] debug trace: (rx|tx) (\w+) src=(\d+):(\d+) dst=(\d+):(\d+) len=(\d+) type=(\d+) "
    r"flags=(\d+) buf_alloc=(\d+) fwd_cnt=(\d+)(?: data=([0-9a-f]*))?$")


def sh(*argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
    if r.returncode != 0:
        raise CaseFailure("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stdout.strip()))


def start_capture():
    """vsockmon0 up and tcpdump writing PCAP; returns the tcpdump process once it listens."""
    if not os.path.isdir("/sys/module/vsockmon"):
        raise CaseFailure("the vsockmon module is not loaded in the host (qemu/nested/prepare.sh MODULES, init-l1.sh)")
    sh("ip", "link", "add", "name", "vsockmon0", "type", "vsockmon")
    sh("ip", "link", "set", "vsockmon0", "up")
    errors = open(os.path.join(RESULTS, "tcpdump.log"), "w")
    p = subprocess.Popen(["tcpdump", "-i", "vsockmon0", "-U", "-w", PCAP], stdout=errors, stderr=errors)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "listening on" in open(os.path.join(RESULTS, "tcpdump.log")).read():
            return p
        if p.poll() is not None:
            raise CaseFailure("tcpdump exited: %s" % open(os.path.join(RESULTS, "tcpdump.log")).read().strip())
        time.sleep(0.1)
    raise CaseFailure("tcpdump did not start listening in 20 s")


def stop_capture(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)  # our own child, by its PID: tcpdump flushes and exits
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def exchange():
    """The known exchange; returns the host-side ports of its connections."""
    ports = []
    s = connect(ECHO_PORT)
    ports.append(s.getsockname()[1])
    message = b"hello vsockmon\n"
    s.sendall(message)
    s.shutdown(socket.SHUT_WR)
    got = recv_exact(s, len(message) + 1)
    s.close()
    if got != message:
        raise CaseFailure("echo: expected %r, got %r" % (message, got))

    s = connect(SINK_PORT)
    ports.append(s.getsockname()[1])
    data = bytes((i * 13 + 5) & 0xFF for i in range(600 * 1024))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    answer = recv_exact(s, 64)
    s.close()
    if not answer.startswith(b"%d " % len(data)):
        raise CaseFailure("sink: expected '%d <crc>', got %r" % (len(data), answer))

    s = connect(SOURCE_PORT)
    ports.append(s.getsockname()[1])
    s.sendall(b"300000\n")
    got = recv_exact(s, 300001)
    s.close()
    if len(got) != 300000:
        raise CaseFailure("source: expected 300000 bytes, got %d" % len(got))
    return ports


def wait_closed(ports, deadline=20):
    """Until the firmware logged the close of every connection (the last packets are in)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        text = open(FW_LOG, errors="replace").read()
        if all(re.search(r"connection closed .*peer=2:%d " % p, text) for p in ports):
            time.sleep(0.5)  # the final RST may trail the log line by a poll round
            return
        time.sleep(0.2)
    raise CaseFailure("the firmware did not log the close of connections %s in %d s" % (ports, deadline))


def wait_written(ports, deadline=20):
    """tcpdump lags behind under the outer VM's TCG: wait until it wrote as many packets as the
    firmware traced (or stopped growing), before stopping it."""
    end = time.monotonic() + deadline
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < end:
        to_guest, to_host = read_capture(ports)
        rx, tx = read_trace(ports)
        have = len(to_guest) + len(to_host)
        if have >= len(rx) + len(tx):
            return
        if have != last:
            last, stable_since = have, time.monotonic()
        elif time.monotonic() - stable_since > 5:
            return  # not growing: compare what there is
        time.sleep(0.3)


def ours(packet, ports):
    """Whether a packet belongs to one of the exchange's connections."""
    if packet["src_cid"] == HOST_CID:
        return packet["src_port"] in ports
    return packet["dst_cid"] == HOST_CID and packet["dst_port"] in ports


def read_capture(ports):
    """Packets in the capture, split by direction: (host->guest, guest->host)."""
    blob = open(PCAP, "rb").read()
    if len(blob) < 24:
        raise CaseFailure("capture too short (%d bytes)" % len(blob))
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", blob, 0)
    if magic != 0xA1B2C3D4 or linktype != LINKTYPE_VSOCK:
        raise CaseFailure("capture: magic %#x linktype %d, expected 0xa1b2c3d4 and %d" % (magic, linktype, LINKTYPE_VSOCK))
    to_guest, to_host = [], []
    off = 24
    while off + 16 <= len(blob):
        _, _, caplen, _ = struct.unpack_from("<IIII", blob, off)
        rec = blob[off + 16: off + 16 + caplen]
        off += 16 + caplen
        if len(rec) < 32 + 44:
            continue
        transport, hdr_len = struct.unpack_from("<HH", rec, 26)
        if transport != 2 or hdr_len != 44:
            raise CaseFailure("capture: transport %d header length %d, expected virtio (2) and 44" % (transport, hdr_len))
        src_cid, dst_cid, src_port, dst_port, length, typ, op, flags, buf_alloc, fwd_cnt = struct.unpack_from("<QQIIIHHIII", rec, 32)
        p = dict(op=op, src_cid=src_cid, src_port=src_port, dst_cid=dst_cid, dst_port=dst_port, len=length, type=typ,
                 flags=flags, buf_alloc=buf_alloc, fwd_cnt=fwd_cnt, data=rec[32 + 44:])
        if ours(p, ports):
            (to_guest if src_cid == HOST_CID else to_host).append(p)
    return to_guest, to_host


def read_trace(ports):
    """The firmware's trace lines, split the same way: (rx, tx)."""
    rx, tx = [], []
    for line in open(FW_LOG, errors="replace"):
        m = TRACE.match(line.rstrip("\n"))
        if not m:
            continue
        g = m.groups()
        p = dict(op=OPS.get(g[1], -1) if not g[1].startswith("OP") else int(g[1][2:]),
                 src_cid=int(g[2]), src_port=int(g[3]), dst_cid=int(g[4]), dst_port=int(g[5]), len=int(g[6]),
                 type=int(g[7]), flags=int(g[8]), buf_alloc=int(g[9]), fwd_cnt=int(g[10]),
                 data=bytes.fromhex(g[11] or ""))
        if ours(p, ports):
            (rx if g[0] == "rx" else tx).append(p)
    return rx, tx


def describe(p):
    return " ".join("%s=%s" % (k, p[k]) for k in FIELDS)


def compare(name, trace, capture):
    """Packet for packet; the first difference fails with both sides shown."""
    with open(os.path.join(RESULTS, "vsockmon-%s.txt" % name), "w") as f:
        for i in range(max(len(trace), len(capture))):
            f.write("%4d trace   %s\n     capture %s\n" % (i, describe(trace[i]) if i < len(trace) else "-",
                                                         describe(capture[i]) if i < len(capture) else "-"))
    for i, (t, c) in enumerate(zip(trace, capture)):
        for k in FIELDS:
            if t[k] != c[k]:
                raise CaseFailure("%s packet %d: %s differs: trace %s, capture %s (all: vsockmon-%s.txt)" % (name, i, k, t[k], c[k], name))
        if c["data"][:len(t["data"])] != t["data"]:
            raise CaseFailure("%s packet %d: payload bytes differ: trace %s, capture %s" % (name, i, t["data"].hex(), c["data"][:len(t["data"])].hex()))
    if len(trace) != len(capture):
        raise CaseFailure("%s: %d packets traced, %d captured (all: vsockmon-%s.txt)" % (name, len(trace), len(capture), name))
    if not trace:
        raise CaseFailure("%s: no packets at all" % name)
    ops = sorted({p["op"] for p in trace})
    return "%d packets agree (ops %s)" % (len(trace), ",".join(k for k, v in OPS.items() if v in ops))


def stats():
    s = connect(STATS_PORT)
    text = recv_exact(s, 1 << 16).decode(errors="replace")
    s.close()
    m = re.search(r"info vsock: counters why=request (?:conns=\d+ )?rx_packets=(\d+) tx_packets=(\d+)", text)
    if not m or "packets dir=rx" not in text or "packets dir=tx" not in text:
        raise CaseFailure("stats service: no counters in %r" % text[:300])
    return "counters rx_packets=%s tx_packets=%s" % m.groups()


def main():
    rows = []

    def case(name, fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            rows.append((name, True, detail))
            print("ok   %-26s %s (%.1f s)" % (name, detail, time.monotonic() - t0), flush=True)
        except (CaseFailure, OSError, subprocess.SubprocessError) as e:
            rows.append((name, False, str(e)))
            print("FAIL %-26s %s" % (name, e), flush=True)

    state = {}

    def capture_and_exchange():
        state["tcpdump"] = start_capture()
        try:
            state["ports"] = exchange()
            wait_closed(state["ports"])
            wait_written(state["ports"])
        finally:
            stop_capture(state["tcpdump"])
        return "guest cid %d, host ports %s" % (GUEST_CID, state["ports"])

    case("exchange under capture", capture_and_exchange)
    if "ports" in state:
        to_guest, to_host = read_capture(state["ports"])
        rx, tx = read_trace(state["ports"])
        case("host->guest agree", lambda: compare("host-to-guest", rx, to_guest))
        case("guest->host agree", lambda: compare("guest-to-host", tx, to_host))
    case("stats service", stats)
    failures = sum(1 for _, ok, _ in rows if not ok)
    print("vsockmon: %d passed, %d failed" % (len(rows) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
