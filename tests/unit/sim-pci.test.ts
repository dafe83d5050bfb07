// The simulated PCI bus answers config cycles, BAR sizing and MMIO routing like q35 does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRig, ConfigPorts, RIG_BAR4_ADDRESS } from "../sim/test-driver";
import { PciBus } from "../sim/pci-bus";
import { MemoryBackedBar, PciFunction } from "../sim/pci-function";
import * as C from "../sim/pci-config";
import * as V from "../sim/virtio-pci";

function rig() {
  const r = createRig();
  return { ...r, cfg: new ConfigPorts(r.bus) };
}

test("q35 functions answer vendor:device, class and header type through 0xCF8/0xCFC", () => {
  const { cfg } = rig();
  const expect: [number, number, number, number, number][] = [
    [0x00, 0, 0x8086, 0x29c0, 0x060000],
    [0x01, 0, 0x1af4, 0x1053, 0x078000],
    [0x1f, 0, 0x8086, 0x2918, 0x060100],
    [0x1f, 2, 0x8086, 0x2922, 0x010601],
    [0x1f, 3, 0x8086, 0x2930, 0x0c0500],
  ];
  for (const [device, fn, vendor, id, cls] of expect) {
    const bdf: [number, number, number] = [0, device, fn];
    assert.equal(cfg.read(bdf, C.PCI_VENDOR_ID, 4), (id << 16) | vendor, `${device}.${fn} dword 0`);
    assert.equal(cfg.read(bdf, C.PCI_VENDOR_ID, 2), vendor);
    assert.equal(cfg.read(bdf, C.PCI_DEVICE_ID, 2), id);
    assert.equal(cfg.read(bdf, C.PCI_DEVICE_ID + 1, 1), id >> 8, "byte access at an odd offset");
    assert.equal(cfg.read(bdf, C.PCI_REVISION, 4) >>> 8, cls);
  }
  assert.equal(cfg.read([0, 0x1f, 0], C.PCI_HEADER_TYPE, 1), 0x80, "LPC is multi-function");
  assert.equal(cfg.read([0, 0, 0], C.PCI_HEADER_TYPE, 1), 0x00);
  assert.equal(cfg.read([0, 1, 0], C.PCI_REVISION, 1), 1, "modern virtio revision");
  assert.equal(cfg.read([0, 1, 0], C.PCI_SUBSYSTEM_ID, 2), 0x13);
  assert.equal(cfg.read([0, 1, 0], C.PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
});

test("absent functions and a cleared enable bit read all ones", () => {
  const { bus, cfg } = rig();
  assert.equal(cfg.read([0, 2, 0], 0, 4), 0xffffffff);
  assert.equal(cfg.read([0, 0x1f, 1], 0, 2), 0xffff);
  assert.equal(cfg.read([1, 0, 0], 0, 1), 0xff);
  bus.configPortWrite(C.PCI_CONFIG_ADDRESS_PORT, 4, 0x00000000); // enable bit clear
  assert.equal(bus.configPortRead(C.PCI_CONFIG_DATA_PORT, 4), 0xffffffff);
  bus.configPortWrite(C.PCI_CONFIG_ADDRESS_PORT, 4, 0x80000800);
  assert.equal(bus.configPortRead(C.PCI_CONFIG_ADDRESS_PORT, 4), 0x80000800, "address register reads back");
});

test("BAR sizing: 64-bit memory BAR, 32-bit memory BAR and I/O BAR", () => {
  const { cfg } = rig();
  const vsock: [number, number, number] = [0, 1, 0];
  assert.equal(cfg.read(vsock, C.PCI_BAR0 + 16, 4), 0x0c, "BAR4: 64-bit prefetchable, unassigned");
  cfg.write(vsock, C.PCI_BAR0 + 16, 4, 0xffffffff);
  cfg.write(vsock, C.PCI_BAR0 + 20, 4, 0xffffffff);
  assert.equal(cfg.read(vsock, C.PCI_BAR0 + 16, 4), 0xffffc00c, "16 KiB size mask with type bits");
  assert.equal(cfg.read(vsock, C.PCI_BAR0 + 20, 4), 0xffffffff, "upper half fully writable");
  cfg.write(vsock, C.PCI_BAR0 + 4, 4, 0xffffffff);
  assert.equal(cfg.read(vsock, C.PCI_BAR0 + 4, 4), 0xfffff000, "BAR1: 4 KiB, 32-bit");
  cfg.write(vsock, C.PCI_BAR0, 4, 0xffffffff);
  assert.equal(cfg.read(vsock, C.PCI_BAR0, 4), 0, "BAR0 does not exist");
  const ahci: [number, number, number] = [0, 0x1f, 2];
  cfg.write(ahci, C.PCI_BAR0 + 16, 4, 0xffffffff);
  assert.equal(cfg.read(ahci, C.PCI_BAR0 + 16, 4), 0xffffffe1, "32-byte I/O BAR");
  cfg.write(ahci, C.PCI_BAR0 + 16, 4, 0xc040);
  assert.equal(cfg.read(ahci, C.PCI_BAR0 + 16, 4), 0xc041);
  cfg.write(vsock, C.PCI_BAR0 + 16, 4, 0x12345678);
  cfg.write(vsock, C.PCI_BAR0 + 20, 4, 0x1);
  assert.equal(cfg.read(vsock, C.PCI_BAR0 + 16, 4), 0x1234400c, "low bits below the size are read-only");
});

test("MMIO reaches a BAR only at its assigned address and while memory space is enabled", () => {
  const { bus, cfg } = rig();
  const vsock: [number, number, number] = [0, 1, 0];
  cfg.write(vsock, C.PCI_BAR0 + 16, 4, Number(RIG_BAR4_ADDRESS));
  cfg.write(vsock, C.PCI_BAR0 + 20, 4, 1); // 0x1_e000_0000
  const base = 0x1e0000000n;
  assert.equal(bus.mmioRead(base + BigInt(V.COMMON_NUMQ), 2), undefined, "memory space still disabled");
  cfg.write(vsock, C.PCI_COMMAND, 2, C.PCI_COMMAND_MEMORY);
  assert.equal(cfg.read(vsock, C.PCI_COMMAND, 2), C.PCI_COMMAND_MEMORY);
  assert.equal(bus.mmioRead(base + BigInt(V.COMMON_NUMQ), 2), 3n, "num_queues through the 64-bit BAR");
  assert.equal(bus.mmioRead(RIG_BAR4_ADDRESS + BigInt(V.COMMON_NUMQ), 2), undefined, "not at the 32-bit alias");
  assert.equal(bus.mmioRead(base + 0x4000n, 4), undefined, "past the end of the BAR");
  cfg.write(vsock, C.PCI_COMMAND, 2, 0);
  assert.equal(bus.mmioRead(base + BigInt(V.COMMON_NUMQ), 2), undefined);
});

test("I/O BARs are routed when I/O space is enabled", () => {
  const bus = new PciBus();
  const fn = new PciFunction(0, 3, 0, { vendorId: 0x1234, deviceId: 0x5678, classCode: 0xff0000 });
  const region = new MemoryBackedBar(0x10);
  fn.addBar({ index: 0, kind: "io", size: 0x10, handler: region });
  bus.add(fn);
  const cfg = new ConfigPorts(bus);
  cfg.write([0, 3, 0], C.PCI_BAR0, 4, 0xd000);
  assert.equal(bus.ioBarWrite(0xd004, 2, 0xbeef), false, "I/O space disabled");
  cfg.write([0, 3, 0], C.PCI_COMMAND, 2, C.PCI_COMMAND_IO);
  assert.equal(bus.ioBarWrite(0xd004, 2, 0xbeef), true);
  assert.equal(region.bytes[4], 0xef);
  assert.equal(bus.ioBarRead(0xd004, 4), 0xbeef);
  assert.equal(bus.ioBarRead(0xd010, 1), undefined);
});

test("virtio function: capability list in QEMU's order with the right types, BARs and lengths", () => {
  const { fn, cfg } = rig();
  const vsock: [number, number, number] = [0, 1, 0];
  assert.ok(cfg.read(vsock, C.PCI_STATUS, 2) & C.PCI_STATUS_CAP_LIST);
  const caps = fn.capabilities();
  assert.deepEqual(caps.map((c) => c.offset), [0x98, 0x84, 0x70, 0x60, 0x50, 0x40]);
  assert.equal(caps[0].id, C.PCI_CAP_ID_MSIX);
  const vendor = caps.slice(1).map((c) => ({
    id: cfg.read(vsock, c.offset, 1),
    len: cfg.read(vsock, c.offset + 2, 1),
    type: cfg.read(vsock, c.offset + 3, 1),
    bar: cfg.read(vsock, c.offset + 4, 1),
    offset: cfg.read(vsock, c.offset + 8, 4),
    length: cfg.read(vsock, c.offset + 12, 4),
  }));
  assert.deepEqual(vendor, [
    { id: 9, len: 20, type: V.VIRTIO_PCI_CAP_PCI_CFG, bar: 0, offset: 0, length: 0 },
    { id: 9, len: 20, type: V.VIRTIO_PCI_CAP_NOTIFY_CFG, bar: 4, offset: 0x3000, length: 0x1000 },
    { id: 9, len: 16, type: V.VIRTIO_PCI_CAP_DEVICE_CFG, bar: 4, offset: 0x2000, length: 0x1000 },
    { id: 9, len: 16, type: V.VIRTIO_PCI_CAP_ISR_CFG, bar: 4, offset: 0x1000, length: 0x1000 },
    { id: 9, len: 16, type: V.VIRTIO_PCI_CAP_COMMON_CFG, bar: 4, offset: 0, length: 0x1000 },
  ]);
  assert.equal(cfg.read(vsock, 0x70 + 16, 4), 4, "notify_off_multiplier");
  assert.equal(cfg.read(vsock, 0x98 + 2, 2), 2, "MSI-X table size 3 (encoded N-1)");
  assert.equal(cfg.read(vsock, 0x98 + 4, 4), 1, "MSI-X table in BAR1 at 0");
});

test("PCI_CFG capability is a window into BAR4 through config space", () => {
  const { cfg } = rig();
  const vsock: [number, number, number] = [0, 1, 0];
  cfg.write(vsock, 0x84 + 4, 1, 4); // bar
  cfg.write(vsock, 0x84 + 8, 4, V.COMMON_NUMQ); // offset
  cfg.write(vsock, 0x84 + 12, 4, 2); // length
  assert.equal(cfg.read(vsock, 0x84 + 16, 2), 3, "num_queues read without any BAR assigned");
  cfg.write(vsock, 0x84 + 8, 4, V.COMMON_STATUS);
  cfg.write(vsock, 0x84 + 12, 4, 1);
  cfg.write(vsock, 0x84 + 16, 1, V.VIRTIO_STATUS_ACKNOWLEDGE);
  assert.equal(cfg.read(vsock, 0x84 + 16, 1), V.VIRTIO_STATUS_ACKNOWLEDGE, "status written through the window");
});

test("extra functions go on the bus and function 0 becomes multi-function", () => {
  const bus = new PciBus();
  bus.add(new PciFunction(0, 5, 0, { vendorId: 0x1b36, deviceId: 0x0001, classCode: 0x060400 }));
  const cfg = new ConfigPorts(bus);
  assert.equal(cfg.read([0, 5, 0], C.PCI_HEADER_TYPE, 1), 0);
  bus.add(new PciFunction(0, 5, 4, { vendorId: 0x1b36, deviceId: 0x0002, classCode: 0x070002 }));
  assert.equal(cfg.read([0, 5, 0], C.PCI_HEADER_TYPE, 1), 0x80);
  assert.equal(cfg.read([0, 5, 4], C.PCI_DEVICE_ID, 2), 2);
  assert.throws(() => bus.add(new PciFunction(0, 5, 4, { vendorId: 1, deviceId: 1, classCode: 0 })), /function exists/);
});

test("bridges: a bus behind one is reachable only through its bus numbers, BARs only through its windows", async () => {
  const { PciBridge, PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS, PCI_MEMORY_BASE, PCI_MEMORY_LIMIT } = await import("../sim/pci-bridge");
  const bus = new PciBus();
  const bridge = bus.add(new PciBridge(0, 2));
  const below = bus.add(new PciFunction(1, 0, 0, { vendorId: 0x1234, deviceId: 0x0010, classCode: 0x020000 }));
  const region = new MemoryBackedBar(0x1000);
  below.addBar({ index: 0, kind: "mem32", size: 0x1000, handler: region });
  const cfg = new ConfigPorts(bus);
  assert.equal(cfg.read([0, 2, 0], C.PCI_HEADER_TYPE, 1), 0x01);
  assert.equal(cfg.read([1, 0, 0], C.PCI_VENDOR_ID, 2), 0xffff, "bus numbers not set yet");
  cfg.write([0, 2, 0], PCI_SECONDARY_BUS, 1, 1);
  cfg.write([0, 2, 0], PCI_SUBORDINATE_BUS, 1, 1);
  assert.equal(cfg.read([1, 0, 0], C.PCI_VENDOR_ID, 2), 0x1234);
  assert.equal(cfg.read([2, 0, 0], C.PCI_VENDOR_ID, 2), 0xffff);
  cfg.write([1, 0, 0], C.PCI_BAR0, 4, 0xc0100000);
  cfg.write([1, 0, 0], C.PCI_COMMAND, 2, C.PCI_COMMAND_MEMORY);
  assert.equal(bus.mmioRead(0xc0100000n, 4), undefined, "window closed, bridge decoding off");
  cfg.write([0, 2, 0], PCI_MEMORY_BASE, 2, 0xc010);
  cfg.write([0, 2, 0], PCI_MEMORY_LIMIT, 2, 0xc010);
  assert.equal(bus.mmioRead(0xc0100000n, 4), undefined, "bridge memory space still disabled");
  cfg.write([0, 2, 0], C.PCI_COMMAND, 2, C.PCI_COMMAND_MEMORY);
  region.bytes[0] = 0x5a;
  assert.equal(bus.mmioRead(0xc0100000n, 1), 0x5an);
  cfg.write([0, 2, 0], PCI_MEMORY_LIMIT, 2, 0xc000);
  assert.equal(bus.mmioRead(0xc0100000n, 1), undefined, "outside the window again");
  assert.equal(bridge.name, "00:02.0");
});
