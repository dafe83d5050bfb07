// The connection lines of the log, and what keeps them cheap. The debug console takes one byte
// per VM exit (QEMU's debugcon accepts only single-byte writes): under nested KVM a pair of
// `connection opened` / `connection closed` lines (~230 bytes) cost ~18 ms of exits, more than a
// whole connection's packets. So each connection gets its own lines while connections come at a
// human pace (a burst of FULL_LINES_BURST, then FULL_LINES_PER_SECOND); beyond that, they are
// folded: counted, and written once a second as one `connections folded` line with the counts,
// the end reasons, the bytes and `conns=`. A connection whose opening was logged always logs its
// end, so every opened line has its closed line. `-fw_cfg name=opt/vsockfw/connection-lines,
// string=all` logs every connection in full whatever it costs (the e2e fault cases read them).
import { clockNs } from "../platform/imports";
import { LEVEL_INFO, logBegin, logDec, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import { Connection } from "./connection";

const FULL_LINES_BURST: i32 = 32;
const FULL_LINE_REFILL_NS: u64 = 250_000_000; // 4 connections a second in full, beyond the burst
const FOLDED_SUMMARY_NS: u64 = 1_000_000_000;

// End reasons as the closed line names them; a folded close counts under its index.
const REASONS: StaticArray<string> = [
  "local-close",
  "peer-shutdown",
  "reset-by-peer",
  "connect-timeout",
  "close-timeout",
  "transport-reset",
  "protocol-error",
  "connect-abandoned",
  "other",
];

let foldingOn = true;
let tokens: i32 = FULL_LINES_BURST;
let refilledAt: u64 = 0;
const detailed = new StaticArray<bool>(MAX_CONNECTIONS); // its opened line was written
let foldedOpened: u64 = 0;
let foldedClosed: u64 = 0;
let foldedRxBytes: u64 = 0;
let foldedTxBytes: u64 = 0;
const foldedReasons = new StaticArray<u64>(REASONS.length);
let foldedSince: u64 = 0;

// The runtime option's value: "all" turns folding off; anything else keeps the default.
export function connectionLinesConfigure(option: string): void {
  foldingOn = option != "all";
}

function refill(now: u64): void {
  if (refilledAt == 0) refilledAt = now;
  while (tokens < FULL_LINES_BURST && now - refilledAt >= FULL_LINE_REFILL_NS) {
    tokens++;
    refilledAt += FULL_LINE_REFILL_NS;
  }
  if (tokens == FULL_LINES_BURST) refilledAt = now;
}

function reasonIndex(reason: string): i32 {
  for (let i = 0; i < REASONS.length - 1; i++) if (unchecked(REASONS[i]) == reason) return i;
  return REASONS.length - 1;
}

// " local=<port> peer=<cid>:<port>"
function logTuple(c: Connection): void {
  logKv("local", c.localPort);
  logStr(" peer=");
  logDec(c.peerCid);
  logStr(":");
  logDec(<u64>c.peerPort);
}

function noteFolded(now: u64): void {
  if (foldedOpened == 0 && foldedClosed == 0) foldedSince = now;
}

// Once a connection is established (either direction).
export function logConnectionOpened(c: Connection, live: i32): void {
  const now = clockNs();
  refill(now);
  if (foldingOn && tokens == 0) {
    noteFolded(now);
    foldedOpened++;
    unchecked((detailed[c.index] = false));
    return;
  }
  if (tokens > 0) tokens--;
  unchecked((detailed[c.index] = true));
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("connection opened");
    logKvStr("dir", c.outbound ? "out" : "in");
    logTuple(c);
    logKv("buf_alloc", c.bufAlloc);
    logKv("peer_buf_alloc", c.peerBufAlloc);
    logKv("conns", <u64>live);
    logEnd();
  }
}

// When an established connection returns to the pool.
export function logConnectionClosed(c: Connection, live: i32): void {
  const reason = c.endReason.length > 0 ? c.endReason : "local-close";
  if (!unchecked(detailed[c.index])) {
    noteFolded(clockNs());
    foldedClosed++;
    foldedRxBytes += c.bytesReceived;
    foldedTxBytes += c.bytesSent;
    const i = reasonIndex(reason);
    unchecked((foldedReasons[i] = unchecked(foldedReasons[i]) + 1));
    return;
  }
  unchecked((detailed[c.index] = false));
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("connection closed");
    logKvStr("dir", c.outbound ? "out" : "in");
    logTuple(c);
    logKvStr("reason", reason);
    logKv("rx_bytes", c.bytesReceived);
    logKv("tx_bytes", c.bytesSent);
    if (c.dropped != 0) logKv("dropped", c.dropped);
    logKv("duration_ms", (clockNs() - c.openedAt) / 1000000);
    logKv("conns", <u64>live);
    logEnd();
  }
}

// From the poll loop: the folded connections' line, at most once a second while there are any.
export function connectionLogPoll(now: u64, live: i32): void {
  if (foldedOpened == 0 && foldedClosed == 0) return;
  if (now - foldedSince < FOLDED_SUMMARY_NS) return;
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("connections folded");
    logKv("opened", foldedOpened);
    logKv("closed", foldedClosed);
    for (let i = 0; i < REASONS.length; i++) {
      const n = unchecked(foldedReasons[i]);
      if (n != 0) logKv(unchecked(REASONS[i]), n);
    }
    logKv("rx_bytes", foldedRxBytes);
    logKv("tx_bytes", foldedTxBytes);
    logKv("ms", (now - foldedSince) / 1000000);
    logKv("conns", <u64>live);
    logEnd();
  }
  foldedOpened = 0;
  foldedClosed = 0;
  foldedRxBytes = 0;
  foldedTxBytes = 0;
  for (let i = 0; i < REASONS.length; i++) unchecked((foldedReasons[i] = 0));
}
