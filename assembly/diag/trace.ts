// Packet trace: one line per vsock header sent or received, plus the first payload bytes in hex.
// On from boot in `make image TRACE=1` builds; in any build with the runtime option
// `-fw_cfg name=opt/vsockfw/trace,string=1` (or `string=<n>` for n payload bytes, at most 64).
// The line (subsystem `trace`, shown whatever LOG_LEVEL is) is
//   [t] debug trace: <rx|tx> <OP> src=<cid>:<port> dst=<cid>:<port> len=<n> type=<n> flags=<n>
//       buf_alloc=<n> fwd_cnt=<n> [data=<hex>]
// It only reads the header and payload: tracing never changes what goes on the wire.
import { LEVEL_DEBUG, LEVEL_INFO, logBegin, logDec, logEnd, logKv, logKvBytes, logKvStr, logStartLine, logStr } from "../platform/log";
import {
  headerBufAlloc,
  headerDstCid,
  headerDstPort,
  headerFlags,
  headerFwdCnt,
  headerLen,
  headerOp,
  headerSrcCid,
  headerSrcPort,
  headerType,
  opName,
  VSOCK_HEADER_SIZE,
} from "../wire/vsock-header";

export const TRACE_DEFAULT_PAYLOAD_BYTES: i32 = 16;
export const TRACE_MAX_PAYLOAD_BYTES: i32 = 64; // keeps a trace line well inside the logger's line

// Payload bytes shown per packet; -1: trace off.
let payloadBytes: i32 = TRACE != 0 ? TRACE_DEFAULT_PAYLOAD_BYTES : -1;

export function traceEnabled(): bool {
  return payloadBytes >= 0;
}

// Applies the runtime option's value: "" keeps the build's default, "0"/"off" turns the trace
// off, "1"/"on" turns it on with the default payload bytes, n > 1 shows n payload bytes.
export function traceConfigure(option: string): void {
  if (option.length == 0) return;
  let bytes: i32 = -1;
  if (option == "on" || option == "1") {
    bytes = TRACE_DEFAULT_PAYLOAD_BYTES;
  } else if (option != "off" && option != "0") {
    const n = decimal(option);
    if (n > 1) bytes = min(n, TRACE_MAX_PAYLOAD_BYTES);
  }
  payloadBytes = bytes;
  if (logBegin(LEVEL_INFO, "trace")) {
    logStr(bytes >= 0 ? "on" : "off");
    if (bytes >= 0) logKv("payload_bytes", bytes);
    logKvStr("option", option);
    logEnd();
  }
}

// A small decimal number, or -1 when `text` is not one.
function decimal(text: string): i32 {
  if (text.length == 0 || text.length > 6) return -1;
  let n: i32 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

// "<cid>:<port>", as the trace and the crash report's packet lines write an address.
export function logEndpoint(cid: u64, port: u32): void {
  logDec(cid);
  logStr(":");
  logDec(port);
}

// " len=.. type=.. flags=.. buf_alloc=.. fwd_cnt=..": the header's fields after the addresses and
// op, in the trace and the crash report's packet lines alike.
export function logHeaderCounts(h: usize): void {
  logKv("len", headerLen(h));
  logKv("type", headerType(h));
  logKv("flags", headerFlags(h));
  logKv("buf_alloc", headerBufAlloc(h));
  logKv("fwd_cnt", headerFwdCnt(h));
}

// `h` is a header whose payload (headerLen bytes, or fewer when `available` says so) follows it.
export function traceHeader(direction: string, h: usize, available: u32): void {
  if (payloadBytes < 0) return;
  logStartLine(LEVEL_DEBUG, "trace");
  logStr(direction);
  logStr(" ");
  const op = headerOp(h);
  const name = opName(op);
  if (name == "UNKNOWN") {
    logStr("OP");
    logDec(op);
  } else {
    logStr(name);
  }
  logStr(" src=");
  logEndpoint(headerSrcCid(h), headerSrcPort(h));
  logStr(" dst=");
  logEndpoint(headerDstCid(h), headerDstPort(h));
  logHeaderCounts(h);
  const shown = min(min(headerLen(h), available), <u32>payloadBytes);
  if (shown > 0) logKvBytes("data", h + VSOCK_HEADER_SIZE, shown);
  logEnd();
}
