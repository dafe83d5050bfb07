// The PCI capability list (PCI Local Bus 3.0, 6.7): a chain of headers in config space, each
// dword holding id (7:0), next pointer (15:8) and two capability-specific bytes (31:16). One
// dword read per capability: each config access is a VM exit under KVM. Walks are bounded so a
// list that loops (a hostile or broken device) cannot hang the firmware:
//   let at = firstCapability(f);
//   for (let seen = 0; at != 0 && seen < MAX_CAPABILITIES; seen++) {
//     const header = configRead32(f.address, at);
//     ...
//     at = nextCapability(header);
//   }
import { configRead8, PCI_CAPABILITY_LIST } from "./config";
import { PciFunction } from "./scan";

const FIRST_CAPABILITY: u32 = 0x40; // capabilities live after the standard header
export const MAX_CAPABILITIES: i32 = 48; // (256 - 64) / 4: a longer list is a loop

// A pointer below the standard header's end ends the list (0 is the usual end).
function capabilityAt(pointer: u32): u32 {
  const at = pointer & 0xfc;
  return at >= FIRST_CAPABILITY ? at : 0;
}

// Config offset of the first capability, 0 when there is none. Callers that must honour the
// status register's capability-list bit check it first.
export function firstCapability(f: PciFunction): u32 {
  return capabilityAt(configRead8(f.address, PCI_CAPABILITY_LIST));
}

// Config offset of the capability after the one whose header dword is `header`, 0 at the end.
export function nextCapability(header: u32): u32 {
  return capabilityAt((header >> 8) & 0xff);
}

export function capabilityId(header: u32): u32 {
  return header & 0xff;
}
