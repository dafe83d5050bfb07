// send and recv on a SEQPACKET socket (api.ts calls these; errors come back as -errno and api.ts
// logs them). One send is one message, one recv one message:
//  - send(len): the whole message is queued at once when the send buffer (64 KiB) can take it,
//    else nothing (EAGAIN, or it waits as the socket's send timeout says). A message larger than
//    the send buffer goes in as the buffer drains: a send that must stop early (non-blocking, or
//    its timeout passed) returns the bytes taken, n < len, and the message stays open: the next
//    send must pass exactly its remaining len - n bytes (anything else is EINVAL), and the EOM
//    goes out with its last byte. Larger than the peer's buffer, the socket's own buffer size or
//    256 KiB: EMSGSIZE (Linux).
//    len 0 sends nothing and returns 0 (Linux too).
//  - recv(len): the oldest complete message; a longer one is cut to len and the rest discarded
//    (MSG_TRUNC in vs_recvmsg's flags; with MSG_TRUNC in flags recv returns the real length, as
//    Linux's recv(2)). MSG_PEEK leaves it queued. A message that was dropped because it could
//    never fit the receive buffer reads as EMSGSIZE, once, in its place.
import { clockNs } from "../platform/imports";
import { MSG_EOR, MSG_PEEK, MSG_TRUNC } from "./api-constants";
import { Connection, CONN_ESTABLISHED, MAX_MESSAGE_SIZE, OWE_CREDIT_UPDATE } from "../vsock-protocol/connection";
import { creditUpdateDue, txBufAlloc } from "../vsock-protocol/credit";
import { EAGAIN, EINVAL, EMSGSIZE, EPIPE } from "../vsock-protocol/errors";
import {
  nextMessageEndsRecord,
  nextMessageLength,
  openMessage,
  skipDroppedMessage,
  takeMessage,
  writeMessageBytes,
} from "../vsock-protocol/messages";
import { VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_SEND } from "../wire/vsock-header";
import { vsockPoll } from "../vsock-protocol/stack";

// MSG_TRUNC | MSG_EOR of the last message recvMessage returned (vs_recvmsg's flags output).
export let lastMessageFlags: i32 = 0;

// Whether a new message of `len` bytes may start now: a slot is free, and it fits whole, or it
// could never fit whole (larger than the send buffer) and some room is free.
function messageCanStart(c: Connection, len: u32): bool {
  if (c.txMessages.full()) return false;
  return len <= c.tx.free() || (len > c.tx.capacity && c.tx.free() > 0);
}

export function sendMessage(c: Connection, buf: usize, len: u32, flags: i32, nonBlocking: bool, deadline: u64): i32 {
  const continuing = c.txOpenLeft > 0;
  if (continuing) {
    if (len != c.txOpenLeft) return -EINVAL; // the open message's rest, nothing else
  } else {
    if (len == 0) return 0;
    // Linux's rule since its TX credit cap: a message larger than what may be in flight could
    // never arrive whole, and a receiver frees no credit before a message's end.
    if (len > MAX_MESSAGE_SIZE || len > txBufAlloc(c)) return -EMSGSIZE;
  }
  let total: u32 = 0;
  while (true) {
    if (c.error != 0) return total > 0 ? <i32>total : -c.error;
    if (
      c.state != CONN_ESTABLISHED ||
      (c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 ||
      (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0
    ) {
      return total > 0 ? <i32>total : -EPIPE;
    }
    if (c.txOpenLeft == 0 && total == 0 && !continuing && messageCanStart(c, len)) {
      openMessage(c, len, (flags & MSG_EOR) != 0);
    }
    if (c.txOpenLeft > 0) total += writeMessageBytes(c, buf + total, len - total);
    if (total == len) return <i32>total;
    if (nonBlocking || clockNs() >= deadline) return total > 0 ? <i32>total : -EAGAIN;
    vsockPoll();
  }
}

export function recvMessage(c: Connection, buf: usize, len: u32, flags: i32, nonBlocking: bool, deadline: u64): i32 {
  lastMessageFlags = 0;
  while (true) {
    if ((c.localShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) != 0) return 0; // SHUT_RD: EOF at once, like Linux
    const length = nextMessageLength(c);
    if (length == -2) {
      if ((flags & MSG_PEEK) == 0) skipDroppedMessage(c);
      return -EMSGSIZE;
    }
    if (length >= 0) {
      const peek = (flags & MSG_PEEK) != 0;
      if (<u32>length > len) lastMessageFlags |= MSG_TRUNC;
      if (nextMessageEndsRecord(c)) lastMessageFlags |= MSG_EOR;
      takeMessage(c, buf, len, peek);
      if (!peek && c.state == CONN_ESTABLISHED && creditUpdateDue(c)) c.owed |= OWE_CREDIT_UPDATE;
      return (flags & MSG_TRUNC) != 0 ? length : <i32>min(<u32>length, len);
    }
    if (c.error != 0) return -c.error;
    // EOF once the peer shut its sending side or the connection ended (a message cut short by
    // it is never delivered).
    if ((c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) != 0 || c.state != CONN_ESTABLISHED) return 0;
    if (nonBlocking || clockNs() >= deadline) return -EAGAIN;
    vsockPoll();
  }
}
