// MSI-X (PCI Local Bus 3.0, 6.8.2): the one interrupt we take. Table entry 0 of a function is
// pointed at the local APIC of CPU 0 with the vector the platform handles, unmasked, and MSI-X is
// enabled. The device then signals entry 0 for whatever it routes there (virtio: queue vectors).
import { capabilityId, firstCapability, MAX_CAPABILITIES, nextCapability } from "./capability-list";
import { configRead32, configWrite16 } from "./config";
import { barAddress, barSize, isMemoryBar } from "./resources";
import { PciFunction } from "./scan";
import { mmioRead32, mmioWrite32 } from "../platform/imports";

export const PCI_CAP_ID_MSIX: u32 = 0x11;
const MSIX_MESSAGE_CONTROL: u32 = 2; // le16: table size - 1 (10:0), function mask (14), enable (15)
const MSIX_TABLE: u32 = 4; // le32: BIR (2:0), offset (31:3)
const MSIX_ENABLE: u32 = 1 << 15;
const MSIX_FUNCTION_MASK: u32 = 1 << 14;
const MSIX_TABLE_SIZE_MASK: u32 = 0x7ff;
const MSIX_BIR_MASK: u32 = 7;

// One table entry: message address (low, high), message data, vector control (bit 0: masked).
const ENTRY_ADDRESS_LOW: u64 = 0;
const ENTRY_ADDRESS_HIGH: u64 = 4;
const ENTRY_DATA: u64 = 8;
const ENTRY_VECTOR_CONTROL: u64 = 12;
const ENTRY_SIZE: u64 = 16;
const ENTRY_MASKED: u32 = 1;

// Intel SDM 11.11.1: 0xFEE in 31:20, destination APIC id 0 in 19:12, no redirection hint,
// physical destination mode. The data is the vector with fixed delivery, edge triggered.
export const MSI_ADDRESS_CPU0: u32 = 0xfee00000;

// Why entry 0 could not be used (0: it is routed).
export const MSIX_OK: i32 = 0;
export const MSIX_NO_CAPABILITY: i32 = 1;
export const MSIX_TABLE_OUTSIDE_BAR: i32 = 2;
export const MSIX_NO_VECTOR: i32 = 3; // the platform has no interrupt handler to offer

export function msixErrorName(error: i32): string {
  if (error == MSIX_NO_CAPABILITY) return "no MSI-X capability";
  if (error == MSIX_TABLE_OUTSIDE_BAR) return "MSI-X table outside an assigned memory BAR";
  if (error == MSIX_NO_VECTOR) return "no interrupt vector from the platform";
  return "none";
}

// Config offset of the MSI-X capability, 0 when there is none. The header dword carries the
// message control too, so finding it costs no extra access.
let foundControl: u32 = 0; // message control of the capability found last
export function findMsixCapability(f: PciFunction): u32 {
  // No status check first: without a list the pointer reads 0 (and any value is bounded below).
  let at = firstCapability(f);
  for (let seen = 0; at != 0 && seen < MAX_CAPABILITIES; seen++) {
    const header = configRead32(f.address, at);
    if (capabilityId(header) == PCI_CAP_ID_MSIX) {
      foundControl = header >>> 16;
      return at;
    }
    at = nextCapability(header);
  }
  return 0;
}

// Physical address of table entry 0, or 0 when the table is not inside an assigned memory BAR.
function tableEntry0(f: PciFunction, at: u32): u64 {
  const table = configRead32(f.address, at + MSIX_TABLE);
  const bir = <i32>(table & MSIX_BIR_MASK);
  const offset = <u64>(table & ~MSIX_BIR_MASK);
  if (bir > 5) return 0;
  if (!isMemoryBar(f, bir)) return 0;
  if (offset + ENTRY_SIZE > barSize(f, bir)) return 0;
  return barAddress(f, bir) + offset;
}

// Points entry 0 at CPU 0 with `vector`, unmasks it and enables MSI-X (function mask clear).
// Entries other than 0 stay masked, as they are after reset.
export function msixRouteEntry0(f: PciFunction, vector: u32): i32 {
  if (vector == 0) return MSIX_NO_VECTOR;
  const at = findMsixCapability(f);
  if (at == 0) return MSIX_NO_CAPABILITY;
  const entry = tableEntry0(f, at);
  if (entry == 0) return MSIX_TABLE_OUTSIDE_BAR;
  const control = foundControl;
  // Entry 0 is written while it is masked (and before MSI-X is enabled, if it was not yet).
  mmioWrite32(entry + ENTRY_VECTOR_CONTROL, ENTRY_MASKED);
  mmioWrite32(entry + ENTRY_ADDRESS_LOW, MSI_ADDRESS_CPU0);
  mmioWrite32(entry + ENTRY_ADDRESS_HIGH, 0);
  mmioWrite32(entry + ENTRY_DATA, vector & 0xff);
  mmioWrite32(entry + ENTRY_VECTOR_CONTROL, 0);
  configWrite16(f.address, at + MSIX_MESSAGE_CONTROL, (control | MSIX_ENABLE) & ~MSIX_FUNCTION_MASK);
  return MSIX_OK;
}

// MSI-X off again (the device fell back to polling): no message is sent at all.
export function msixDisable(f: PciFunction): void {
  const at = findMsixCapability(f);
  if (at == 0) return;
  configWrite16(f.address, at + MSIX_MESSAGE_CONTROL, foundControl & ~MSIX_ENABLE);
}

// How many table entries the function has (0: no MSI-X), for logs and tests.
export function msixTableSize(f: PciFunction): u32 {
  const at = findMsixCapability(f);
  return at == 0 ? 0 : (foundControl & MSIX_TABLE_SIZE_MASK) + 1;
}

// Whether entry 0 is unmasked (tests read the table back through this).
export function msixEntry0Masked(f: PciFunction): bool {
  const at = findMsixCapability(f);
  if (at == 0) return true;
  const entry = tableEntry0(f, at);
  return entry == 0 || (mmioRead32(entry + ENTRY_VECTOR_CONTROL) & ENTRY_MASKED) != 0;
}
