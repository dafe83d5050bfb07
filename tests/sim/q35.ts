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

/** Adds 00:00.0, 00:1f.0, 00:1f.2 and 00:1f.3 to `bus`. */
export function addQ35Functions(bus: PciBus): void {
  bus.add(new PciFunction(0, 0, 0, qemuIdentity(Q35_HOST_BRIDGE)));
  bus.add(new PciFunction(0, 0x1f, 0, qemuIdentity(ICH9_LPC)));
  const ahci = bus.add(new PciFunction(0, 0x1f, 2, qemuIdentity(ICH9_AHCI)));
  ahci.addBar({ index: 4, kind: "io", size: 0x20, handler: new MemoryBackedBar(0x20) });
  ahci.addBar({ index: 5, kind: "mem32", size: 0x1000, handler: new MemoryBackedBar(0x1000) });
  const smbus = bus.add(new PciFunction(0, 0x1f, 3, qemuIdentity(ICH9_SMBUS)));
  smbus.addBar({ index: 4, kind: "io", size: 0x40, handler: new MemoryBackedBar(0x40) });
}
