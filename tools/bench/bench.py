"""Benchmark client: the firmware and the Linux stand-in guest, side by side on one vhost-vsock host.

Runs ONLY on the vhost-vsock host (inside the outer VM started by qemu/vsock-host.sh --guest none,
see tools/bench/run.sh): it opens AF_VSOCK sockets. For each guest it boots the guest several times
with qemu/nested/inner-qemu.sh (same accelerator and memory for all) to time boot-to-ready,
keeps the last boot running and measures throughput, round-trip latency and the connection rate
against the guest's echo (1234), sink (1235) and source (1236) services, and messages/s and MiB/s
through the SEQPACKET echo (1238). Writes $RESULTS/raw.json;
tools/bench/report.py turns it into the table, results.json and the plots.

The guest "microvm" is the same firmware in its other shape (issue 18): the PVH ELF (--pvh-image)
on QEMU microvm with vhost-vsock-device on virtio-mmio; its reset-to-ready adds what ran before its
entry is reported beside it (before_entry_ms: the TSC at the PVH entry, which under KVM counts from
the vCPU's creation, so QEMU's own start-up after that and qboot; the q35 image's clock hides the
same span before its reset vector).

Env (from l1-job.sh): RESULTS, RUNDIR, REPO, IMAGE, KDIR, INNER_ACCELS, VSOCK_CID.
Usage: bench.py [--quick] [--guests firmware,microvm,linux] [--pvh-image build/firmware-pvh.elf]
                [--throughput-only] [--write-sizes 4,64,1024]
"""
import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

FIRST_CID = int(os.environ.get("VSOCK_CID", "33"))
# Each boot gets a CID of its own (FIRST_CID + boot count): the outer VM has hung when a guest was
# stopped and the next one started at once with the same CID (see README, Performance).
CID = FIRST_CID
boots_started = 0
RESULTS = os.environ.get("RESULTS", ".")
RUNDIR = os.environ.get("RUNDIR", "/tmp")
REPO = os.environ.get("REPO", os.getcwd())
ECHO, SINK, SOURCE = 1234, 1235, 1236
SEQPACKET_ECHO = 1238
# SEQPACKET echo figures: small messages for messages/s, 64 KiB ones for MiB/s.
SEQPACKET_SIZES = (64, 64 * 1024)
KIB, MIB = 1024, 1024 * 1024
WRITE_SIZES = (4 * KIB, 64 * KIB, MIB)
OP_TIMEOUT = 30.0
READY_LINE = re.compile(r"^\[(\d+)\.(\d+)\] info app: ready: cid=")
PVH_ENTRY_LINE = re.compile(r"info boot: pvh .* entry_after_us=(\d+)")
PVH_IMAGE = "build/firmware-pvh.elf"
FIRMWARE_KINDS = ("firmware", "microvm")


def progress(message):
    print("bench: " + message, flush=True)


def summary(samples):
    """Median and spread of repeated figures."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


# ---- guests ---------------------------------------------------------------------------------

class Guest:
    """One boot of a guest: `timeout qemu-system-x86_64 ...` started by inner-qemu.sh, stopped by its PID."""

    def __init__(self, kind, accel, tag, options=()):
        global CID, boots_started
        CID = FIRST_CID + boots_started
        boots_started += 1
        self.kind, self.accel, self.tag, self.cid = kind, accel, tag, CID
        self.debugcon = os.path.join(RUNDIR, "%s-%s.debugcon.log" % (kind, tag))
        self.pidfile = os.path.join(RUNDIR, "%s-%s.pid" % (kind, tag))
        self.qemu_log = os.path.join(RESULTS, "%s-qemu.log" % kind)
        for path in (self.debugcon, self.pidfile):
            if os.path.exists(path):
                os.remove(path)
        env = dict(os.environ, RESULTS=RESULTS)
        if kind == "microvm":  # the firmware in its PVH/virtio-mmio shape (qemu/machine.sh)
            env.update(MACHINE="microvm", IMAGE=PVH_IMAGE)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["bash", os.path.join(REPO, "qemu/nested/inner-qemu.sh"), accel,
             "firmware" if kind in FIRMWARE_KINDS else kind, str(CID), "600",
             self.debugcon, self.pidfile, self.qemu_log, *options], env=env, stdin=subprocess.DEVNULL)

    def alive(self):
        return self.process.poll() is None

    def qemu_pid(self):
        try:
            return int(open(self.pidfile).read().strip())
        except (OSError, ValueError):
            return None

    def memory_kib(self):
        """VmRSS and VmHWM of the guest's QEMU process: guest RAM it touched plus QEMU itself."""
        pid = self.qemu_pid()
        figures = {}
        try:
            for line in open("/proc/%d/status" % pid):
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    figures[key] = int(value.split()[0])
        except (OSError, TypeError, ValueError):
            pass
        return figures

    def stop(self):
        if self.alive():
            self.process.terminate()  # timeout(1) passes SIGTERM on to QEMU
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log_text(self):
        try:
            return open(self.debugcon, "rb").read().decode("ascii", "replace")
        except OSError:
            return ""

    def before_entry_ms(self):
        """The PVH shape: the TSC at its entry (the pvh line's entry_after_us), None otherwise."""
        m = PVH_ENTRY_LINE.search(self.log_text())
        return int(m.group(1)) / 1000.0 if m else None

    def reset_to_ready_ms(self, wait=3.0):
        """The firmware's own reset-to-ready: the timestamp of its ready line (its clock starts at
        its first instruction: the reset vector, or the PVH entry)."""
        end = time.monotonic() + wait
        while True:
            for line in self.log_text().splitlines():
                m = READY_LINE.match(line)
                if m and "linux stand-in" not in line:
                    return int(m.group(1)) * 1000 + int(m.group(2)) / 1000.0
            if time.monotonic() >= end:
                return None
            time.sleep(0.05)


