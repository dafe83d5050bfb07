// Finding a virtio device on the PCI bus and opening its modern transport: the function by vendor
// and device id, its BARs assigned and decoding, its virtio capabilities read and checked.
// Device drivers (vsock-device/) start here and then negotiate (bring-up.ts).
import { logBdf } from "../pci/bdf-log";
import { pciAssignResources, pciEnableDevice, pciResourcesAssigned } from "../pci/resources";
import { findPciFunction, PciFunction } from "../pci/scan";
import { LEVEL_ERROR, LEVEL_INFO, logBegin, logEnd, logHex, logStr } from "../platform/log";
import { VIRTIO_PCI_VENDOR, VirtioError } from "./constants";
import { readVirtioCapabilities, VirtioPciCapabilities } from "./pci-capabilities";
import { PciTransport } from "./pci-transport";

// The modern id (0x1040 + device type) first, then the transitional one.
export function findVirtioFunction(modernId: u32, transitionalId: u32): PciFunction | null {
  const modern = findPciFunction(VIRTIO_PCI_VENDOR, modernId);
  if (modern != null) return modern;
  return findPciFunction(VIRTIO_PCI_VENDOR, transitionalId);
}

function logFound(f: PciFunction, subsystem: string): void {
  if (logBegin(LEVEL_INFO, subsystem)) {
    logStr("device found ");
    logBdf(f.address);
    logStr(" ");
    logHex(f.vendorId, 4);
    logStr(":");
    logHex(f.deviceId, 4);
    logEnd();
  }
}

// The function's transport, or null (logged under `subsystem`) when its virtio structures are
// missing or unusable. Assigns the bus's BARs first if nothing has yet.
export function openPciTransport(f: PciFunction, subsystem: string): PciTransport | null {
  logFound(f, subsystem);
  if (!pciResourcesAssigned()) pciAssignResources();
  pciEnableDevice(f);
  const caps = new VirtioPciCapabilities();
  if (readVirtioCapabilities(f, caps) != VirtioError.None) {
    if (logBegin(LEVEL_ERROR, subsystem)) {
      logStr("cannot drive the device: no usable virtio structures");
      logEnd();
    }
    return null;
  }
  return new PciTransport(caps, f);
}
