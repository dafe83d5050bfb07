// Names from the PCI Local Bus 3.0 spec for the simulated bus (same names as assembly/pci/config.ts).
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 1 << 0;
export const PCI_COMMAND_MEMORY = 1 << 1;
export const PCI_COMMAND_MASTER = 1 << 2;
export const PCI_COMMAND_PARITY = 1 << 6;
export const PCI_COMMAND_SERR = 1 << 8;
export const PCI_COMMAND_INTX_DISABLE = 1 << 10;
export const PCI_STATUS_CAP_LIST = 1 << 4;
export const PCI_HEADER_MULTIFUNCTION = 0x80;

export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;

export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_MSIX = 0x11;

/** The legacy configuration mechanism #1 ports. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
export const PCI_CONFIG_ENABLE = 0x80000000;

import type { AccessWidth } from "../../tools/vsock-model/virtio-device";
export type { AccessWidth };

/** "bb:dd.f" as lspci and the firmware log print it. */
export function formatBdf(bus: number, device: number, fn: number): string {
  const hex = (v: number, w: number) => v.toString(16).padStart(w, "0");
  return `${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
}

/** Value of all ones for an access width (what a read of nothing returns). */
export function allOnes(width: AccessWidth): bigint {
  return (1n << BigInt(width * 8)) - 1n;
}
