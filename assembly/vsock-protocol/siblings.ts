// Peers besides the host (CID 2): sibling VMs that a vhost-user backend routes to by CID. Empty by
// default: under kernel vhost only the host exists, and a packet from any other CID is bogus
// (dropped without reply). Filled at boot from `opt/vsockfw/siblings=<cid>[,<cid>...]` and the
// peer client's target.
import { VMADDR_CID_HOST } from "../wire/vsock-header";

const MAX_SIBLINGS: i32 = 8;
const siblings = new StaticArray<u64>(MAX_SIBLINGS);
let count: i32 = 0;

// False when the list is full or the cid cannot be a guest (0, 1, 2 and the 32-bit any).
export function allowSiblingCid(cid: u64): bool {
  if (cid <= VMADDR_CID_HOST || cid >= 0xffffffff) return false;
  if (peerCidAllowed(cid)) return true;
  if (count >= MAX_SIBLINGS) return false;
  unchecked((siblings[count++] = cid));
  return true;
}

export function peerCidAllowed(cid: u64): bool {
  if (cid == VMADDR_CID_HOST) return true;
  for (let i = 0; i < count; i++) if (unchecked(siblings[i]) == cid) return true;
  return false;
}

export function siblingCount(): i32 {
  return count;
}

// "34,35": every decimal cid in the list; returns how many were taken.
export function allowSiblingList(text: string): i32 {
  let taken = 0;
  let value: u64 = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2c;
    if (c >= 0x30 && c <= 0x39 && digits < 10) {
      value = value * 10 + <u64>(c - 0x30);
      digits++;
    } else if (c == 0x2c || c == 0x20) {
      if (digits > 0 && allowSiblingCid(value)) taken++;
      value = 0;
      digits = 0;
    } else {
      return taken; // anything else ends the list
    }
  }
  return taken;
}
