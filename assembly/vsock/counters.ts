// Protocol statistics: packets by op each way, credit traffic, rx buffer refills and tx stalls;
// drops by reason are rejections.ts's (logged with the device counters). Counting is a few
// increments per packet; the log lines are written only when asked: at exit, by the stats
// service (port 1237), and every N seconds with `opt/vsockfw/counters=<seconds>`. The lines:
//   info vsock: counters why=<why> rx_packets=.. tx_packets=.. credit_updates_sent=.. ...
//   info vsock: packets dir=<rx|tx> request=.. response=.. rst=.. shutdown=.. rw=.. credit_update=.. credit_request=.. other=..
// followed by the device layer's own (vsock-dev counters, `rejections total=.. <reason>=..`, per queue).
import { LEVEL_INFO, logEnd, logKv, logKvStr, logStartLine, logStr } from "../platform/log";
import { COUNTER_RX_REFILLS, deviceCounter, deviceLogCounters } from "./device";
import { headerOp, VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_UPDATE } from "./packet";
import { rejectionTotal } from "./rejections";

const OP_SLOTS: i32 = 8; // ops 1..7 by number; slot 0 counts anything else
const rxByOp = new StaticArray<u64>(OP_SLOTS);
const txByOp = new StaticArray<u64>(OP_SLOTS);
let rxTotal: u64 = 0;
let txTotal: u64 = 0;

export const STALL_CREDIT: i32 = 0; // data waiting, the peer's window closed
export const STALL_RING: i32 = 1; // a packet to send, no free tx buffer
const stalls = new StaticArray<u64>(2);

let intervalNs: u64 = 0;
let nextReportNs: u64 = 0;

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

function logPackets(direction: string, byOp: StaticArray<u64>): void {
  logStartLine(LEVEL_INFO, "vsock");
  logStr("packets");
  logKvStr("dir", direction);
  logKv("request", unchecked(byOp[1]));
  logKv("response", unchecked(byOp[2]));
  logKv("rst", unchecked(byOp[3]));
  logKv("shutdown", unchecked(byOp[4]));
  logKv("rw", unchecked(byOp[5]));
  logKv("credit_update", unchecked(byOp[6]));
  logKv("credit_request", unchecked(byOp[7]));
  logKv("other", unchecked(byOp[0]));
  logEnd();
}

// Every counter, whatever the build's log level (they were asked for).
export function logCounters(why: string): void {
  logStartLine(LEVEL_INFO, "vsock");
  logStr("counters");
  logKvStr("why", why);
  logKv("rx_packets", rxTotal);
  logKv("tx_packets", txTotal);
  logKv("credit_updates_sent", unchecked(txByOp[VIRTIO_VSOCK_OP_CREDIT_UPDATE]));
  logKv("credit_updates_received", unchecked(rxByOp[VIRTIO_VSOCK_OP_CREDIT_UPDATE]));
  logKv("credit_requests_received", unchecked(rxByOp[VIRTIO_VSOCK_OP_CREDIT_REQUEST]));
  logKv("rx_refills", deviceCounter(COUNTER_RX_REFILLS));
  logKv("tx_stalls_credit", unchecked(stalls[STALL_CREDIT]));
  logKv("tx_stalls_ring", unchecked(stalls[STALL_RING]));
  logKv("drops", rejectionTotal());
  logEnd();
  logPackets("rx", rxByOp);
  logPackets("tx", txByOp);
  deviceLogCounters();
}

// `opt/vsockfw/counters=<seconds>`: counters every that many seconds (0 or absent: never).
export function countersConfigure(option: string): void {
  let seconds: u64 = 0;
  for (let i = 0; i < option.length; i++) {
    const c = option.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || i >= 6) return;
    seconds = seconds * 10 + <u64>(c - 0x30);
  }
  intervalNs = seconds * 1000000000;
  nextReportNs = 0;
}

export function countersPoll(now: u64): void {
  if (intervalNs == 0) return;
  if (nextReportNs == 0) nextReportNs = now + intervalNs;
  if (now < nextReportNs) return;
  nextReportNs = now + intervalNs;
  logCounters("interval");
}
