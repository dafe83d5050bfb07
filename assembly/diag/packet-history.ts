// The last packets sent and received, raw headers as they were on the ring, so a crash report
// can show what the device and the stack were doing just before: firmware/crash-report.c calls
// crash_log_packets (crash/index.ts) after a trap or CPU exception, which prints them from here.
import { clockNs } from "../platform/imports";
import { logEnd, logKv, logStr } from "../platform/log";
import {
  headerDstCid,
  headerDstPort,
  headerOp,
  headerSrcCid,
  headerSrcPort,
  opName,
  VIRTIO_VSOCK_OP_INVALID,
  VSOCK_HEADER_SIZE,
} from "../wire/vsock-header";
import { logSeconds, reportLine } from "./report-line";
import { logEndpoint, logHeaderCounts } from "./trace";

const HISTORY_CAPACITY: u32 = 32; // a power of two
const ENTRY_SIZE: u32 = 64;
// Entry fields (byte offsets); packet number n sits in slot n % HISTORY_CAPACITY.
const E_TIME_NS: usize = 0; // u64
const E_DIRECTION: usize = 8; // u32
const E_SEQUENCE: usize = 12; // u32: low 32 bits of the packet's number since boot
const E_HEADER: usize = 16; // 44 bytes: the virtio-vsock header

export const DIRECTION_RX: u32 = 1;
export const DIRECTION_TX: u32 = 2;

const history: usize = memory.data(<i32>(HISTORY_CAPACITY * ENTRY_SIZE), 16);
let packetsRecorded: u64 = 0;

function slot(n: u64): usize {
  return history + <usize>((<u32>n & (HISTORY_CAPACITY - 1)) * ENTRY_SIZE);
}

// A few stores per packet; the header is copied as it was, before any validation. The sequence
// goes first: should a crash come before the copy is done, the report shows the slot as
// overwritten rather than half the old packet and half the new.
export function recordPacket(direction: u32, header: usize): void {
  const n = packetsRecorded;
  const entry = slot(n);
  store<u32>(entry + E_SEQUENCE, <u32>n);
  store<u64>(entry + E_TIME_NS, clockNs());
  store<u32>(entry + E_DIRECTION, direction);
  memory.copy(entry + E_HEADER, header, <usize>VSOCK_HEADER_SIZE);
  packetsRecorded = n + 1;
}

function logPacket(n: u64, entry: usize): void {
  const h = entry + E_HEADER;
  const op = headerOp(h);
  reportLine();
  logStr("packet");
  logKv("n", n);
  logStr(" t=");
  logSeconds(load<u64>(entry + E_TIME_NS));
  logStr(load<u32>(entry + E_DIRECTION) == DIRECTION_RX ? " rx " : " tx ");
  logStr(op == VIRTIO_VSOCK_OP_INVALID ? "INVALID" : opName(op));
  logStr(" ");
  logEndpoint(headerSrcCid(h), headerSrcPort(h));
  logStr(" -> ");
  logEndpoint(headerDstCid(h), headerDstPort(h));
  logHeaderCounts(h);
  logEnd();
}

// "last packets total=.. shown=..", then the packets oldest first.
export function logLastPackets(): void {
  const total = packetsRecorded;
  const first = total > <u64>HISTORY_CAPACITY ? total - <u64>HISTORY_CAPACITY : 0;
  reportLine();
  logStr("last packets");
  logKv("total", total);
  logKv("shown", total - first);
  logEnd();
  for (let n = first; n < total; n++) {
    const entry = slot(n);
    if (load<u32>(entry + E_SEQUENCE) == <u32>n) {
      logPacket(n, entry);
      continue;
    }
    reportLine();
    logStr("packet");
    logKv("n", n);
    logStr(" overwritten (being recorded when the crash came)");
    logEnd();
  }
}
