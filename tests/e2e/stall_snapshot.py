#!/usr/bin/env python3
"""What a firmware that fell silent was doing: asked of its still-running QEMU, over the HMP monitor.

    stall_snapshot.py --monitor SOCK --elf build/firmware.elf [--out FILE]

Written for the one real-host run in which the firmware stopped answering mid-suite (docs/reliability.md):
its log ended and nothing said why. This records, without disturbing the guest more than a monitor does:
- whether the vCPU runs, halts or spins (three register samples: RIP, HLT, interrupt flag);
- the interrupt counters of reset-vector/interrupts.asm (do timer and device interrupts still arrive?);
- the log bytes still deferred in the firmware (firmware/debugcon.c), i.e. what it logged but never wrote;
- every virtqueue's indices as QEMU and vhost see them (a lost kick or interrupt shows as avail/used
  indices that disagree with what each side last saw);
- half a second of KVM's exit tracepoint on the host (an exit loop, a halted vCPU, or one that never
  runs: the outer VM has been seen to stop running its guest).
Only the monitor's Unix socket is used; nothing here talks vsock.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time

PROMPT = b"(qemu) "


class Monitor:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self._until_prompt()

    def _until_prompt(self):
        data = b""
        while not data.endswith(PROMPT):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def run(self, command):
        self.sock.sendall(command.encode() + b"\n")
        text = self._until_prompt().decode("utf-8", "replace")
        # HMP echoes the command (with terminal escapes) before its answer.
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "")
        lines = text.split("\n")
        if lines and command in lines[0]:
            lines = lines[1:]
        return "\n".join(line for line in lines if line != PROMPT.decode().strip() and not line.startswith("(qemu)"))


def symbols(elf):
    table = {}
    out = subprocess.run(["nm", "-S", elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()  # address [size] type name: C objects have a size, assembly labels none
        if len(parts) == 4:
            table[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
        elif len(parts) == 3:
            table[parts[2]] = (int(parts[0], 16), 0)
    return table


def read_memory(monitor, address, size):
    """Guest physical bytes (the firmware is identity-mapped), from HMP's `xp` dump in 8-byte words
    (pmemsave cannot name an absolute file: HMP reads "SIZE /path" as a division)."""
    words = (size + 7) // 8
    text = monitor.run(f"xp /{words}xg {address:#x}")
    data = b""
    for line in text.splitlines():
        if ":" not in line:
            continue
        for value in line.split(":", 1)[1].split():
            data += int(value, 16).to_bytes(8, "little")
    return data[:size]


def u64(data):
    return int.from_bytes(data[:8], "little")


def u32(data):
    return int.from_bytes(data[:4], "little")


def deferred_log(monitor, table):
    names = ("deferred", "deferred_head", "deferred_count")
    if any(name not in table for name in names):
        return "(the image has no deferred log symbols)"
    head = u32(read_memory(monitor, table["deferred_head"][0], 4))
    count = u32(read_memory(monitor, table["deferred_count"][0], 4))
    address, capacity = table["deferred"]
    ring = read_memory(monitor, address, capacity)
    count = min(count, capacity)
    pending = bytes(ring[(head + i) % capacity] for i in range(count))
    return f"{count} bytes logged but not yet written:\n" + pending.decode("ascii", "replace")


def function_at(table, address):
    """The symbol an instruction address falls in (the nearest one at or below it)."""
    best = None
    for name, (start, _) in table.items():
        if start <= address and (best is None or start > table[best][0]):
            best = name
    return f"{best}+{address - table[best][0]:#x}" if best else "?"


def register_sample(monitor, table):
    text = monitor.run("info registers")
    rip = re.search(r"RIP=([0-9a-f]+)", text)
    flags = re.search(r"RFL=([0-9a-f]+)", text)
    hlt = re.search(r"HLT=(\d)", text)
    interrupts_on = flags and (int(flags.group(1), 16) >> 9) & 1
    where = function_at(table, int(rip.group(1), 16)) if rip else "?"
    return (f"RIP={rip.group(1) if rip else '?'} ({where}) HLT={hlt.group(1) if hlt else '?'} IF={interrupts_on}", text)


def ring_indices(monitor, queue_text):
    """The split ring's own words in guest memory (vhost keeps its view in the kernel, so QEMU's
    per-queue fields are stale for vhost queues): avail flags/idx and used_event, used flags/idx and
    avail_event. Avail idx ahead of what vhost used with no kick, or used idx ahead of what the
    driver consumed with no interrupt, is a lost notification."""
    num = re.search(r"num:\s+(\d+)", queue_text)
    avail = re.search(r"avail:\s+(0x[0-9a-f]+)", queue_text)
    used = re.search(r"used:\s+(0x[0-9a-f]+)", queue_text)
    if not (num and avail and used):
        return "(no ring addresses)"
    n, avail_at, used_at = int(num.group(1)), int(avail.group(1), 16), int(used.group(1), 16)
    if n == 0 or avail_at == 0:
        return "(queue not set up)"
    a = read_memory(monitor, avail_at, 4 + 2 * n + 2)
    u = read_memory(monitor, used_at, 4 + 8 * n + 2)
    word = lambda data, at: int.from_bytes(data[at:at + 2], "little")
    return (f"avail flags={word(a, 0)} idx={word(a, 2)} used_event={word(a, 4 + 2 * n)} | "
            f"used flags={word(u, 0)} idx={word(u, 2)} avail_event={word(u, 4 + 8 * n)}")


def virtio_state(monitor):
    out = []
    listing = monitor.run("info virtio")
    out.append("info virtio:\n" + listing)
    for path in re.findall(r"(/machine/\S+)", listing):
        out.append(f"info virtio-status {path}:\n" + monitor.run(f"info virtio-status {path}"))
        for queue in range(3):
            qemu_view = monitor.run(f"info virtio-queue-status {path} {queue}")
            out.append(f"queue {queue} ring words: " + ring_indices(monitor, qemu_view))
            out.append(f"queue {queue} (QEMU's view):\n" + qemu_view)
            vhost = monitor.run(f"info virtio-vhost-queue-status {path} {queue}")
            if vhost.strip():
                out.append(f"queue {queue} (vhost's view):\n" + vhost)
    return "\n".join(out)


TRACING = "/sys/kernel/debug/tracing"


def kvm_exit_sample(seconds=0.5):
    """Where the vCPU's time goes right now, from KVM's exit tracepoint on the vhost-vsock host (the
    outer VM): exits by reason and guest RIP. A vCPU caught in an exit loop shows one reason at one
    RIP thousands of times; a halted one shows a few timer exits; none at all, a vCPU that never runs."""
    if not os.path.isdir(TRACING):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"], capture_output=True)
    event = f"{TRACING}/events/kvm/kvm_exit/enable"
    if not os.access(event, os.W_OK):
        return "(no KVM tracepoints here)"
    try:
        for name, value in (("tracing_on", "0"), ("trace", "")):
            with open(f"{TRACING}/{name}", "w") as f:
                f.write(value)
        # l1-job.sh's stop trigger would end this sample at its first exit: it has done its work.
        trigger = f"{TRACING}/events/kvm/kvm_exit/trigger"
        try:
            with open(trigger) as f:
                armed = [line for line in f if line.startswith("traceoff") and " if " in line]
            for line in armed:
                with open(trigger, "w") as g:
                    g.write("!traceoff if " + line.split(" if ", 1)[1].split(" [")[0].strip())
        except OSError:
            pass  # no trigger support, or none set: the sample runs as before
        with open(event, "w") as f:
            f.write("1")
        with open(f"{TRACING}/tracing_on", "w") as f:
            f.write("1")
        time.sleep(seconds)
        with open(f"{TRACING}/tracing_on", "w") as f:
            f.write("0")
        with open(event, "w") as f:
            f.write("0")
        with open(f"{TRACING}/trace") as f:
            lines = [line for line in f if "kvm_exit:" in line]
    except OSError as error:
        return f"(tracing failed: {error})"
    counts = {}
    for line in lines:
        reason = re.search(r"reason (\S+)", line)
        rip = re.search(r"rip (0x[0-9a-f]+)", line)
        key = f"{reason.group(1) if reason else '?'} rip={rip.group(1) if rip else '?'}"
        counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:12]
    return f"{len(lines)} exits in {seconds} s" + "".join(f"\n  {n:6d} {key}" for key, n in top)


def reset_state(monitor, registers, table):
    """A guest paused at a reset (a triple fault: qemu/nested/inner-qemu.sh runs it with -no-reboot and
    -action shutdown=pause) keeps the registers of the failed delivery: the stack words at RSP, and
    the IDT and GDT as the CPU would read them (a corrupted gate or descriptor, or an RSP that points
    nowhere, is what turns an exception into a triple fault)."""
    out = []
    field = lambda name: re.search(name + r"\s*=\s*([0-9a-f]+)\s+([0-9a-f]+)", registers)
    if re.search(r"EIP=0000fff0", registers) and re.search(r"CS =f000", registers):
        # KVM re-initialised the vCPU that shut down: these are the reset values, and their tables
        # (address 0) say nothing. reset_memory reads the firmware's own by symbol.
        return "(the registers are the reset values: the vCPU was re-initialised)"
    rsp = re.search(r"RSP=([0-9a-f]+)", registers)
    if rsp:
        at = int(rsp.group(1), 16) & ~7
        words = read_memory(monitor, at, 32 * 8)
        lines = []
        for i in range(0, len(words), 8):
            value = u64(words[i:i + 8])
            lines.append(f"  {at + i:#x}: {value:#018x}" + (f" {function_at(table, value)}" if 0x100000 <= value < 0x1000000 else ""))
        out.append("stack at RSP:\n" + "\n".join(lines))
    idt = field("IDT")
    if idt:
        out.append("IDT gates:\n" + idt_gates(monitor, int(idt.group(1), 16), list(range(0, 15)) + list(range(32, 40)) + [255], table))
    gdt = field("GDT")
    if gdt:
        out.append("GDT: " + gdt_words(monitor, int(gdt.group(1), 16), min(int(gdt.group(2), 16) + 1, 64)))
    return "\n".join(out)


def idt_gates(monitor, base, vectors, table):
    """The 64-bit interrupt gates of `vectors` in the IDT at `base`, one line each, with the
    function each one enters."""
    lines = []
    for vector in vectors:
        gate = read_memory(monitor, base + 16 * vector, 16)
        target = int.from_bytes(gate[0:2], "little") | int.from_bytes(gate[6:8], "little") << 16 | u32(gate[8:12]) << 32
        lines.append(f"  vector {vector:#04x}: attrs={int.from_bytes(gate[4:6], 'little'):#06x} "
                     f"selector={int.from_bytes(gate[2:4], 'little'):#x} target={target:#x} ({function_at(table, target)})")
    return "\n".join(lines)


def gdt_words(monitor, base, size):
    """The GDT's descriptors at `base` as 64-bit words."""
    data = read_memory(monitor, base, size)
    return " ".join(f"{u64(data[i:i + 8]):#018x}" for i in range(0, len(data), 8))