def echo_once_quick():
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect((CID, ECHO))
        s.sendall(b"x")
        return s.recv(1) == b"x"
    finally:
        s.close()


def boot(kind, accels, tag):
    """Starts a guest and waits for its first successful 1-byte echo. Returns (guest, seconds)."""
    last_error = "no accelerator"
    for accel in accels:
        guest = Guest(kind, accel, tag)
        deadline = guest.started + 120
        while time.monotonic() < deadline:
            if not guest.alive():
                last_error = "QEMU -accel %s exited: %s" % (accel, open(guest.qemu_log).read()[-300:].strip())
                break
            try:
                if echo_once_quick():
                    return guest, time.monotonic() - guest.started
            except OSError:
                pass
            time.sleep(0.005)
        else:
            guest.stop()
            raise RuntimeError("%s: no echo within 120 s" % kind)
        guest.stop()
    raise RuntimeError("%s: %s" % (kind, last_error))


# ---- measurements ---------------------------------------------------------------------------

def connect(port):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(OP_TIMEOUT)
    # vsock's own connect timeout stays at its 2 s default (Python's setsockopt cannot pass the
    # struct timeval it takes): a guest that stalls longer fails that figure, which is reported.
    s.connect((CID, port))
    return s


def block_of(write_size):
    return bytes(((i * 131 + 17) & 0xFF) for i in range(write_size))


def sink_run(write_size, total):
    data = block_of(write_size)
    count = total // write_size
    expected_crc = 0
    for _ in range(count):
        expected_crc = zlib.crc32(data, expected_crc)
    with connect(SINK) as s:
        start = time.monotonic()
        for _ in range(count):
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while not answer.endswith(b"\n"):
            part = s.recv(64)
            if not part:
                break
            answer += part
        took = time.monotonic() - start
    want = b"%d %08x\n" % (count * write_size, expected_crc)
    if answer != want:
        raise RuntimeError("sink answered %r, expected %r" % (answer, want))
    return count * write_size / took / MIB


def source_run(read_size, total):
    buffer = bytearray(read_size)
    got = 0
    with connect(SOURCE) as s:
        start = time.monotonic()
        s.sendall(b"%d\n" % total)
        while True:
            n = s.recv_into(buffer)
            if n == 0:
                break
            got += n
        took = time.monotonic() - start
    if got != total:
        raise RuntimeError("source sent %d bytes, expected %d" % (got, total))
    return total / took / MIB


def echo_run(write_size, total):
    data = block_of(write_size)
    count = total // write_size
    failure = []

    with connect(ECHO) as s:
        def writer():
            try:
                for _ in range(count):
                    s.sendall(data)
            except OSError as e:
                failure.append(e)

        buffer = bytearray(max(write_size, 64 * KIB))
        start = time.monotonic()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        got = 0
        while got < count * write_size:
            n = s.recv_into(buffer)
            if n == 0:
                break
            got += n
        took = time.monotonic() - start
        thread.join(OP_TIMEOUT)
    if failure or got != count * write_size:
        raise RuntimeError("echo: %d of %d bytes back (%s)" % (got, count * write_size, failure))
    return count * write_size / took / MIB


