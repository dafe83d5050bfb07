// Credit-based flow control (virtio 1.2 "Device Operation: Buffer Space Management").
// Every header carries the sender's buf_alloc and fwd_cnt; all counters are u32 and wrap.
import { logBegin, logEnd, logKv, logStr } from "../platform/log";
import { Connection } from "./connection";
import { countRejection, REJECT_CREDIT_FWD_CNT_AHEAD, rejectionCount } from "./rejections";
import { HDR_BUF_ALLOC, HDR_FWD_CNT, VIRTIO_VSOCK_MAX_PKT_BUF_SIZE } from "./packet";

// Every received header refreshes what we know of the peer's receive buffer. A fwd_cnt that
// claims more bytes read than we ever sent is a lie: counted, and still taken (peerFreeSpace then
// says 0, so it can only stall this connection, and the peer's next honest header reopens it).
export function updatePeerCredit(c: Connection, header: usize): void {
  c.peerBufAlloc = load<u32>(header + HDR_BUF_ALLOC);
  c.peerFwdCnt = load<u32>(header + HDR_FWD_CNT);
  const inFlight = c.txCnt - c.peerFwdCnt;
  if (<u64>inFlight > c.bytesSent) {
    if (logBegin(countRejection(REJECT_CREDIT_FWD_CNT_AHEAD), "vsock")) {
      logStr("rejected: peer fwd_cnt ahead of what we sent");
      logKv("local", c.localPort);
      logKv("peer_port", c.peerPort);
      logKv("fwd_cnt", c.peerFwdCnt);
      logKv("tx_cnt", c.txCnt);
      logKv("count", rejectionCount(REJECT_CREDIT_FWD_CNT_AHEAD));
      logEnd();
    }
  }
}

// Bytes we may still send: peer_buf_alloc - (tx_cnt - peer_fwd_cnt), with u32 wrap-around.
// A peer that shrank its buffer below what is in flight gets 0, not a huge unsigned number.
export function peerFreeSpace(c: Connection): u32 {
  const inFlight = c.txCnt - c.peerFwdCnt;
  return inFlight >= c.peerBufAlloc ? 0 : c.peerBufAlloc - inFlight;
}

// The peer will send at most bufAlloc - (bytes it sent - fwd_cnt it last saw). Once that view of
// our free space drops below a threshold (64 KiB, or a quarter of the buffer when that is larger),
// consumption must be reported: Linux senders never ask (no CREDIT_REQUEST) and would stall.
export function creditUpdateDue(c: Connection): bool {
  const unreported = c.fwdCnt - c.lastFwdCntSent;
  if (unreported == 0) return false;
  const held = <u64>c.rx.count + <u64>unreported;
  const peerView: u64 = held >= <u64>c.bufAlloc ? 0 : <u64>c.bufAlloc - held;
  const threshold = max<u64>(<u64>VIRTIO_VSOCK_MAX_PKT_BUF_SIZE, <u64>(c.bufAlloc >> 2));
  return peerView < threshold;
}
