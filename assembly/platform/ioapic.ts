// The I/O APIC (Intel 82093AA) at its architectural address: routes one interrupt line (GSI) to a
// vector of the boot CPU's local APIC. Used by transports whose devices raise a wire, not an MSI
// (virtio-mmio on microvm, Firecracker). Registers are reached indirectly: IOREGSEL, then IOWIN.
import { mmioRead32, mmioWrite32 } from "./imports";

const IOAPIC_BASE: u64 = 0xfec00000;
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const IOAPIC_VERSION: u32 = 0x01; // bits 16-23: the highest redirection entry
const IOAPIC_REDIRECTION: u32 = 0x10; // entry n: 0x10 + 2n (low word), 0x11 + 2n (high word)
const LAPIC_ID: u64 = 0xfee00020; // bits 24-31: this CPU's APIC id
const ENTRY_MASKED: u32 = 1 << 16;

function readRegister(register: u32): u32 {
  mmioWrite32(IOAPIC_BASE + IOREGSEL, register);
  return mmioRead32(IOAPIC_BASE + IOWIN);
}

function writeRegister(register: u32, value: u32): void {
  mmioWrite32(IOAPIC_BASE + IOREGSEL, register);
  mmioWrite32(IOAPIC_BASE + IOWIN, value);
}

let lines: i32 = -1; // read once: each register access is two exits

// How many lines this I/O APIC has (0: none answers at the address).
export function ioapicLines(): u32 {
  if (lines < 0) {
    const version = readRegister(IOAPIC_VERSION);
    lines = version == 0xffffffff ? 0 : <i32>((version >> 16) & 0xff) + 1;
  }
  return <u32>lines;
}

// Line `gsi` -> `vector` on this CPU: fixed delivery, physical destination, active high, edge
// triggered. Edge, because the device's line stays high until the driver acknowledges it: a level
// entry would re-raise at every EOI and storm the CPU until the main loop got to the device;
// an edge entry raises once per rising edge, and the driver acknowledges before every halt.
// False when the line does not exist.
export function ioapicRouteEdge(gsi: u32, vector: u32): bool {
  if (gsi >= ioapicLines()) return false;
  const apicId = mmioRead32(LAPIC_ID) >> 24;
  writeRegister(IOAPIC_REDIRECTION + 2 * gsi + 1, apicId << 24);
  writeRegister(IOAPIC_REDIRECTION + 2 * gsi, vector & 0xff);
  return true;
}

export function ioapicMask(gsi: u32): void {
  if (gsi >= ioapicLines()) return;
  writeRegister(IOAPIC_REDIRECTION + 2 * gsi, ENTRY_MASKED);
}
