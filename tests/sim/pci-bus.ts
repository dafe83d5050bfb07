// The PCI bus: configuration mechanism #1 behind ports 0xCF8/0xCFC, and routing of MMIO and
// port accesses to the BARs the firmware assigned (only while the function's command register
// enables that space, as on real hardware). Buses other than 0 are reached only through bridges
// whose bus numbers cover them, and their BARs only through the bridges' windows.
import {
  AccessWidth,
  PCI_CONFIG_ADDRESS_PORT,
  PCI_CONFIG_DATA_PORT,
  PCI_CONFIG_ENABLE,
  allOnes,
} from "./pci-config";
import { BarHandler, PciConfigError, PciFunction } from "./pci-function";
import { inWindow, ioWindow, isBridge, memoryWindow, prefetchableWindow, secondaryBus, subordinateBus } from "./pci-bridge";

interface BarHit {
  fn: PciFunction;
  bar: number;
  handler: BarHandler;
  offset: number;
}

/** Which BAR an MMIO access reached (exit accounting classifies it by function and region). */
export type BarAccessObserver = (fn: PciFunction, bar: number, offset: number, write: boolean) => void;

export class PciBus {
  private readonly functions = new Map<number, PciFunction>();
  /** Last value written to CONFIG_ADDRESS (0xCF8). */
  configAddress = 0;
  /** Every config write as (function, offset, width, value), for tests that check the driver's sequence. */
  readonly configWrites: { bdf: string; offset: number; width: number; value: number }[] = [];
  /** Called for every MMIO access that reached a BAR, before the BAR handles it. */
  onMmioAccess: BarAccessObserver | null = null;

  static key(bus: number, device: number, fn: number): number {
    return (bus << 8) | (device << 3) | fn;
  }

  add(fn: PciFunction): PciFunction {
    const key = PciBus.key(fn.bus, fn.device, fn.fn);
    if (this.functions.has(key)) throw new PciConfigError(`${fn.name}: function exists`);
    this.functions.set(key, fn);
    this.updateMultifunction(fn.bus, fn.device);
    return fn;
  }

  /** Function 0 of a device carries the multi-function bit when the device has other functions. */
  private updateMultifunction(bus: number, device: number): void {
    const zero = this.find(bus, device, 0);
    if (!zero) return;
    let others = false;
    for (let f = 1; f < 8; f++) if (this.find(bus, device, f)) others = true;
    zero.setMultifunction(others);
  }

  find(bus: number, device: number, fn: number): PciFunction | undefined {
    return this.functions.get(PciBus.key(bus, device, fn));
  }

  all(): PciFunction[] {
    return [...this.functions.values()].sort((a, b) => PciBus.key(a.bus, a.device, a.fn) - PciBus.key(b.bus, b.device, b.fn));
  }

  // ---- configuration mechanism #1 ----
  private selected(): PciFunction | undefined {
    if ((this.configAddress & PCI_CONFIG_ENABLE) === 0) return undefined;
    const bus = (this.configAddress >>> 16) & 0xff;
    const device = (this.configAddress >>> 11) & 0x1f;
    const fn = (this.configAddress >>> 8) & 0x7;
    if (this.pathTo(bus) === null) return undefined;
    return this.find(bus, device, fn);
  }

  /** The bridges a cycle to `bus` passes, from bus 0 down; null when no bridge forwards to it. */
  pathTo(bus: number): PciFunction[] | null {
    const path: PciFunction[] = [];
    let current = 0;
    while (current !== bus && path.length < 32) {
      const next = this.all().find((f) => f.bus === current && isBridge(f) && secondaryBus(f) > current && secondaryBus(f) <= bus && bus <= subordinateBus(f));
      if (!next) return null;
      path.push(next);
      current = secondaryBus(next);
    }
    return current === bus ? path : null;
  }

  /** True when every bridge above `fn` forwards this access (space enabled, address in a window). */
  private forwarded(fn: PciFunction, address: bigint, width: number, io: boolean): boolean {
    if (fn.bus === 0) return true;
    const path = this.pathTo(fn.bus);
    if (!path) return false;
    return path.every((bridge) =>
      io
        ? bridge.ioEnabled && inWindow(ioWindow(bridge), address, width)
        : bridge.memoryEnabled && (inWindow(memoryWindow(bridge), address, width) || inWindow(prefetchableWindow(bridge), address, width)),
    );
  }

  /** Handles a port read if it belongs to the config mechanism; undefined otherwise. */
  configPortRead(port: number, width: 1 | 2 | 4): number | undefined {
    if (port === PCI_CONFIG_ADDRESS_PORT && width === 4) return this.configAddress >>> 0;
    if (port < PCI_CONFIG_DATA_PORT || port > PCI_CONFIG_DATA_PORT + 3) return undefined;
    const byte = port - PCI_CONFIG_DATA_PORT;
    if (byte + width > 4) return Number(allOnes(width));
    const fn = this.selected();
    if (!fn) return Number(allOnes(width));
    return fn.readConfig((this.configAddress & 0xfc) + byte, width);
  }

  configPortWrite(port: number, width: 1 | 2 | 4, value: number): boolean {
    if (port === PCI_CONFIG_ADDRESS_PORT && width === 4) {
      this.configAddress = value >>> 0;
      return true;
    }
    if (port < PCI_CONFIG_DATA_PORT || port > PCI_CONFIG_DATA_PORT + 3) return false;
    const byte = port - PCI_CONFIG_DATA_PORT;
    const fn = this.selected();
    if (!fn || byte + width > 4) return true; // absorbed, as on hardware
    const offset = (this.configAddress & 0xfc) + byte;
    this.configWrites.push({ bdf: fn.name, offset, width, value: value >>> 0 });
    fn.writeConfig(offset, width, value >>> 0);
    return true;
  }

  // ---- BAR routing ----
  private findBar(address: bigint, width: number, io: boolean): BarHit | undefined {
    for (const fn of this.functions.values()) {
      if (io ? !fn.ioEnabled : !fn.memoryEnabled) continue;
      for (const bar of fn.bars) {
        if (!bar || (bar.kind === "io") !== io) continue;
        const base = fn.barAddress(bar.index);
        if (base === 0n) continue; // never assigned
        if (address >= base && address + BigInt(width) <= base + BigInt(bar.size) && this.forwarded(fn, address, width, io)) {
          return { fn, bar: bar.index, handler: bar.handler, offset: Number(address - base) };
        }
      }
    }
    return undefined;
  }

  mmioRead(address: bigint, width: AccessWidth): bigint | undefined {
    const hit = this.findBar(address, width, false);
    if (!hit) return undefined;
    this.onMmioAccess?.(hit.fn, hit.bar, hit.offset, false);
    return hit.handler.read(hit.offset, width);
  }

  mmioWrite(address: bigint, width: AccessWidth, value: bigint): boolean {
    const hit = this.findBar(address, width, false);
    if (!hit) return false;
    this.onMmioAccess?.(hit.fn, hit.bar, hit.offset, true);
    hit.handler.write(hit.offset, width, value);
    return true;
  }

  ioBarRead(port: number, width: 1 | 2 | 4): number | undefined {
    const hit = this.findBar(BigInt(port), width, true);
    return hit ? Number(hit.handler.read(hit.offset, width)) : undefined;
  }

  ioBarWrite(port: number, width: 1 | 2 | 4, value: number): boolean {
    const hit = this.findBar(BigInt(port), width, true);
    if (hit) hit.handler.write(hit.offset, width, BigInt(value >>> 0));
    return hit !== undefined;
  }
}
