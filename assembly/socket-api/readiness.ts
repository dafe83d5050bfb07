// What a socket is ready for (vs_poll's revents), without touching the device. The services in
// assembly/apps use this directly to stay non-blocking.
import { Connection, CONN_CLOSED, CONN_CONNECTING, CONN_ESTABLISHED } from "../vsock-protocol/connection";
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from "./api-constants";
import { VIRTIO_VSOCK_SHUTDOWN_MASK, VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_SEND } from "../wire/vsock-header";
import { SOCK_CONNECTED, SOCK_LISTENING, socketForFd } from "../vsock-protocol/socket-table";
import { messageReady, nextMessageLength } from "../vsock-protocol/messages";
import { sendRoom as streamSendRoom } from "../vsock-protocol/credit";

// Something for recv: `lowat` bytes (STREAM, SO_RCVLOWAT), a complete message (SEQPACKET; a
// partial one is not).
function readable(c: Connection, lowat: u32): bool {
  return c.seqpacket() ? messageReady(c) : c.rx.count > 0 && c.rx.count >= lowat;
}

// Room for send: STREAM bytes within the buffer size, in flight included (credit.ts); SEQPACKET
// send-ring room with a free message slot, or an open message to continue.
function sendRoom(c: Connection): u32 {
  if (!c.seqpacket()) return streamSendRoom(c);
  if (c.txOpenLeft == 0 && c.txMessages.full()) return 0;
  return c.tx.free();
}

// POLLIN needs `lowat` bytes (SO_RCVLOWAT), or a read side that has ended.
function connectionEvents(c: Connection, lowat: u32): i32 {
  if (c.state == CONN_CONNECTING) return 0;
  let events: i32 = 0;
  if (c.error != 0) events |= POLLERR;
  if (c.state == CONN_CLOSED && !c.established) return events | POLLHUP; // failed connect
  const readEnded =
    (c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0 || (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0;
  if (readable(c, lowat) || readEnded || c.state == CONN_CLOSED) events |= POLLIN;
  const writeEnded =
    (c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 || (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0;
  // Writable when send would not block: room within the buffer size, or it would fail at once.
  if (c.state != CONN_ESTABLISHED || writeEnded || sendRoom(c) > 0) events |= POLLOUT;
  if (c.state == CONN_CLOSED || c.localShutdown == VIRTIO_VSOCK_SHUTDOWN_MASK) events |= POLLHUP;
  else if ((c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 && (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0)
    events |= POLLHUP;
  return events;
}

export function socketEvents(fd: i32): i32 {
  const s = socketForFd(fd);
  if (s == null) return POLLNVAL;
  if (s.state == SOCK_LISTENING) return s.pending > 0 ? POLLIN : 0;
  if (s.state == SOCK_CONNECTED) return connectionEvents(s.conn!, s.rcvLowat);
  return 0;
}

// Bytes vs_send would take right now without blocking (0 when it would block or fail).
export function sendSpace(fd: i32): u32 {
  const s = socketForFd(fd);
  if (s == null || s.state != SOCK_CONNECTED) return 0;
  const c = s.conn!;
  if (c.state != CONN_ESTABLISHED) return 0;
  if ((c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 || (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0) return 0;
  return sendRoom(c);
}

// The next complete SEQPACKET message's length: -1 none yet (or not a SEQPACKET socket), -2 one
// dropped as too long (recv reports EMSGSIZE for it).
export function messageLength(fd: i32): i32 {
  const s = socketForFd(fd);
  if (s == null || s.state != SOCK_CONNECTED || !s.conn!.seqpacket()) return -1;
  return nextMessageLength(s.conn!);
}

// Bytes vs_recv would return right now (STREAM; on SEQPACKET, bytes buffered, messages or not).
export function receivable(fd: i32): u32 {
  const s = socketForFd(fd);
  if (s == null || s.state != SOCK_CONNECTED) return 0;
  return s.conn!.rx.count;
}

// Bytes the application sent that have not left for the device yet (what SIOCOUTQ counts on a
// Linux vsock socket); 0 for a socket without a connection.
export function unsentBytes(fd: i32): u32 {
  const s = socketForFd(fd);
  if (s == null || s.state != SOCK_CONNECTED) return 0;
  return s.conn!.tx.count;
}

// True once everything the application sent has left the send buffer.
export function sendDrained(fd: i32): bool {
  const s = socketForFd(fd);
  if (s == null || s.state != SOCK_CONNECTED) return true;
  return s.conn!.tx.count == 0;
}