STACK_DUMP_BYTES = 2048  # the firmware's deepest frames stay within ~1.5 KiB of the stack top


def reset_memory(monitor, table):
    """After a reset the registers are gone (KVM on AMD re-initialises a vCPU that shut down), but
    memory is not: the IDT and GDT as the firmware built them (a corrupted gate or descriptor turns
    an exception into a triple fault), and the words just below the stack top, with an interrupt
    or exception frame (RIP, CS 0x18, RFLAGS, RSP, SS 0x10) picked out where one was pushed."""
    out = []
    if "__stack_top" in table:
        top = table["__stack_top"][0]
        words = read_memory(monitor, top - STACK_DUMP_BYTES, STACK_DUMP_BYTES)
        values = [u64(words[i:i + 8]) for i in range(0, len(words), 8)]
        lines = []
        for i, value in enumerate(values):
            if value == 0:
                continue
            at = top - STACK_DUMP_BYTES + 8 * i
            named = f" {function_at(table, value)}" if table.get("__ram_image_start", (0,))[0] <= value < table.get("__ram_image_end", (0,))[0] else ""
            frame = ""
            if i + 4 < len(values) and values[i + 1] == 0x18 and values[i + 4] == 0x10:
                frame = f"  <- frame: rip={value:#x} rflags={values[i + 2]:#x} rsp={values[i + 3]:#x}"
                if i >= 2:
                    frame += f" (below it: vector? {values[i - 2]:#x} error? {values[i - 1]:#x})"
            lines.append(f"  {at:#x}: {value:#018x}{named}{frame}")
        out.append(f"stack words below __stack_top ({STACK_DUMP_BYTES} bytes, zero words left out):\n" + "\n".join(lines))
    if "idt" in table:
        out.append("IDT in memory (symbol idt):\n" + idt_gates(monitor, table["idt"][0], list(range(0, 32)) + [0x30, 0x31, 0xff], table))
    if "gdt" in table:
        out.append("GDT in memory (symbol gdt): " + gdt_words(monitor, table["gdt"][0], 32))
    return "\n".join(out)


