// A PCI-to-PCI bridge (type-1 header, PCI-to-PCI Bridge Architecture 1.2): bus numbers and the
// I/O, memory and prefetchable windows are driver-writable. The bus routes config cycles and BAR
// accesses through whatever bridge registers say, so any function with a type-1 header works.
import { PciFunction, PciIdentity } from "./pci-function";

export const PCI_HEADER_TYPE_BRIDGE = 0x01;
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_IO_BASE = 0x1c;
export const PCI_IO_LIMIT = 0x1d;
export const PCI_MEMORY_BASE = 0x20;
export const PCI_MEMORY_LIMIT = 0x22;
export const PCI_PREF_MEMORY_BASE = 0x24;
export const PCI_PREF_MEMORY_LIMIT = 0x26;
export const PCI_PREF_BASE_UPPER32 = 0x28;
export const PCI_PREF_LIMIT_UPPER32 = 0x2c;
export const PCI_IO_BASE_UPPER16 = 0x30;
export const PCI_IO_LIMIT_UPPER16 = 0x32;
const PREF_RANGE_TYPE_64 = 0x1;

/** QEMU's pci-bridge (1b36:0001); pcie-root-port is 1b36:000c. */
export const QEMU_PCI_BRIDGE: PciIdentity = { vendorId: 0x1b36, deviceId: 0x0001, classCode: 0x060400 };

export interface Window {
  base: bigint;
  limit: bigint; // inclusive; base > limit means closed
}

export function isBridge(fn: PciFunction): boolean {
  return (fn.get8(0x0e) & 0x7f) === PCI_HEADER_TYPE_BRIDGE;
}

export function secondaryBus(fn: PciFunction): number {
  return fn.get8(PCI_SECONDARY_BUS);
}

export function subordinateBus(fn: PciFunction): number {
  return fn.get8(PCI_SUBORDINATE_BUS);
}

export function ioWindow(fn: PciFunction): Window {
  const base = (BigInt(fn.get8(PCI_IO_BASE) & 0xf0) << 8n) | (BigInt(fn.get16(PCI_IO_BASE_UPPER16)) << 16n);
  const limit = (BigInt(fn.get8(PCI_IO_LIMIT) & 0xf0) << 8n) | 0xfffn | (BigInt(fn.get16(PCI_IO_LIMIT_UPPER16)) << 16n);
  return { base, limit };
}

export function memoryWindow(fn: PciFunction): Window {
  const base = BigInt(fn.get16(PCI_MEMORY_BASE) & 0xfff0) << 16n;
  const limit = (BigInt(fn.get16(PCI_MEMORY_LIMIT) & 0xfff0) << 16n) | 0xfffffn;
  return { base, limit };
}

export function prefetchableWindow(fn: PciFunction): Window {
  let base = BigInt(fn.get16(PCI_PREF_MEMORY_BASE) & 0xfff0) << 16n;
  let limit = (BigInt(fn.get16(PCI_PREF_MEMORY_LIMIT) & 0xfff0) << 16n) | 0xfffffn;
  if (fn.get8(PCI_PREF_MEMORY_BASE) & PREF_RANGE_TYPE_64) {
    base |= BigInt(fn.get32(PCI_PREF_BASE_UPPER32)) << 32n;
    limit |= BigInt(fn.get32(PCI_PREF_LIMIT_UPPER32)) << 32n;
  }
  return { base, limit };
}

export function inWindow(window: Window, address: bigint, length: number): boolean {
  return address >= window.base && address + BigInt(length) - 1n <= window.limit;
}

/** A bridge with reset values: bus numbers 0, every window closed, 64-bit prefetchable. */
export class PciBridge extends PciFunction {
  constructor(bus: number, device: number, fn = 0, identity: PciIdentity = QEMU_PCI_BRIDGE) {
    super(bus, device, fn, identity);
    this.config[0x0e] = PCI_HEADER_TYPE_BRIDGE;
    const writable = (offset: number, mask: number[]) => mask.forEach((m, i) => (this.writeMask[offset + i] = m));
    writable(PCI_PRIMARY_BUS, [0xff, 0xff, 0xff]);
    writable(PCI_IO_BASE, [0xf0, 0xf0]);
    writable(PCI_MEMORY_BASE, [0xf0, 0xff, 0xf0, 0xff]);
    writable(PCI_PREF_MEMORY_BASE, [0xf0, 0xff, 0xf0, 0xff]);
    writable(PCI_PREF_BASE_UPPER32, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    writable(PCI_IO_BASE_UPPER16, [0xff, 0xff, 0xff, 0xff]);
    this.config[PCI_PREF_MEMORY_BASE] = PREF_RANGE_TYPE_64;
    this.config[PCI_PREF_MEMORY_LIMIT] = PREF_RANGE_TYPE_64;
  }
}
