// Credit-based flow control (virtio 1.2 "Device Operation: Buffer Space Management").
// Every header carries the sender's buf_alloc and fwd_cnt; all counters are u32 and wrap at 4 GiB,
// so every comparison below is on differences (u32 arithmetic), never on raw counter values.
import { logBegin, logEnd, logKv, logStr } from "../platform/log";
import { Connection, RECEIVE_BUFFER_CAPACITY } from "./connection";
import { countRejection, REJECT_CREDIT_FWD_CNT_AHEAD, rejectionCount } from "../diag/rejections";
import { HDR_BUF_ALLOC, HDR_FWD_CNT, VIRTIO_VSOCK_MAX_PKT_BUF_SIZE } from "../wire/vsock-header";

// Half the counter space: a distance beyond it cannot tell "ahead" from "behind" after a wrap.
const HALF_COUNTER_SPACE: u64 = 0x80000000;

// Every received header refreshes what we know of the peer's receive buffer. A fwd_cnt that
// claims more bytes read than we ever sent is a lie: counted, and still taken (peerFreeSpace then
// says 0, so it can only stall this connection, and the peer's next honest header reopens it).
// The claim is judged by the bytes it says are in flight (tx_cnt - fwd_cnt, wrapping): more than
// we ever sent, or more than half the counter space (only a fwd_cnt ahead of tx_cnt wraps there).
export function updatePeerCredit(c: Connection, header: usize): void {
  c.peerBufAlloc = load<u32>(header + HDR_BUF_ALLOC);
  c.peerFwdCnt = load<u32>(header + HDR_FWD_CNT);
  const inFlight = c.txCnt - c.peerFwdCnt;
  if (<u64>inFlight > min(c.bytesSent, HALF_COUNTER_SPACE)) {
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

// ---- our send window -----------------------------------------------------------------------
// As Linux since "vsock/virtio: cap TX credit to local buffer size" (virtio_transport_tx_buf_size):
// what we keep in flight is bounded by min(peer's buf_alloc, our own buffer size), so a peer that
// advertises a huge buffer cannot make a socket with a small one hold more than it asked for.
export function txBufAlloc(c: Connection): u32 {
  return min(c.peerBufAlloc, c.bufAlloc);
}

// Bytes we may still send: txBufAlloc - (tx_cnt - peer_fwd_cnt), with u32 wrap-around.
// A window that shrank below what is in flight gives 0, not a huge unsigned number.
export function peerFreeSpace(c: Connection): u32 {
  const window = txBufAlloc(c);
  const inFlight = c.txCnt - c.peerFwdCnt;
  return inFlight >= window ? 0 : window - inFlight;
}

// Whether our own buffer size closed the window while the peer's is still open (then send()
// has no room either). A peer reports its reads when its free space runs low (Linux: below
// 64 KiB of its buf_alloc; Linux >= 6.8 also when its queue empties): one with a much larger
// buffer than ours may never do so on its own, so such a connection asks (CREDIT_REQUEST,
// stack.ts's timer).
export function stalledByOwnSize(c: Connection): bool {
  return peerFreeSpace(c) == 0 && c.txCnt - c.peerFwdCnt < c.peerBufAlloc;
}

// Bytes the application may still hand to send(): the socket holds at most its own buffer size
// (SO_VM_SOCKETS_BUFFER_SIZE), counting both the send buffer and the bytes in flight, and the
// send buffer's own room. In-flight bytes beyond the buffer size (it was lowered, or a lying
// fwd_cnt) give 0 until they are acknowledged.
export function sendRoom(c: Connection): u32 {
  const held = <u64>c.tx.count + <u64>(c.txCnt - c.peerFwdCnt);
  if (held >= <u64>c.bufAlloc) return 0;
  return min(c.tx.free(), <u32>(<u64>c.bufAlloc - held));
}

// ---- our receive window --------------------------------------------------------------------
// Credit once granted is never revoked. Each header we send lets the peer send up to
// fwd_cnt + buf_alloc bytes in total (creditEnd); an application that lowers its buffer size
// (SO_VM_SOCKETS_BUFFER_SIZE) must not strand bytes the peer already sent under the old size
// (Linux drops them and the stream stalls for good). So the advertised buf_alloc shrinks only as
// the granted bytes drain, and every byte within creditEnd is accepted: the receive buffer's
// capacity is fixed (RECEIVE_BUFFER_CAPACITY), so they always fit.

// Bytes the peer may still send on credit already granted (creditEnd - bytes received so far).
function grantedRemaining(c: Connection): u32 {
  const remaining = c.creditEnd - (c.fwdCnt + c.rx.count);
  return remaining > RECEIVE_BUFFER_CAPACITY ? 0 : remaining; // creditEnd behind: nothing granted
}

// The buf_alloc for our next header: the application's size, or more while granted credit drains.
export function advertisedBufAlloc(c: Connection): u32 {
  const granted = c.creditEnd - c.fwdCnt;
  if (granted > RECEIVE_BUFFER_CAPACITY) return c.bufAlloc; // creditEnd behind fwd_cnt
  return max(granted, c.bufAlloc);
}

// Called with every header we send: records what the peer now knows. Returns the buf_alloc to send.
export function advertiseCredit(c: Connection): u32 {
  const bufAlloc = advertisedBufAlloc(c);
  c.lastFwdCntSent = c.fwdCnt;
  c.creditEnd = c.fwdCnt + bufAlloc;
  return bufAlloc;
}

// Whether `length` RW bytes may enter the receive buffer: within the credit we granted, or within
// the buffer size right now (Linux's own rule, rx bytes + len <= buf_alloc).
export function receiveAllowed(c: Connection, length: u32): bool {
  if (length > c.rx.free()) return false;
  if (length <= grantedRemaining(c)) return true;
  return <u64>c.rx.count + <u64>length <= <u64>c.bufAlloc;
}

// The window the peer can use: our buffer size, or its own when that is smaller. A peer with
// Linux's TX credit cap keeps at most min(our buf_alloc, its own) in flight, and its own is the
// buf_alloc it advertises to us (0: it told us nothing yet, so ours).
function peerSendWindow(c: Connection): u32 {
  return c.peerBufAlloc == 0 ? c.bufAlloc : min(c.bufAlloc, c.peerBufAlloc);
}

// The peer will send at most its window - (bytes it sent - fwd_cnt it last saw). Once that view
// of its credit drops below a threshold (64 KiB, or a quarter of our buffer when that is larger),
// consumption must be reported: Linux senders never ask (no CREDIT_REQUEST) and would stall.
// Measured against our buffer alone, a capped sender whose own size is far below ours would wait
// for good: our free space never looks low while all it may have in flight is its own size.
// While a lowered buffer size waits for the old grant to drain, an update would not move the
// credit end (the peer could send nothing more): none is due then.
export function creditUpdateDue(c: Connection): bool {
  const unreported = c.fwdCnt - c.lastFwdCntSent;
  if (unreported == 0) return false;
  if (c.fwdCnt + advertisedBufAlloc(c) == c.creditEnd) return false;
  const window = <u64>peerSendWindow(c);
  const held = <u64>c.rx.count + <u64>unreported;
  const peerView: u64 = held >= window ? 0 : window - held;
  const threshold = max<u64>(<u64>VIRTIO_VSOCK_MAX_PKT_BUF_SIZE, <u64>(c.bufAlloc >> 2));
  return peerView < threshold;
}