PAGE_TABLES = 0x10000  # reset-vector/layout.inc: PML4, PDPT, then the page directories (2 MiB pages)
EVENT_TYPES = {0: "external interrupt", 2: "NMI", 3: "exception", 4: "software interrupt"}


def shutdown_exit(trace):
    """KVM's last `reason shutdown` exit in the trace ring, decoded: the guest RIP and the event the
    CPU was delivering when it gave up (SVM's EXITINTINFO: valid bit 31, type bits 8-10, error code
    bit 11, vector bits 0-7). A #PF there at an instruction that touches no memory is a fetch fault."""
    found = None
    for line in trace.splitlines():
        match = re.search(r"reason shutdown rip (0x[0-9a-f]+).*intr_info (0x[0-9a-f]+)", line)
        if match:
            found = (int(match.group(1), 16), int(match.group(2), 16))
    if not found:
        return None, "no shutdown exit in the trace ring"
    rip, info = found
    if not info >> 31:
        return rip, f"shutdown at RIP {rip:#x}, no event being delivered"
    kind = EVENT_TYPES.get((info >> 8) & 7, f"type {(info >> 8) & 7}")
    code = ", with an error code" if info & (1 << 11) else ""
    return rip, f"shutdown at RIP {rip:#x} while delivering {kind} vector {info & 0xff:#x}{code} (EXITINTINFO {info:#x})"


