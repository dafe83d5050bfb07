#!/usr/bin/env python3
"""Where a boot's time went in VM exits: reads a KVM ftrace text (events kvm_entry, kvm_exit,
kvm_pio, kvm_page_fault) and prints, up to the guest's first idle halt, the time spent outside the
guest per exit kind (reason, I/O port, nested page fault on RAM or MMIO) and the slowest exits.

    exit-profile.py TRACE [--slowest N] [--all]

An exit's cost is from kvm_exit to the next kvm_entry: what KVM and QEMU did for it (under nested
KVM, including the outer VM's emulation). Written by tools/bench/boot-times.sh --exit-trace.
"""
import argparse
import re
import statistics
from collections import defaultdict

EVENT = re.compile(r"\s*\S+-\d+\s+\[\d+\]\s+\S+\s+([\d.]+): (kvm_\w+): (.*)")
EXIT = re.compile(r"reason (\w+) rip (0x[0-9a-f]+) info1 (0x[0-9a-f]+) info2 (0x[0-9a-f]+)")
MMIO_START = 0xC0000000  # our PCI memory window and the chipset's registers lie above


def exits(path):
    """(start seconds, cost seconds, reason, rip, info1, info2) per exit, in order."""
    pending = None
    for line in open(path, errors="replace"):
        m = EVENT.match(line)
        if not m:
            continue
        t, name, rest = float(m.group(1)), m.group(2), m.group(3)
        if name == "kvm_exit":
            e = EXIT.search(rest)
            pending = (t, e) if e else None
        elif name == "kvm_entry" and pending:
            start, e = pending
            yield start, t - start, e.group(1), int(e.group(2), 16), int(e.group(3), 16), int(e.group(4), 16)
            pending = None


def kind(reason, info1, info2):
    if reason == "io":  # SVM IOIO exit: port in info1 bits 31:16
        return "io port 0x%x" % (info1 >> 16)
    if reason == "npf":
        return "npf " + ("mmio" if info2 >= MMIO_START else "ram")
    return reason


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--slowest", type=int, default=12)
    parser.add_argument("--all", action="store_true", help="do not stop at the first idle halt")
    args = parser.parse_args()
    by_kind = defaultdict(list)
    slowest = []
    first = None
    for start, cost, reason, rip, info1, info2 in exits(args.trace):
        if first is None:
            first = start
        if reason == "hlt" and not args.all:
            break
        by_kind[kind(reason, info1, info2)].append(cost)
        slowest.append((cost, start - first, kind(reason, info1, info2), rip, info2))
    if first is None:
        print("no exits in %s" % args.trace)
        return
    total = sum(sum(v) for v in by_kind.values())
    count = sum(len(v) for v in by_kind.values())
    print("%d exits, %.1f ms outside the guest%s" % (count, total * 1000, "" if args.all else " (to the first idle halt)"))
    print("%-16s %6s %9s %10s %9s" % ("exit", "count", "total ms", "median us", "max ms"))
    for name, costs in sorted(by_kind.items(), key=lambda item: -sum(item[1])):
        print("%-16s %6d %9.1f %10.0f %9.1f" % (name, len(costs), sum(costs) * 1000,
                                                statistics.median(costs) * 1e6, max(costs) * 1000))
    print("slowest: at ms, cost ms, exit, guest rip, address")
    for cost, at, name, rip, info2 in sorted(slowest, reverse=True)[:args.slowest]:
        print("  %8.1f %6.1f  %-16s rip=0x%x addr=0x%x" % (at * 1000, cost * 1000, name, rip, info2))


if __name__ == "__main__":
    main()
