// SEQPACKET messages over a connection's byte rings (virtio 1.2 "Stream and seqpacket", Linux's
// virtio_transport_seqpacket_*): the receive side cuts the bytes into messages at each EOM, the
// send side remembers where each message ends so that its last packet carries EOM (and EOR when
// asked). Credit stays counted in bytes, exactly as for STREAM (credit.ts).
import { Connection } from "./connection";
import { advertisedBufAlloc } from "./credit";
import { MESSAGE_DROPPED, MESSAGE_EOR, MESSAGE_LENGTH_MASK } from "./message-queue";
import { VIRTIO_VSOCK_SEQ_EOM, VIRTIO_VSOCK_SEQ_EOR } from "../wire/vsock-header";

// receiveMessageBytes outcomes (stack.ts logs the bad ones).
export const MESSAGE_BYTES_TAKEN: i32 = 0;
export const MESSAGE_TOO_LONG: i32 = 1; // over the receive buffer: discarded up to its EOM
export const MESSAGE_QUEUE_FULL: i32 = 2; // more complete messages than RX_MESSAGE_SLOTS

// One RW packet's payload (already within our credit). A message whose bytes fill the whole
// receive buffer without an EOM can never be read whole (the peer has no credit left to finish
// it): its bytes are discarded, counted as consumed so credit flows again, and so is the rest of
// it up to its EOM; recv then reports EMSGSIZE in its place. Nothing else of the connection is lost.
export function receiveMessageBytes(c: Connection, flags: u32, payload: usize, length: u32): i32 {
  const eom = (flags & VIRTIO_VSOCK_SEQ_EOM) != 0;
  let outcome = MESSAGE_BYTES_TAKEN;
  if (c.rxDiscarding) {
    c.fwdCnt += length;
  } else {
    c.rx.write(payload, length);
    c.bytesReceived += length;
    c.rxPartial += length;
    if (!eom && c.rxPartial >= advertisedBufAlloc(c)) {
      c.rx.dropTail(c.rxPartial);
      c.fwdCnt += c.rxPartial;
      c.rxPartial = 0;
      c.rxDiscarding = true;
      outcome = MESSAGE_TOO_LONG;
    }
  }
  if (!eom) return outcome;
  let entry = c.rxPartial;
  if (c.rxDiscarding) {
    entry = MESSAGE_DROPPED;
    c.messagesDropped++;
  } else if ((flags & VIRTIO_VSOCK_SEQ_EOR) != 0) {
    entry |= MESSAGE_EOR;
  }
  c.rxPartial = 0;
  c.rxDiscarding = false;
  return c.rxMessages.push(entry) ? outcome : MESSAGE_QUEUE_FULL;
}

// Whether recv has a message (or a dropped one's EMSGSIZE) to give.
export function messageReady(c: Connection): bool {
  return c.rxMessages.count > 0;
}

// The next message's length (-1: none complete, -2: it was dropped as too long).
export function nextMessageLength(c: Connection): i32 {
  if (c.rxMessages.count == 0) return -1;
  const entry = c.rxMessages.first();
  if ((entry & MESSAGE_DROPPED) != 0) return -2;
  return <i32>(entry & MESSAGE_LENGTH_MASK);
}

// Whether the next message ended a record (EOR).
export function nextMessageEndsRecord(c: Connection): bool {
  return c.rxMessages.count > 0 && (c.rxMessages.first() & MESSAGE_EOR) != 0;
}

// Copies the first min(length, len) bytes of the next message to dst and, unless peek, consumes
// the whole message (the rest is lost: MSG_TRUNC). The caller checked nextMessageLength() >= 0.
export function takeMessage(c: Connection, dst: usize, len: u32, peek: bool): void {
  const length = c.rxMessages.first() & MESSAGE_LENGTH_MASK;
  const n = min(length, len);
  if (peek) {
    c.rx.peek(dst, n);
    return;
  }
  c.rx.read(dst, n);
  c.rx.consume(length - n);
  c.rxMessages.pop();
  c.fwdCnt += length;
}

// Forgets a dropped message's place (recv reported it).
export function skipDroppedMessage(c: Connection): void {
  c.rxMessages.pop();
}

// ---- send side ------------------------------------------------------------------------------

// Starts a message of `length` bytes (> 0); the caller checked a slot is free.
export function openMessage(c: Connection, length: u32, endsRecord: bool): void {
  c.txMessages.push(length | (endsRecord ? MESSAGE_EOR : 0));
  c.txOpenLeft = length;
}

// Appends bytes of the open message; returns how many fit in the send buffer.
export function writeMessageBytes(c: Connection, src: usize, len: u32): u32 {
  const n = c.tx.write(src, min(len, c.txOpenLeft));
  c.txOpenLeft -= n;
  return n;
}

// The largest next packet that stays inside the oldest unsent message (at most `limit` bytes).
export function messagePacketLength(c: Connection, limit: u32): u32 {
  return min(limit, c.txMessages.first() & MESSAGE_LENGTH_MASK);
}

// `n` bytes of the oldest message leave in one packet: its RW flags (EOM on its last piece).
export function messageBytesSent(c: Connection, n: u32): u32 {
  const entry = c.txMessages.first();
  if ((entry & MESSAGE_LENGTH_MASK) > n) {
    c.txMessages.setFirst(entry - n);
    return 0;
  }
  c.txMessages.pop();
  return VIRTIO_VSOCK_SEQ_EOM | ((entry & MESSAGE_EOR) != 0 ? VIRTIO_VSOCK_SEQ_EOR : 0);
}
