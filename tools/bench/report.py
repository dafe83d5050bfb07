"""Turns the bench client's raw figures (build/bench/raw.json, written inside the outer VM) into the
Markdown table on the terminal, build/bench/results.json and the PNG plots. Runs on this machine.

Usage: report.py RAW_JSON --image build/firmware.bin --elf build/firmware.elf --out build/bench
"""
import argparse
import json
import os
import platform
import struct
import subprocess
import sys

KIB, MIB = 1024, 1024 * 1024
WRITE_SIZES = ("4096", "65536", "1048576")
PT_LOAD = 1


def elf_payload_bytes(path):
    """Bytes the flash image holds: the file size of every PT_LOAD segment (as tools/image counts)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("%s is not a 64-bit ELF" % path)
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    total = 0
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        p_filesz, = struct.unpack_from("<Q", data, phoff + i * phentsize + 0x20)
        if p_type == PT_LOAD:
            total += p_filesz
    return total


def this_machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        qemu = ""
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(), "qemu": qemu,
            "kvm_device": os.path.exists("/dev/kvm")}


def outer_qemu(out):
    """The QEMU that ran the outer VM (qemu/vsock-host.sh records it; the inner one is the system's)."""
    try:
        return open(os.path.join(out, "outer-qemu.txt")).read().strip()
    except OSError:
        return ""


def load_averages(out):
    """The machine's 1/5/15-minute load before and after the run (tools/bench/run.sh records them)."""
    figures = {}
    for when in ("before", "after"):
        try:
            figures[when] = open(os.path.join(out, "loadavg-%s.txt" % when)).read().split()
        except OSError:
            pass
    return figures


def get(guest, *path):
    value = guest
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def rows(raw, sizes):
    """(label, firmware, linux, unit, higher_is_better, decimals) for every compared figure."""
    fw, lx = raw["guests"].get("firmware", {}), raw["guests"].get("linux", {})
    out = [("boot to first echo (QEMU start included)", get(fw, "boot_to_first_echo_s", "median"),
            get(lx, "boot_to_first_echo_s", "median"), "s", False, 3),
           ("firmware reset to ready, by its log", get(fw, "reset_to_ready_ms", "median"), None, "ms", False, 1)]
    for mode, direction in (("sink", "host->guest"), ("source", "guest->host"), ("echo", "both ways")):
        for size in WRITE_SIZES:
            out.append(("%s (%s), %d KiB writes" % (mode, direction, int(size) // KIB),
                        get(fw, "throughput_mib_s", mode, size, "median"),
                        get(lx, "throughput_mib_s", mode, size, "median"), "MiB/s", True, 1))
    out.append(("SEQPACKET echo, 64 B messages", get(fw, "seqpacket", "64", "messages_per_s", "median"),
                get(lx, "seqpacket", "64", "messages_per_s", "median"), "msg/s", True, 0))
    out.append(("SEQPACKET echo, 64 KiB messages", get(fw, "seqpacket", "65536", "mib_s", "median"),
                get(lx, "seqpacket", "65536", "mib_s", "median"), "MiB/s", True, 1))
    for size in ("1", "1024"):
        for p in ("p50", "p99"):
            out.append(("echo round trip %s B %s" % (size, p), get(fw, "latency", size, p + "_us"),
                        get(lx, "latency", size, p + "_us"), "us", False, 0))
    out.append(("connect + 1 B echo + close", get(fw, "connection_rate_per_s", "median"),
                get(lx, "connection_rate_per_s", "median"), "/s", True, 1))
    rss = lambda g: (get(g, "memory_after_load_kib", "VmHWM") or 0) / 1024 or None  # noqa: E731
    out.append(("guest QEMU process peak RSS", rss(fw), rss(lx), "MiB", False, 1))
    out.append(("boot payload (firmware image vs kernel+initramfs)", sizes["firmware_payload_bytes"] / KIB,
                sizes["linux_kernel_initramfs_bytes"] / KIB, "KiB", False, 0))
    # Debian's iperf3 through the vhost-user backend's TCP forward, TCG (iperf3.json, written by
    # tests/vhost-user/iperf3-bench.ts on this machine); absent when that step did not run.
    iperf3 = raw.get("iperf3") or {}
    fw3, lx3 = get(iperf3, "guests", "firmware") or {}, get(iperf3, "guests", "linux") or {}
    for name, label in (("forward-1", "forward, 1 stream"), ("reverse-1", "-R, 1 stream"),
                        ("forward-4", "forward, 4 streams"), ("reverse-4", "-R, 4 streams")):
        if iperf3:
            out.append(("iperf3 %s (TCP forward, vhost-user, TCG)" % label, get(fw3, "iperf3_mib_s", name),
                        get(lx3, "iperf3_mib_s", name), "MiB/s", True, 1))
    return out


def shape_rows(raw):
    """(label, q35 firmware, microvm firmware, linux, unit, decimals): the firmware's two machine
    shapes (issue 18) beside each other and beside Linux, where bench.py measured the microvm one."""
    fw, mv, lx = (raw["guests"].get(k, {}) for k in ("firmware", "microvm", "linux"))
    out = [("boot to first echo (QEMU start included)", "boot_to_first_echo_s", "median", "s", 3),
           ("reset to ready, by its log (first instruction -> ready)", "reset_to_ready_ms", "median", "ms", 1),
           ("TSC at the PVH entry (QEMU start-up after the vCPU, qboot)", "before_entry_ms", "median", "ms", 1)]
    rows_ = [(label, get(fw, key, sub), get(mv, key, sub), get(lx, key, sub), unit, d) for label, key, sub, unit, d in out]
    for mode in ("sink", "source", "echo"):
        rows_.append(("%s, 64 KiB writes" % mode, get(fw, "throughput_mib_s", mode, "65536", "median"),
                      get(mv, "throughput_mib_s", mode, "65536", "median"),
                      get(lx, "throughput_mib_s", mode, "65536", "median"), "MiB/s", 1))
    rows_.append(("echo round trip 1 B p50", get(fw, "latency", "1", "p50_us"), get(mv, "latency", "1", "p50_us"),
                  get(lx, "latency", "1", "p50_us"), "us", 0))
    rows_.append(("connect + 1 B echo + close", get(fw, "connection_rate_per_s", "median"),
                  get(mv, "connection_rate_per_s", "median"), get(lx, "connection_rate_per_s", "median"), "/s", 1))
    return rows_


def shape_table(raw):
    lines = ["| figure | firmware, q35 (pflash, virtio-pci) | firmware, microvm (PVH, virtio-mmio) | Linux |", "|---|---:|---:|---:|"]
    for label, q, m, l, unit, decimals in shape_rows(raw):
        fmt = lambda v: "-" if v is None else ("%.*f %s" % (decimals, v, unit))  # noqa: E731
        lines.append("| %s | %s | %s | %s |" % (label, fmt(q), fmt(m), fmt(l)))
    return "\n".join(lines)


def table(raw, sizes):
    lines = ["| figure | firmware | Linux | firmware vs Linux |", "|---|---:|---:|---:|"]
    for label, f, l, unit, higher, decimals in rows(raw, sizes):
        fmt = lambda v: "-" if v is None else ("%.*f %s" % (decimals, v, unit))  # noqa: E731
        if f is not None and l is not None and f > 0 and l > 0:
            better = f / l if higher else l / f
            factor = better if better >= 1 else 1 / better
            # A ratio that rounds to 1.00 is a tie, whichever side of 1 it falls.
            verdict = "even" if round(factor, 2) == 1.0 else "%.2fx %s" % (factor, "better" if better >= 1 else "worse")
        else:
            verdict = "-"
        lines.append("| %s | %s | %s | %s |" % (label, fmt(f), fmt(l), verdict))
    return "\n".join(lines)


def plots(raw, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"firmware": "tab:blue", "linux": "tab:orange", "microvm": "tab:green"}
    made = []

    def save(fig, title, name):
        fig.suptitle(title)
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, mode in zip(axes, ("sink", "source", "echo")):
        for kind, guest in raw["guests"].items():
            series = get(guest, "throughput_mib_s", mode)
            if not series:
                continue
            measured = [s for s in WRITE_SIZES if series.get(s)]
            xs = [int(s) // KIB for s in measured]
            med = [series[s]["median"] for s in measured]
            low = [series[s]["median"] - series[s]["min"] for s in measured]
            high = [series[s]["max"] - series[s]["median"] for s in measured]
            ax.errorbar(xs, med, yerr=[low, high], marker="o", capsize=4, label=kind, color=colours.get(kind))
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 64, 1024], ["4 KiB", "64 KiB", "1 MiB"])
        ax.set_title({"sink": "host -> guest (sink)", "source": "guest -> host (source)", "echo": "echo"}[mode])
        ax.set_xlabel("write size")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MiB/s (median, bars: min-max)")
    axes[0].legend()
    save(fig, "Throughput by write size", "throughput.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, size in zip(axes, ("1", "1024")):
        for kind, guest in raw["guests"].items():
            samples = get(guest, "latency", size, "samples_us")
            if not samples:
                continue
            ordered = sorted(samples)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, ys, label="%s (p50 %.0f us)" % (kind, get(guest, "latency", size, "p50_us")),
                    color=colours.get(kind))
        ax.set_xscale("log")
        ax.set_xlabel("round trip (us, log scale)")
        ax.set_ylabel("fraction of round trips")
        ax.set_title("echo round trip, %s B messages" % size)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right")
    save(fig, "Latency distribution (CDF)", "latency.png")
    return made


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--image", default="build/firmware.bin")
    parser.add_argument("--elf", default="build/firmware.elf")
    parser.add_argument("--out", default="build/bench")
    args = parser.parse_args()
    raw = json.load(open(args.raw))
    iperf3_path = os.path.join(os.path.dirname(args.raw), "iperf3.json")
    if os.path.exists(iperf3_path):
        raw["iperf3"] = json.load(open(iperf3_path))
    conditions = raw["conditions"]
    sizes = {
        "firmware_payload_bytes": elf_payload_bytes(args.elf),
        "firmware_flash_bytes": os.path.getsize(args.image),
        "linux_kernel_bytes": conditions.get("kernel_bytes", 0),
        "linux_initramfs_bytes": conditions.get("initramfs_bytes", 0),
    }
    sizes["linux_kernel_initramfs_bytes"] = sizes["linux_kernel_bytes"] + sizes["linux_initramfs_bytes"]
    results = {
        "conditions": dict(conditions, this_machine=dict(this_machine(), load_average=load_averages(args.out)),
                           outer_vm_accel="tcg" if conditions.get("host_in_outer_vm") else "none",
                           outer_vm_qemu=outer_qemu(args.out),
                           firmware_accel=get(raw["guests"].get("firmware", {}), "accel"),
                           linux_accel=get(raw["guests"].get("linux", {}), "accel")),
        "plan": raw["plan"],
        "sizes": sizes,
        "bench_seconds": raw.get("bench_seconds"),
        "guests": {},
    }
    for kind, guest in raw["guests"].items():
        copy = json.loads(json.dumps(guest))
        for size, figures in (copy.get("latency") or {}).items():
            if figures:
                figures.pop("samples_us", None)  # 10,000 per run: they stay in raw.json
        results["guests"][kind] = copy
    results["access_costs_ns"] = raw.get("access_costs_ns", {})
    results["table"] = [dict(zip(("figure", "firmware", "linux", "unit", "higher_is_better"), r[:5]))
                        for r in rows(raw, sizes)]
    results["shapes_table"] = [dict(zip(("figure", "firmware_q35", "firmware_microvm", "linux", "unit"), r[:5]))
                               for r in shape_rows(raw)]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    made = plots(raw, args.out)
    c = results["conditions"]
    print()
    print("Benchmarks: firmware vs Linux guest (kernel %s), inner QEMU -accel %s/%s (%s), outer VM %s (%s) on %s;"
          " load average before/after %s"
          % (c.get("guest_kernel"), c.get("firmware_accel"), c.get("linux_accel"), c["this_machine"]["qemu"],
             c.get("outer_vm_accel"), c.get("outer_vm_qemu") or "?", c["this_machine"]["cpu"],
             c["this_machine"]["load_average"]))
    print()
    print(table(raw, sizes))
    print()
    if "microvm" in raw["guests"]:
        print(shape_table(raw))
        print()
    print("firmware flash image %d bytes, payload %d bytes; Linux kernel %d + initramfs %d bytes"
          % (sizes["firmware_flash_bytes"], sizes["firmware_payload_bytes"], sizes["linux_kernel_bytes"],
             sizes["linux_initramfs_bytes"]))
    for accel, costs in results["access_costs_ns"].items():
        print("firmware cost probe under -accel %s (ns per operation): %s"
              % (accel, " ".join("%s=%s" % (k.replace("_ns", ""), v) for k, v in costs.items()) or "no line"))
    print("results: %s; plots: %s" % (os.path.join(args.out, "results.json"), ", ".join(made)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
