// Protocol statistics: packets by op each way and tx stalls; drops by reason are rejections.ts's.
// Counting is a few increments per packet. The report that prints them with the device layer's
// counters is vsock-protocol/counters-report.ts (it sits above the device it reads).
import { headerOp } from "../wire/vsock-header";

const OP_SLOTS: i32 = 8; // ops 1..7 by number; slot 0 counts anything else
const rxByOp = new StaticArray<u64>(OP_SLOTS);
const txByOp = new StaticArray<u64>(OP_SLOTS);
let rxTotal: u64 = 0;
let txTotal: u64 = 0;

export const STALL_CREDIT: i32 = 0; // data waiting, the peer's window closed
export const STALL_RING: i32 = 1; // a packet to send, no free tx buffer
const stalls = new StaticArray<u64>(2);

function slot(op: u32): i32 {
  return op > 0 && op < <u32>OP_SLOTS ? <i32>op : 0;
}

export function countRx(h: usize): void {
  const s = slot(headerOp(h));
  unchecked((rxByOp[s] = unchecked(rxByOp[s]) + 1));
  rxTotal++;
}

export function countTx(h: usize): void {
  const s = slot(headerOp(h));
  unchecked((txByOp[s] = unchecked(txByOp[s]) + 1));
  txTotal++;
}

export function countStall(kind: i32): void {
  unchecked((stalls[kind] = unchecked(stalls[kind]) + 1));
}

export function packetsByOp(rx: bool, op: u32): u64 {
  return rx ? unchecked(rxByOp[slot(op)]) : unchecked(txByOp[slot(op)]);
}

export function stallCount(kind: i32): u64 {
  return unchecked(stalls[kind]);
}

export function packetTotal(rx: bool): u64 {
  return rx ? rxTotal : txTotal;
}