def page_walk(monitor, address):
    """The firmware's own page-table entries for `address`, read from memory (which a reset keeps):
    intact present entries here mean the guest's tables could not have faulted the fetch."""
    pml4e = u64(read_memory(monitor, PAGE_TABLES + 8 * ((address >> 39) & 511), 8))
    out = [f"PML4E {pml4e:#018x}"]
    if pml4e & 1:
        pdpte = u64(read_memory(monitor, (pml4e & 0xffffffffff000) + 8 * ((address >> 30) & 511), 8))
        out.append(f"PDPTE {pdpte:#018x}")
        if pdpte & 1:
            pde = u64(read_memory(monitor, (pdpte & 0xffffffffff000) + 8 * ((address >> 21) & 511), 8))
            out.append(f"PDE {pde:#018x}" + (" (2 MiB page)" if pde & 0x80 else ""))
    return f"page walk of {address:#x} in the firmware's tables at {PAGE_TABLES:#x}: " + ", ".join(out)


def kvm_trace_tail(lines=400):
    """The last events of the trace ring qemu/nested/l1-job.sh keeps on for the inner guest: KVM's
    exits, injected interrupts and exceptions, EOIs and emulated instructions, in order. Read
    before kvm_exit_sample, which clears the ring."""
    try:
        with open(f"{TRACING}/tracing_on") as f:
            running = f.read().strip() == "1"
        with open(f"{TRACING}/trace") as f:
            events = [line.rstrip() for line in f if not line.startswith("#")]
    except OSError as error:
        return f"(trace unreadable: {error})"
    if not events:
        return "(no trace ring running)"
    # l1-job.sh's trigger stops the ring at the first exit above the canonical hole.
    stopped = "" if running else " (the ring stopped itself: the last exit is the first at an address the firmware never runs at)"
    return f"{len(events)} events in the ring{stopped}, the last {min(lines, len(events))}:\n" + "\n".join(events[-lines:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitor", required=True)
    parser.add_argument("--elf", required=True)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = []
    try:
        monitor = Monitor(args.monitor)
        table = symbols(args.elf) if os.path.exists(args.elf) else {}
        status = monitor.run("info status").strip()
        report.append("status: " + status)
        samples = []
        for i in range(3):
            summary, full = register_sample(monitor, table)
            samples.append(summary)
            if i == 0:
                report.append("registers:\n" + full)
                registers = full
            time.sleep(0.2)
        if "shutdown" in status:
            report.append("the guest reset (paused at the shutdown it became):\n" + reset_state(monitor, registers, table))
            report.append(reset_memory(monitor, table))
        report.append("vCPU samples 0.2 s apart: " + " | ".join(samples))
        # The local APIC (IRR, ISR, PPR, timer) and the I/O APIC's entries: a vCPU halted with
        # IF=1 that nothing wakes has an interrupt stuck in service or none pending at all.
        report.append("info lapic:\n" + monitor.run("info lapic"))
        report.append("info pic:\n" + monitor.run("info pic"))
        for name in ("interrupt_device_count", "interrupt_timer_count", "interrupt_spurious_count", "interrupt_before_halt_count"):
            if name in table:
                before = u64(read_memory(monitor, table[name][0], 8))
                time.sleep(0.1)
                after = u64(read_memory(monitor, table[name][0], 8))
                report.append(f"{name}: {before} then {after} 0.1 s later")
        trace = kvm_trace_tail()
        if "shutdown" in status:
            rip, what = shutdown_exit(trace)
            report.append(what + (f" ({function_at(table, rip)})" if rip is not None else ""))
            if rip is not None:
                report.append(page_walk(monitor, rip))
        report.append("KVM's last events for the guest: " + trace)
        report.append("KVM exits of the host's guests: " + kvm_exit_sample())
        report.append(deferred_log(monitor, table))
        report.append(virtio_state(monitor))
    except (OSError, subprocess.CalledProcessError) as error:
        report.append(f"stall snapshot incomplete: {error}")
    text = "\n\n".join(report) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