def throughput(kind, mode, run, write_size, total, repeats):
    run(write_size, total)  # warm-up
    figures = [run(write_size, total) for _ in range(repeats)]
    result = summary(figures)
    progress("%-8s %-6s %4s KiB writes: %7.1f MiB/s (median of %d, %.1f-%.1f)"
             % (kind, mode, write_size // KIB, result["median"], repeats, result["min"], result["max"]))
    return result


def latency(kind, size, round_trips, blocks):
    message = bytes(range(256)) * (size // 256) if size >= 256 else b"x" * size
    buffer = bytearray(size)
    view = memoryview(buffer)
    samples = []
    with connect(ECHO) as s:
        for i in range(round_trips // 20 + 1):  # warm-up
            s.sendall(message)
            got = 0
            while got < size:
                got += s.recv_into(view[got:])
        clock = time.perf_counter_ns
        for _ in range(round_trips):
            start = clock()
            s.sendall(message)
            got = 0
            while got < size:
                n = s.recv_into(view[got:])
                if n == 0:
                    raise RuntimeError("echo closed during the latency run")
                got += n
            samples.append((clock() - start) / 1000.0)
    per_block = len(samples) // blocks
    block_p50 = [statistics.median(samples[i * per_block:(i + 1) * per_block]) for i in range(blocks)]
    ordered = sorted(samples)
    result = {
        "round_trips": round_trips,
        "p50_us": percentile(ordered, 0.50),
        "p90_us": percentile(ordered, 0.90),
        "p99_us": percentile(ordered, 0.99),
        "min_us": ordered[0],
        "max_us": ordered[-1],
        "mean_us": statistics.fmean(samples),
        "block_p50_us": summary(block_p50),
        "samples_us": [round(x, 1) for x in samples],
    }
    progress("%-8s echo RTT %4d B: p50 %.0f us, p99 %.0f us (%d round trips; block p50 %.0f-%.0f)"
             % (kind, size, result["p50_us"], result["p99_us"], round_trips, block_p50 and min(block_p50),
                block_p50 and max(block_p50)))
    return result


def seqpacket_run(size, count):
    """count messages of `size` bytes through the SEQPACKET echo (1238) on one connection, a writer
    thread ahead of the reader; each must come back whole (one recv, same length). Returns
    (messages/s, MiB/s of message bytes echoed)."""
    message = block_of(size)
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET)
    s.settimeout(OP_TIMEOUT)
    with s:
        s.connect((CID, SEQPACKET_ECHO))
        # Blocking, bounded by the kernel's timeouts: a non-blocking send of a message larger than
        # the guest's free credit sends part of it and fails with EAGAIN (Linux af_vsock.c), and a
        # retry would send the whole message again.
        s.settimeout(None)
        timeval = struct.pack("qq", int(OP_TIMEOUT), 0)
        libc = ctypes.CDLL(None, use_errno=True)
        for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
            # Through libc: Python's setsockopt on an AF_VSOCK socket takes only integers.
            if libc.setsockopt(s.fileno(), socket.SOL_SOCKET, option, timeval, len(timeval)) != 0:
                raise OSError(ctypes.get_errno(), "setsockopt(SO_SNDTIMEO/SO_RCVTIMEO)")
        errors = []

        def writer():
            try:
                for _ in range(count):
                    s.send(message)
            except OSError as e:
                errors.append(e)

        start = time.monotonic()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        for i in range(count):
            back = s.recv(size + 1)
            if len(back) != size:
                raise RuntimeError("seqpacket echo: message %d came back with %d B, sent %d B" % (i, len(back), size))
        took = time.monotonic() - start
        thread.join(OP_TIMEOUT)
        if errors:
            raise errors[0]
    return count / took, count * size / took / MIB


def seqpacket_throughput(kind, size, count, repeats):
    seqpacket_run(size, max(1, count // 10))  # warm-up
    runs = [seqpacket_run(size, count) for _ in range(repeats)]
    result = {"messages_per_s": summary([r[0] for r in runs]), "mib_s": summary([r[1] for r in runs]), "messages": count}
    progress("%-8s seqpacket echo %5d B messages: %8.0f messages/s, %7.2f MiB/s (median of %d x %d)"
             % (kind, size, result["messages_per_s"]["median"], result["mib_s"]["median"], repeats, count))
    return result


def connection_cycle():
    with connect(ECHO) as s:
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise RuntimeError("connect/echo/close: no echo")


def connection_rate(kind, cycles, repeats):
    for _ in range(max(5, cycles // 10)):
        connection_cycle()
    rates = []
    for _ in range(repeats):
        start = time.monotonic()
        for _ in range(cycles):
            connection_cycle()
        rates.append(cycles / (time.monotonic() - start))
    result = summary(rates)
    progress("%-8s connect+1 B echo+close: %6.1f /s (median of %d x %d, %.1f-%.1f)"
             % (kind, result["median"], repeats, cycles, result["min"], result["max"]))
    return result


# ---- one guest --------------------------------------------------------------------------------

COST_LINE = re.compile(r"info probe: costs (.*)$")


def access_costs(accel):
    """The firmware's cost probe (opt/vsockfw/cost-probe=1) in a boot of its own: what this
    accelerator charges per port write, MMIO read and write, notify, clock read, code step and
    timed halt, in ns ({} when the line does not come)."""
    guest = Guest("firmware", accel, "probe", options=["cost-probe=1"])
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and guest.alive():
            text = guest.log_text()
            # Only whole lines: the log is read while the firmware is still writing it.
            for line in text[:text.rfind("\n") + 1].splitlines():
                m = COST_LINE.search(line)
                if m:
                    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
            time.sleep(0.05)
        return {}
    finally:
        guest.stop()


def bench_guest(kind, accels, plan):
    result = {"kind": kind}
    boots, reset_to_ready, before_entry = [], [], []
    guest = None
    # A firmware boot takes about a second, a Linux boot 18: the firmware's reset-to-ready median
    # gets more samples, so one boot disturbed by the host does not decide it.
    count = plan["firmware_boots"] if kind in FIRMWARE_KINDS else plan["boots"]
    for i in range(count + 1):  # boot 0 warms the caches (image, kernel, python over 9p)
        if guest is not None:
            guest.stop()
        guest, seconds = boot(kind, accels, "boot%d" % i)
        ready_ms = guest.reset_to_ready_ms() if kind in FIRMWARE_KINDS else None
        label = "warm-up" if i == 0 else "%d/%d" % (i, count)
        progress("%-8s boot %s (-accel %s, cid %d): QEMU start -> first echo %.3f s%s"
                 % (kind, label, guest.accel, guest.cid, seconds, "" if ready_ms is None else ", reset -> ready %.1f ms by its log" % ready_ms))
        if i > 0:
            boots.append(seconds)
            if ready_ms is not None:
                reset_to_ready.append(ready_ms)
            if guest.before_entry_ms() is not None:
                before_entry.append(guest.before_entry_ms())
    result["accel"] = guest.accel
    result["boot_to_first_echo_s"] = summary(boots)
    if reset_to_ready:
        result["reset_to_ready_ms"] = summary(reset_to_ready)
    if before_entry:
        result["before_entry_ms"] = summary(before_entry)
    result["memory_after_boot_kib"] = guest.memory_kib()
    def measure(what, function, *args):
        """One figure; a failure is recorded and reported, and the other figures still run."""
        try:
            return function(*args)
        except (RuntimeError, OSError) as e:
            progress("%-8s %s: FAILED: %s" % (kind, what, e))
            result.setdefault("errors", []).append("%s: %s" % (what, e))
            return None

    if kind == "microvm":  # beside the q35 firmware: only the 64 KiB writes, to keep make bench short
        plan = dict(plan, write_sizes=[64 * KIB])
    try:
        result["throughput_mib_s"] = {}
        for mode, run, total in (("sink", sink_run, plan["bulk"]), ("source", source_run, plan["bulk"]),
                                 ("echo", echo_run, plan["echo"])):
            result["throughput_mib_s"][mode] = {
                str(size): measure("%s %d" % (mode, size), throughput, kind, mode, run, size, total, plan["repeats"])
                for size in plan["write_sizes"]}
        result["seqpacket"] = {
            str(size): measure("seqpacket %d" % size, seqpacket_throughput, kind, size,
                               plan["seqpacket_bytes"] // size if size > 1024 else plan["seqpacket_messages"], plan["repeats"])
            for size in SEQPACKET_SIZES}
        if not plan["throughput_only"]:
            measure_latency_and_rate(kind, plan, result, measure)
        result["memory_after_load_kib"] = guest.memory_kib()
        progress("%-8s QEMU process memory: %s" % (kind, result["memory_after_load_kib"]))
    finally:
        log = guest.log_text()
        guest.stop()
        with open(os.path.join(RESULTS, "%s-debugcon.log" % kind), "w") as f:
            f.write(log)
    return result


def measure_latency_and_rate(kind, plan, result, measure):
    result["latency"] = {str(size): measure("latency %d" % size, latency, kind, size, plan["round_trips"],
                                            plan["blocks"]) for size in (1, 1024)}
    result["connection_rate_per_s"] = measure("connection rate", connection_rate, kind, plan["cycles"],
                                              plan["cycle_repeats"])


def conditions():
    def command(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    kdir = os.environ.get("KDIR", "")
    image = os.environ.get("IMAGE", "")
    return {
        "host_kernel": platform.release(),
        "host_cpu": cpu,
        "host_cpus": os.cpu_count(),
        "host_in_outer_vm": RUNDIR == "/run/vsockfw",
        "qemu": command(["qemu-system-x86_64", "--version"]).splitlines()[0:1],
        "python": platform.python_version(),
        "guest_kernel": open(os.path.join(kdir, "kver")).read().strip() if kdir else "",
        "kernel_bytes": os.path.getsize(os.path.join(kdir, "vmlinuz")) if kdir else 0,
        "initramfs_bytes": os.path.getsize(os.path.join(kdir, "initrd.gz")) if kdir else 0,
        "image_bytes": os.path.getsize(image) if image and os.path.exists(image) else 0,
        "inner_accels_tried": os.environ.get("INNER_ACCELS", "kvm tcg").split(),
        "guest_memory": "256M",
    }


def private_kernel_copy():
    """The Linux guest boots from a copy on this host's tmpfs: the shared cache's initramfs may be
    rebuilt by another worktree's run while the bench is going (seen: "Initramfs unpacking failed")."""
    kdir = os.environ.get("KDIR", "")
    if not kdir:
        return
    copy = os.path.join(RUNDIR, "bench-kernel")
    os.makedirs(copy, exist_ok=True)
    for name in ("vmlinuz", "initrd.gz", "kver"):
        shutil.copyfile(os.path.join(kdir, name), os.path.join(copy, name))
    os.environ["KDIR"] = copy


def main():
    global PVH_IMAGE
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small counts, for trying the harness")
    parser.add_argument("--guests", default="firmware,microvm,linux")
    parser.add_argument("--pvh-image", default=PVH_IMAGE, help="the PVH ELF for the microvm guest")
    parser.add_argument("--throughput-only", action="store_true", help="no latency or connection-rate runs")
    parser.add_argument("--write-sizes", default=",".join(str(s // KIB) for s in WRITE_SIZES),
                        help="throughput write sizes in KiB, comma-separated")
    args = parser.parse_args()
    PVH_IMAGE = os.path.abspath(args.pvh_image)
    plan = {"boots": 3, "firmware_boots": 7, "repeats": 5, "bulk": 16 * MIB, "echo": 8 * MIB, "round_trips": 10000, "blocks": 5,
            "cycles": 100, "cycle_repeats": 3, "throughput_only": args.throughput_only,
            "seqpacket_messages": 5000, "seqpacket_bytes": 8 * MIB,
            "write_sizes": [int(kib) * KIB for kib in args.write_sizes.split(",")]}
    if args.quick:
        plan.update(boots=1, firmware_boots=1, repeats=1, bulk=2 * MIB, echo=2 * MIB, round_trips=500, cycles=10, cycle_repeats=1,
                    seqpacket_messages=500, seqpacket_bytes=2 * MIB)
    accels = os.environ.get("INNER_ACCELS", "kvm tcg").split()
    started = time.monotonic()
    if "linux" in args.guests:
        private_kernel_copy()
    raw = {"plan": plan, "conditions": conditions(), "guests": {}}
    progress("conditions: %s" % json.dumps({k: v for k, v in raw["conditions"].items()}))
    status = 0
    for kind in args.guests.split(","):
        try:
            raw["guests"][kind] = bench_guest(kind, accels, plan)
            status = 1 if raw["guests"][kind].get("errors") else status
        except (RuntimeError, OSError) as e:
            progress("%s: FAILED: %s" % (kind, e))
            raw["guests"].setdefault(kind, {"kind": kind, "error": str(e)})
            status = 1
    if "firmware" in args.guests.split(","):
        accel = raw["guests"].get("firmware", {}).get("accel", accels[0])
        raw["access_costs_ns"] = {accel: access_costs(accel)}
        progress("firmware cost probe (-accel %s): %s" % (accel, raw["access_costs_ns"][accel]))
    raw["bench_seconds"] = time.monotonic() - started
    with open(os.path.join(RESULTS, "raw.json"), "w") as f:
        json.dump(raw, f)
    progress("done in %.0f s; raw figures in %s/raw.json" % (raw["bench_seconds"], RESULTS))
    return status


if __name__ == "__main__":
    sys.exit(main())
