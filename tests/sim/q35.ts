// The functions QEMU's q35 machine (with -nodefaults) puts on bus 0: the MCH host bridge and the
// ICH9 LPC / AHCI / SMBus functions at 00:1f. Identities as QEMU 7.2 reports them.
import { MemoryBackedBar, PciFunction } from "./pci-function";
import { PciBus } from "./pci-bus";

const INTEL = 0x8086;
const QEMU_SUBSYSTEM_VENDOR = 0x1af4;
const QEMU_SUBSYSTEM = 0x1100;

export const Q35_HOST_BRIDGE = { vendorId: INTEL, deviceId: 0x29c0, classCode: 0x060000 };
export const ICH9_LPC = { vendorId: INTEL, deviceId: 0x2918, classCode: 0x060100, revision: 2 };
export const ICH9_AHCI = { vendorId: INTEL, deviceId: 0x2922, classCode: 0x010601, revision: 2, interruptPin: 1 };
export const ICH9_SMBUS = { vendorId: INTEL, deviceId: 0x2930, classCode: 0x0c0500, revision: 2, interruptPin: 2 };

function qemuIdentity<T extends object>(identity: T) {
  return { ...identity, subsystemVendorId: QEMU_SUBSYSTEM_VENDOR, subsystemId: QEMU_SUBSYSTEM };
}

// MCH PCIEXBAR (config 0x60, 64 bits): bit 0 enables the ECAM window, bits 2:1 its length (0: 256
// MiB), the base is 256 MiB-aligned. QEMU resets it to 0xb0000000, disabled.
export const MCH_PCIEXBAR = 0x60;
const PCIEXBAR_RESET = 0xb0000000;
const PCIEXBAR_LENGTH_BYTES = [256n << 20n, 128n << 20n, 64n << 20n];

/** q35's host bridge: decodes an ECAM window on `bus` once PCIEXBAR is enabled. */
export class Q35HostBridge extends PciFunction {
  constructor(private readonly pciBus: PciBus) {
    super(0, 0, 0, qemuIdentity(Q35_HOST_BRIDGE));
    this.set32(MCH_PCIEXBAR, PCIEXBAR_RESET);
    for (let i = 0; i < 8; i++) this.writeMask[MCH_PCIEXBAR + i] = i === 0 ? 0x07 : i === 3 ? 0xf0 : i >= 4 ? 0xff : 0;
  }

  override writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    super.writeConfig(offset, width, value);
    if (offset + width <= MCH_PCIEXBAR || offset >= MCH_PCIEXBAR + 8) return;
    const low = this.get32(MCH_PCIEXBAR);
    const length = PCIEXBAR_LENGTH_BYTES[(low >> 1) & 3];
    const base = (BigInt(this.get32(MCH_PCIEXBAR + 4)) << 32n) | BigInt((low & 0xf0000000) >>> 0);
    this.pciBus.ecam = (low & 1) !== 0 && length !== undefined ? { base, size: length } : null;
  }
}

/** Adds 00:00.0, 00:1f.0, 00:1f.2 and 00:1f.3 to `bus`. */
export function addQ35Functions(bus: PciBus): void {
  bus.add(new Q35HostBridge(bus));
  bus.add(new PciFunction(0, 0x1f, 0, qemuIdentity(ICH9_LPC)));
  const ahci = bus.add(new PciFunction(0, 0x1f, 2, qemuIdentity(ICH9_AHCI)));
  ahci.addBar({ index: 4, kind: "io", size: 0x20, handler: new MemoryBackedBar(0x20) });
  ahci.addBar({ index: 5, kind: "mem32", size: 0x1000, handler: new MemoryBackedBar(0x1000) });
  const smbus = bus.add(new PciFunction(0, 0x1f, 3, qemuIdentity(ICH9_SMBUS)));
  smbus.addBar({ index: 4, kind: "io", size: 0x40, handler: new MemoryBackedBar(0x40) });
}
