// BAR sizing and assignment (assembly/pci/resources.ts): nothing ran before the firmware, so it
// sizes every BAR and assigns naturally aligned addresses from its windows; decoding goes on only
// for the function a driver claims.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PciBus } from "../sim/pci-bus";
import { PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from "../sim/pci-config";
import { MemoryBackedBar, PciFunction } from "../sim/pci-function";
import { deviceUp } from "./device-harness";

const MEMORY_WINDOW = [0xc0000000n, 0xfc000000n];
const IO_WINDOW = [0xc000n, 0x10000n];

function extraDevices(bus: PciBus): void {
  // 2 GiB cannot fit in the 960 MiB window: skipped, memory decoding stays off for this function.
  const huge = bus.add(new PciFunction(0, 5, 0, { vendorId: 0x1234, deviceId: 0x0001, classCode: 0x030000 }));
  huge.addBar({ index: 0, kind: "mem32", size: 0x80000000, handler: new MemoryBackedBar(16) });
  huge.addBar({ index: 2, kind: "io", size: 0x100, handler: new MemoryBackedBar(0x100) });
  // A 256 MiB 64-bit BAR (two slots) and a small one after it.
  const big = bus.add(new PciFunction(0, 6, 0, { vendorId: 0x1234, deviceId: 0x0002, classCode: 0x020000 }));
  big.addBar({ index: 0, kind: "mem64", size: 0x10000000, prefetchable: true, handler: new MemoryBackedBar(16) });
  big.addBar({ index: 2, kind: "mem32", size: 0x100, handler: new MemoryBackedBar(0x100) });
}

test("every BAR gets a naturally aligned, non-overlapping address inside its window", async () => {
  const m = await deviceUp({ extraFunctions: extraDevices });
  const assigned: { name: string; start: bigint; end: bigint; io: boolean }[] = [];
  for (const fn of m.bus.all()) {
    for (const bar of fn.bars) {
      if (!bar) continue;
      const address = fn.barAddress(bar.index);
      if (fn.device === 5 && bar.index === 0) {
        assert.equal(address, 0n, "the BAR that does not fit stays unassigned");
        continue;
      }
      const size = BigInt(bar.size);
      const name = `${fn.name} BAR${bar.index}`;
      assert.notEqual(address, 0n, `${name} assigned`);
      assert.equal(address % size, 0n, `${name} at 0x${address.toString(16)} aligned to its size 0x${size.toString(16)}`);
      const [low, high] = bar.kind === "io" ? IO_WINDOW : MEMORY_WINDOW;
      assert.ok(address >= low && address + size <= high, `${name} inside its window`);
      assigned.push({ name, start: address, end: address + size, io: bar.kind === "io" });
    }
  }
  for (const a of assigned) {
    for (const b of assigned) {
      if (a === b || a.io !== b.io) continue;
      assert.ok(a.end <= b.start || b.end <= a.start, `${a.name} overlaps ${b.name}`);
    }
  }
  // The 64-bit BAR took both registers: BAR1 (its upper half) holds the high bits, here 0.
  const big = m.bus.find(0, 6, 0)!;
  assert.equal(big.barAddress(0) >> 32n, 0n);
  assert.equal(big.barAddress(0) % 0x10000000n, 0n);
  assert.equal(m.logLines(/warn pci: 00:05\.0 bar=0 mem32 does not fit: skipped size=0x80000000/).length, 1);
  assert.equal(m.logLines(/info pci: 00:01\.0 bar=4 mem64 pref assigned addr=0x[0-9a-f]+ size=0x4000/).length, 1);
  assert.equal(m.logLines(/pci: resources assigned bars=8 skipped=1/).length, 1);
});

test("command register: decoding and bus mastering only for the driven device, and only for assigned spaces", async () => {
  const m = await deviceUp({ extraFunctions: extraDevices });
  const vsock = m.vsockFunction!;
  assert.equal(vsock.command & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
  assert.equal(vsock.command & PCI_COMMAND_MASTER, PCI_COMMAND_MASTER);
  assert.equal(vsock.command & PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_INTX_DISABLE);
  assert.equal(vsock.command & PCI_COMMAND_IO, 0, "no I/O BAR, no I/O decoding");
  // Idle functions keep their addresses but never decode or DMA.
  const ahci = m.bus.find(0, 0x1f, 2)!;
  assert.notEqual(ahci.barAddress(5), 0n, "an idle device still gets its BARs assigned");
  assert.equal(ahci.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER), 0, "an idle device never decodes or DMAs");
  const huge = m.bus.find(0, 5, 0)!;
  assert.equal(huge.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 0);
  assert.equal(m.logLines(/warn pci: 00:05\.0 left with decoding off: memory/).length, 1);
  const host = m.bus.find(0, 0, 0)!;
  assert.equal(host.command & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER), 0, "no BARs: nothing enabled");
  // The one config write that claims the device turns on decoding and bus mastering together.
  const commandWrites = m.bus.configWrites.filter((w) => w.bdf === "00:01.0" && w.offset === 0x04);
  assert.equal(commandWrites.length, 1, "one command write for the driven device");
});

test("decoding is off while BARs are sized (all-ones probes never decode)", async () => {
  const m = await deviceUp();
  const writes = m.bus.configWrites.filter((w) => w.bdf === "00:01.0");
  let memoryOn = false;
  for (const w of writes) {
    if (w.offset === 0x04 && w.width === 2) memoryOn = (w.value & PCI_COMMAND_MEMORY) !== 0;
    if (w.offset >= 0x10 && w.offset < 0x28 && w.value === 0xffffffff) {
      assert.equal(memoryOn, false, `sizing write to 0x${w.offset.toString(16)} with memory decoding on`);
    }
  }
  assert.ok(writes.some((w) => w.offset === 0x20 && w.value === 0xffffffff), "BAR4 was sized");
});
