// Everything the firmware refuses from the device, the host or the PCI bus, by named reason: one
// registry for every layer (PCI, virtqueues, the device, the protocol), so one line can report
// them all. The first rejection of each reason is logged at warn, later ones only at debug: a
// hostile device or peer cannot flood the log, and the first occurrence always shows.
import { LEVEL_DEBUG, LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../platform/log";

// PCI and virtio-pci structures (boot time).
export const REJECT_BAR_UNASSIGNABLE: i32 = 0; // a BAR larger than its window, or that ignores its address
export const REJECT_CAPABILITY_INVALID: i32 = 1; // cap_len, BAR index/kind, or region outside its BAR
export const REJECT_NOTIFY_OUTSIDE_CAP: i32 = 2; // queue_notify_off * multiplier past the notify structure
export const REJECT_CONFIG_UNSTABLE: i32 = 3; // config_generation moved while we read the config
// Used rings (virtqueue level, any queue).
export const REJECT_USED_BAD_ID: i32 = 4;
export const REJECT_USED_NOT_IN_FLIGHT: i32 = 5;
export const REJECT_USED_DUPLICATE: i32 = 6;
export const REJECT_USED_TOO_LONG: i32 = 7;
export const REJECT_USED_IDX_JUMP: i32 = 8;
// Device layer: a completed buffer whose contents cannot be a packet or an event.
export const REJECT_RX_SHORT: i32 = 9;
export const REJECT_RX_LEN_MISMATCH: i32 = 10;
export const REJECT_EVENT_SHORT: i32 = 11;
export const REJECT_EVENT_UNKNOWN: i32 = 12;
export const REJECT_TX_INVALID: i32 = 13; // our own bug: a submit of a foreign buffer or a bad length
// Protocol layer: packets that parse but that nobody may send us.
export const REJECT_SRC_CID: i32 = 14; // not from the host (CID 2): dropped without a reply
export const REJECT_DST_CID: i32 = 15; // not addressed to our CID: dropped without a reply
export const REJECT_UNKNOWN_TYPE: i32 = 16; // neither STREAM nor SEQPACKET: RST
export const REJECT_UNKNOWN_OP: i32 = 17; // op 0 or > 7: RST without a connection, ignored on one
export const REJECT_NO_SOCKET: i32 = 18; // no connection and no listener for the tuple: RST
export const REJECT_NOT_REQUEST_TO_LISTENER: i32 = 19; // RST
export const REJECT_BACKLOG_FULL: i32 = 20; // REQUEST beyond the listener's backlog: RST
export const REJECT_CONNECTION_TABLE_FULL: i32 = 21; // REQUEST with every connection in use: RST
export const REJECT_UNEXPECTED_OP: i32 = 22; // an op the connection's state does not allow
export const REJECT_RW_BEYOND_CREDIT: i32 = 23; // more data than the window we granted: dropped
export const REJECT_CREDIT_FWD_CNT_AHEAD: i32 = 24; // the peer claims to have read more than we sent
// Device layer, tolerated rather than refused: counted so a device that does it shows.
export const REJECT_RX_USED_EXTRA: i32 = 25; // used length past the header's len: packet kept, extra ignored
export const REJECT_GUEST_CID_INVALID: i32 = 26; // guest_cid 0, 1, 2, 0xffffffff or above 32 bits: device unused
// A listener holding more than its share of the table in connections nobody accepted (a REQUEST
// flood): its REQUEST refused with RST when the table is full, or its oldest one reset for room.
export const REJECT_LISTENER_OVER_SHARE: i32 = 27;
// virtio-mmio registers that say what the spec forbids (a queue live before set-up).
export const REJECT_MMIO_REGISTER_INVALID: i32 = 28;
// SEQPACKET (messages.ts). A packet whose type is not its connection's or listener's: RST, as
// Linux's virtio_transport_recv_pkt; a SEQPACKET packet from a device that never negotiated
// VIRTIO_VSOCK_F_SEQPACKET: dropped without a reply; a message over the receive buffer: discarded up to its EOM;
// more complete messages queued than the connection tracks: the connection reset (ENOBUFS).
export const REJECT_TYPE_MISMATCH: i32 = 29;
export const REJECT_SEQPACKET_NOT_NEGOTIATED: i32 = 30;
export const REJECT_MESSAGE_TOO_LONG: i32 = 31;
export const REJECT_MESSAGE_QUEUE_FULL: i32 = 32;
export const REJECTION_REASONS: i32 = 33;

const counts = new StaticArray<u64>(REJECTION_REASONS);

// The reason's name as a counter key (snake_case, stable: tools and tests match on it).
export function rejectionKey(reason: i32): string {
  switch (reason) {
    case REJECT_BAR_UNASSIGNABLE: return "bar_unassignable";
    case REJECT_CAPABILITY_INVALID: return "capability_invalid";
    case REJECT_NOTIFY_OUTSIDE_CAP: return "notify_outside_cap";
    case REJECT_CONFIG_UNSTABLE: return "config_unstable";
    case REJECT_USED_BAD_ID: return "used_bad_id";
    case REJECT_USED_NOT_IN_FLIGHT: return "used_not_in_flight";
    case REJECT_USED_DUPLICATE: return "used_duplicate";
    case REJECT_USED_TOO_LONG: return "used_too_long";
    case REJECT_USED_IDX_JUMP: return "used_idx_jump";
    case REJECT_RX_SHORT: return "rx_short";
    case REJECT_RX_LEN_MISMATCH: return "rx_len_mismatch";
    case REJECT_EVENT_SHORT: return "event_short";
    case REJECT_EVENT_UNKNOWN: return "event_unknown";
    case REJECT_TX_INVALID: return "tx_invalid";
    case REJECT_SRC_CID: return "src_cid";
    case REJECT_DST_CID: return "dst_cid";
    case REJECT_UNKNOWN_TYPE: return "unknown_type";
    case REJECT_UNKNOWN_OP: return "unknown_op";
    case REJECT_NO_SOCKET: return "no_socket";
    case REJECT_NOT_REQUEST_TO_LISTENER: return "not_request_to_listener";
    case REJECT_BACKLOG_FULL: return "backlog_full";
    case REJECT_CONNECTION_TABLE_FULL: return "connection_table_full";
    case REJECT_UNEXPECTED_OP: return "unexpected_op";
    case REJECT_RW_BEYOND_CREDIT: return "rw_beyond_credit";
    case REJECT_CREDIT_FWD_CNT_AHEAD: return "credit_fwd_cnt_ahead";
    case REJECT_RX_USED_EXTRA: return "rx_used_extra";
    case REJECT_GUEST_CID_INVALID: return "guest_cid_invalid";
    case REJECT_LISTENER_OVER_SHARE: return "listener_over_share";
    case REJECT_MMIO_REGISTER_INVALID: return "mmio_register_invalid";
    case REJECT_TYPE_MISMATCH: return "type_mismatch";
    case REJECT_SEQPACKET_NOT_NEGOTIATED: return "seqpacket_not_negotiated";
    case REJECT_MESSAGE_TOO_LONG: return "message_too_long";
    case REJECT_MESSAGE_QUEUE_FULL: return "message_queue_full";
  }
  return "";
}

// Counts one rejection and returns the level its log line gets: warn the first time, debug after.
// The caller writes the line itself (it knows the details), ending it with rejectionCount().
export function countRejection(reason: i32): i32 {
  if (reason < 0 || reason >= REJECTION_REASONS) return LEVEL_DEBUG;
  const n = unchecked(counts[reason]) + 1;
  unchecked((counts[reason] = n));
  return n == 1 ? LEVEL_WARN : LEVEL_DEBUG;
}

export function rejectionCount(reason: i32): u64 {
  return reason >= 0 && reason < REJECTION_REASONS ? unchecked(counts[reason]) : 0;
}

export function rejectionTotal(): u64 {
  let total: u64 = 0;
  for (let i = 0; i < REJECTION_REASONS; i++) total += unchecked(counts[i]);
  return total;
}

// One info line: the total and every reason seen so far (reasons never seen are left out, so the
// line stays short), e.g. `info vsock: rejections total=3 src_cid=1 no_socket=2`.
export function logRejections(): void {
  if (logBegin(LEVEL_INFO, "vsock")) {
    logStr("rejections");
    logKv("total", rejectionTotal());
    for (let i = 0; i < REJECTION_REASONS; i++) {
      if (unchecked(counts[i]) != 0) logKv(rejectionKey(i), unchecked(counts[i]));
    }
    logEnd();
  }
}
