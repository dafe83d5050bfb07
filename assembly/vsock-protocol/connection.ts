// One connection (STREAM or SEQPACKET): its tuple, state, receive and send buffers, message
// boundaries, and both credit windows. A fixed pool of these is created at boot
// (connection-table.ts); a slot's buffers are allocated the first time it is used and kept for
// every later connection in it.
import { ByteRing } from "./ring";
import { MessageQueue } from "./message-queue";
import { VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_TYPE_STREAM } from "../wire/vsock-header";

// Receive buffer: Linux's default buf_alloc (256 KiB), and the most SO_VM_SOCKETS_BUFFER_SIZE may ask.
export const RECEIVE_BUFFER_CAPACITY: u32 = 262144;
// Send buffer: bytes the application wrote that credit or the tx queue has not let out yet.
// One maximum-size packet's worth: small writes coalesce here until the next poll.
export const SEND_BUFFER_CAPACITY: u32 = 65536;
// SEQPACKET: messages complete in the receive buffer and not read yet, and messages in the send
// buffer (a send waits for a slot as it waits for room). Credit is in bytes, so a peer may fill
// the whole receive buffer with small messages: 4096 slots take a full buffer of 64-byte messages
// (16 KiB per SEQPACKET connection, allocated on its first use). A peer that queues more, smaller
// ones nobody reads (4097 one-byte messages), gets its connection reset: ENOBUFS, logged. With 1024
// slots the bench's 64-byte echo had its connection reset after a few hundred messages.
export const RX_MESSAGE_SLOTS: u32 = 4096;
export const TX_MESSAGE_SLOTS: u32 = 256;
// The largest SEQPACKET message either way: the receive buffer's capacity (Linux refuses a message
// over the peer's buf_alloc with EMSGSIZE, and ours is at most this).
export const MAX_MESSAGE_SIZE: u32 = RECEIVE_BUFFER_CAPACITY;

export const CONN_FREE: i32 = 0;
export const CONN_CONNECTING: i32 = 1; // our REQUEST is out, waiting for RESPONSE (Linux TCP_SYN_SENT)
export const CONN_ESTABLISHED: i32 = 2;
export const CONN_CLOSING: i32 = 3; // the application closed: SHUTDOWN(3) sent or due, waiting for the peer's RST
export const CONN_CLOSED: i32 = 4; // tuple released (reset, failed, transport reset); a socket still holds it

// Control packets a connection owes the peer. Kept as flags (not a queue) so they coalesce and
// never need memory when the tx queue is full; the RST that ends a connection goes through the
// control queue instead, because the connection may be gone by the time it is sent.
export const OWE_REQUEST: u32 = 1;
export const OWE_RESPONSE: u32 = 2;
export const OWE_CREDIT_UPDATE: u32 = 4; // the application consumed enough to tell the peer
export const OWE_CREDIT_REPLY: u32 = 16; // answer to CREDIT_REQUEST or a buffer size change: always sent
export const OWE_SHUTDOWN: u32 = 8;
export const OWE_CREDIT_REQUEST: u32 = 32; // stalled by our own buffer size: ask for the peer's fwd_cnt

export class Connection {
  index: i32;
  state: i32 = CONN_FREE;
  type: u32 = VIRTIO_VSOCK_TYPE_STREAM; // the wire type, the same on every packet of the connection
  outbound: bool = false; // we connected (the connection owns its local port) or it was accepted
  localPort: u32 = 0;
  peerCid: u64 = 0;
  peerPort: u32 = 0;
  fd: i32 = -1; // socket holding it; -1 while in an accept queue or after close (orphan)
  listenerFd: i32 = -1; // set while waiting in that listener's accept queue
  acceptOrder: u64 = 0; // accept queue position (lowest first)

  // Receive side: rx holds bytes not read yet; bufAlloc is the buffer size the application asked
  // for; fwdCnt counts bytes the application consumed; lastFwdCntSent is the fwd_cnt the peer last
  // saw from us; creditEnd is how far (in fwd_cnt's byte count) we ever let the peer send, which
  // never moves back (credit.ts).
  rx: ByteRing;
  bufAlloc: u32 = RECEIVE_BUFFER_CAPACITY;
  fwdCnt: u32 = 0;
  lastFwdCntSent: u32 = 0;
  creditEnd: u32 = 0;

