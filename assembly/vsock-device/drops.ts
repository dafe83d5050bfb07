// The device layer's drop kinds (tests name them): each is a firmware-wide rejection reason
// (diag/rejections.ts), so one registry counts them and logs the first of each at warn.
import { logBegin, logEnd, logKv, logStr } from "../platform/log";
import {
  countRejection,
  REJECT_EVENT_SHORT,
  REJECT_EVENT_UNKNOWN,
  REJECT_RX_LEN_MISMATCH,
  REJECT_RX_SHORT,
  REJECT_RX_USED_EXTRA,
  REJECT_TX_INVALID,
  REJECT_USED_TOO_LONG,
  rejectionCount,
} from "../diag/rejections";

export const DROP_RX_SHORT: i32 = 0; // used length < header
export const DROP_RX_LEN_MISMATCH: i32 = 1; // header len != used length - header
export const DROP_RX_USED_TOO_LONG: i32 = 2; // used length beyond the buffer (the virtqueue rejects it)
export const DROP_EVENT_SHORT: i32 = 3;
export const DROP_EVENT_UNKNOWN: i32 = 4;
export const DROP_TX_INVALID: i32 = 5; // txSubmit with a foreign buffer or a bad length
export const DROP_RX_USED_EXTRA: i32 = 6; // header len < used length - header: extra bytes ignored, packet kept
const DROP_KINDS: i32 = 7;

function dropReason(kind: i32): i32 {
  if (kind == DROP_RX_SHORT) return REJECT_RX_SHORT;
  if (kind == DROP_RX_LEN_MISMATCH) return REJECT_RX_LEN_MISMATCH;
  if (kind == DROP_RX_USED_TOO_LONG) return REJECT_USED_TOO_LONG;
  if (kind == DROP_EVENT_SHORT) return REJECT_EVENT_SHORT;
  if (kind == DROP_EVENT_UNKNOWN) return REJECT_EVENT_UNKNOWN;
  if (kind == DROP_RX_USED_EXTRA) return REJECT_RX_USED_EXTRA;
  return REJECT_TX_INVALID;
}

function dropName(kind: i32): string {
  if (kind == DROP_RX_SHORT) return "rx packet shorter than the header";
  if (kind == DROP_RX_LEN_MISMATCH) return "rx header len disagrees with used length";
  if (kind == DROP_EVENT_SHORT) return "event shorter than 4 bytes";
  if (kind == DROP_EVENT_UNKNOWN) return "unknown event id";
  if (kind == DROP_RX_USED_EXTRA) return "rx used length beyond the header len, extra bytes ignored";
  return "invalid tx submit";
}

export function countDrop(kind: i32, detail: u64): void {
  const reason = dropReason(kind);
  if (logBegin(countRejection(reason), "vsock-dev")) {
    logStr("dropped: ");
    logStr(dropName(kind));
    logKv("value", detail);
    logKv("count", rejectionCount(reason));
    logEnd();
  }
}

export function deviceDropCount(kind: i32): u64 {
  return kind >= 0 && kind < DROP_KINDS ? rejectionCount(dropReason(kind)) : 0;
}
