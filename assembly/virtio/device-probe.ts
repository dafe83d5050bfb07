// Where a device driver's transport comes from: a virtio-mmio window the command line names,
// else the PCI function by id, else QEMU microvm's window probed for the magic value. The driver
// gets a VirtioTransport either way.
import { openMmioTransport, mmioDevicesNamed, probeMicrovmWindow } from "./mmio-probe";
import { findVirtioFunction, openPciTransport } from "./pci-probe";
import { VirtioTransport } from "./transport";

export function openVirtioTransport(deviceType: u32, pciModernId: u32, pciTransitionalId: u32, subsystem: string): VirtioTransport | null {
  const mmio = openMmioTransport(deviceType, subsystem);
  if (mmio != null) return mmio;
  if (mmioDevicesNamed().length != 0) return null; // the machine has said what it has
  const f = findVirtioFunction(pciModernId, pciTransitionalId);
  if (f != null) return openPciTransport(f, subsystem);
  return probeMicrovmWindow(deviceType, subsystem);
}