  // Send side: txCnt counts bytes we sent; the peer's window is peerBufAlloc - (txCnt - peerFwdCnt).
  tx: ByteRing;
  txCnt: u32 = 0;
  peerBufAlloc: u32 = 0;
  peerFwdCnt: u32 = 0;
  creditProbeAt: u64 = 0; // when to ask for credit while stalled by our own size (0: not stalled)
  creditProbes: u32 = 0; // CREDIT_REQUESTs sent in this stall

  // SEQPACKET only (message-queue.ts, messages.ts). rxMessages: messages complete in rx; rxPartial:
  // bytes of the message still arriving, at rx's tail; rxDiscarding: dropping an oversized
  // message's bytes until its EOM. txMessages: for each message in tx, its bytes not sent yet
  // (the open one included); txOpenLeft: bytes of the last message the application still owes.
  rxMessages: MessageQueue;
  rxPartial: u32 = 0;
  rxDiscarding: bool = false;
  txMessages: MessageQueue;
  txOpenLeft: u32 = 0;
  messagesDropped: u32 = 0;

  peerShutdown: u32 = 0; // VIRTIO_VSOCK_SHUTDOWN_* bits the peer sent
  localShutdown: u32 = 0; // bits the application asked for (same encoding)
  shutdownSent: u32 = 0; // bits already on the wire
  owed: u32 = 0; // OWE_* flags
  error: i32 = 0; // errno to report (failed connect, transport reset), 0 when none
  established: bool = false; // reached ESTABLISHED at least once (for the close log line)
  deadline: u64 = 0; // connect timeout (CONNECTING) or close timeout (CLOSING)

  openedAt: u64 = 0;
  bytesArrived: u64 = 0; // RW payload that reached this connection, whatever became of it
  bytesReceived: u64 = 0;
  bytesSent: u64 = 0;
  dropped: u32 = 0; // RW payload bytes dropped because the peer overran our window
  endReason: string = "";

  constructor(index: i32) {
    this.index = index;
    this.rx = new ByteRing(RECEIVE_BUFFER_CAPACITY);
    this.tx = new ByteRing(SEND_BUFFER_CAPACITY);
    this.rxMessages = new MessageQueue(RX_MESSAGE_SLOTS);
    this.txMessages = new MessageQueue(TX_MESSAGE_SLOTS);
  }

  // Drops everything waiting to be sent (the connection ended, or the peer reads no more).
  clearSend(): void {
    this.tx.reset();
    this.txMessages.reset();
    this.txOpenLeft = 0;
  }

  seqpacket(): bool {
    return this.type == VIRTIO_VSOCK_TYPE_SEQPACKET;
  }

  // Makes this a SEQPACKET connection (before any packet of it is sent or taken).
  makeSeqpacket(): void {
    this.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
    this.rxMessages.allocate();
    this.txMessages.allocate();
  }

  // Back to a blank slate for reuse (buffers stay allocated).
  clear(): void {
    this.state = CONN_FREE;
    this.type = VIRTIO_VSOCK_TYPE_STREAM;
    this.rxMessages.reset();
    this.rxPartial = 0;
    this.rxDiscarding = false;
    this.txMessages.reset();
    this.txOpenLeft = 0;
    this.messagesDropped = 0;
    this.outbound = false;
    this.localPort = 0;
    this.peerCid = 0;
    this.peerPort = 0;
    this.fd = -1;
    this.listenerFd = -1;
    this.acceptOrder = 0;
    this.rx.reset();
    this.bufAlloc = RECEIVE_BUFFER_CAPACITY;
    this.fwdCnt = 0;
    this.lastFwdCntSent = 0;
    this.creditEnd = 0;
    this.tx.reset();
    this.txCnt = 0;
    this.peerBufAlloc = 0;
    this.peerFwdCnt = 0;
    this.creditProbeAt = 0;
    this.creditProbes = 0;
    this.peerShutdown = 0;
    this.localShutdown = 0;
    this.shutdownSent = 0;
    this.owed = 0;
    this.error = 0;
    this.established = false;
    this.deadline = 0;
    this.openedAt = 0;
    this.bytesArrived = 0;
    this.bytesReceived = 0;
    this.bytesSent = 0;
    this.dropped = 0;
    this.endReason = "";
  }

  // Whether packets for this tuple still reach the connection (Linux: still in the connected table).
  inTable(): bool {
    return this.state == CONN_CONNECTING || this.state == CONN_ESTABLISHED || this.state == CONN_CLOSING;
  }

  matches(localPort: u32, peerCid: u64, peerPort: u32): bool {
    return this.localPort == localPort && this.peerCid == peerCid && this.peerPort == peerPort;
  }
}
