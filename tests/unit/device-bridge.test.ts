// Functions behind a PCI-to-PCI bridge: the bridge's memory and I/O windows must cover what was
// assigned below it (else nothing there is reachable), and an empty bridge keeps them closed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PciBus } from "../sim/pci-bus";
import { PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from "../sim/pci-config";
import { MemoryBackedBar, PciFunction } from "../sim/pci-function";
import { deviceUp } from "./device-harness";

/** A type-1 header with writable bus numbers and windows (the sim models type 0 only). */
function bridge(bus: number, device: number): PciFunction {
  const fn = new PciFunction(bus, device, 0, { vendorId: 0x1b36, deviceId: 0x000c, classCode: 0x060400 });
  fn.config[0x0e] = 0x01;
  const writable = (offset: number, mask: number[]) => mask.forEach((m, i) => (fn.writeMask[offset + i] = m));
  writable(0x18, [0xff, 0xff, 0xff]); // primary, secondary, subordinate bus
  writable(0x1c, [0xf0, 0xf0]); // I/O base, limit (bits 15:12)
  writable(0x20, [0xf0, 0xff, 0xf0, 0xff]); // memory base, limit (bits 31:20)
  writable(0x24, [0xf0, 0xff, 0xf0, 0xff]); // prefetchable base, limit
  writable(0x28, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // prefetchable upper 32 bits
  writable(0x30, [0xff, 0xff, 0xff, 0xff]); // I/O upper 16 bits
  fn.set16(0x1c, 0x0000);
  return fn;
}

function layout(bus: PciBus): void {
  bus.add(bridge(0, 2)); // gets bus 1, nothing behind it
  bus.add(bridge(0, 3)); // gets bus 2
  const below = bus.add(new PciFunction(2, 0, 0, { vendorId: 0x1234, deviceId: 0x0010, classCode: 0x020000 }));
  below.addBar({ index: 0, kind: "mem32", size: 0x1000, handler: new MemoryBackedBar(16) }); // leaves most of the 1 MiB window free
  below.addBar({ index: 1, kind: "io", size: 0x20, handler: new MemoryBackedBar(0x20) });
}

test("bridge windows cover the BARs assigned below them", async () => {
  const m = await deviceUp({ extraFunctions: layout });
  const b = m.bus.find(0, 3, 0)!;
  const below = m.bus.find(2, 0, 0)!;
  assert.equal(b.get8(0x19), 2, "secondary bus numbered by the scan");
  const memBase = BigInt(b.get16(0x20) & 0xfff0) << 16n;
  const memLimit = (BigInt(b.get16(0x22) & 0xfff0) << 16n) | 0xfffffn;
  const bar = below.barAddress(0);
  assert.ok(bar >= memBase && bar + 0x1000n - 1n <= memLimit, `BAR 0x${bar.toString(16)} inside 0x${memBase.toString(16)}-0x${memLimit.toString(16)}`);
  assert.ok(memBase >= 0xc0000000n && memLimit < 0xfc000000n);
  const ioBase = BigInt(b.get8(0x1c) & 0xf0) << 8n;
  const ioLimit = (BigInt(b.get8(0x1d) & 0xf0) << 8n) | 0xfffn;
  const port = below.barAddress(1);
  assert.ok(port >= ioBase && port + 0x20n - 1n <= ioLimit, `I/O BAR 0x${port.toString(16)} inside the window`);
  assert.ok(b.get16(0x24) > b.get16(0x26), "prefetchable window closed (base above limit)");
  assert.equal(b.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER), PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER);
  assert.equal(below.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 0, "no driver claimed the device below: it does not decode");
  assert.equal(m.logLines(/info pci: 00:03\.0 bridge windows bus=2 mem=0x/).length, 1);
  // Nothing outside the bridge may sit inside its windows (the bridge would claim it).
  for (const fn of m.bus.all()) {
    if (fn.bus !== 0) continue;
    for (const spec of fn.bars) {
      if (!spec) continue;
      const address = fn.barAddress(spec.index);
      const [low, high] = spec.kind === "io" ? [ioBase, ioLimit] : [memBase, memLimit];
      assert.ok(address + BigInt(spec.size) - 1n < low || address > high, `${fn.name} BAR${spec.index} at 0x${address.toString(16)} inside the bridge window`);
    }
  }
});

test("an empty bridge keeps its windows closed and decodes nothing", async () => {
  const m = await deviceUp({ extraFunctions: layout });
  const empty = m.bus.find(0, 2, 0)!;
  assert.ok(empty.get16(0x20) > empty.get16(0x22), "memory window closed");
  assert.ok(empty.get8(0x1c) > empty.get8(0x1d), "I/O window closed");
  assert.equal(empty.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 0);
  assert.equal(m.logLines(/00:02\.0 bridge windows bus=1 mem=closed io=closed/).length, 1);
  // The vsock device on bus 0 still came up and its BARs do not sit inside the other bridge's window.
  const b = m.bus.find(0, 3, 0)!;
  const memBase = BigInt(b.get16(0x20) & 0xfff0) << 16n;
  const memLimit = (BigInt(b.get16(0x22) & 0xfff0) << 16n) | 0xfffffn;
  const vsockBar = m.vsockFunction!.barAddress(4);
  assert.ok(vsockBar < memBase || vsockBar > memLimit);
});
