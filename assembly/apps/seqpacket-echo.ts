// The SEQPACKET echo service (port 1238): every message goes back as one message, unchanged (its
// bytes, and its EOR mark). A message that fits the send buffer's free room is echoed at once
// through the services' scratch buffer; a larger one (up to 256 KiB) waits in one of a few pool
// buffers while the send buffer drains it (the socket API's open-message continuation). Empty
// messages cannot be sent (as in Linux, a send of 0 bytes sends nothing) and are read and skipped.
import { LEVEL_DEBUG, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import { MSG_DONTWAIT, MSG_EOR, POLLIN, POLLOUT } from "../socket-api/api-constants";
import { vs_close, vs_recvmsg, vs_send } from "../socket-api/api";
import { EAGAIN, errnoName } from "../socket-api/app-support";
import { messageLength, sendSpace, socketEvents } from "../socket-api/readiness";
import { PHASE_DONE, Session } from "./session";

export const SEQPACKET_ECHO_PORT: u32 = 1238;
const MESSAGE_CAPACITY: u32 = 262144; // the largest message
const POOL_SIZE: i32 = 2;
const pool = new StaticArray<usize>(POOL_SIZE);
const poolUsed = new StaticArray<bool>(POOL_SIZE);
const flagsWord = new StaticArray<u32>(1); // vs_recvmsg's flags output
const flagsOut: usize = changetype<usize>(flagsWord);

function takePoolBuffer(): i32 {
  for (let i = 0; i < POOL_SIZE; i++) {
    if (unchecked(poolUsed[i])) continue;
    if (unchecked(pool[i]) == 0) unchecked((pool[i] = heap.alloc(<usize>MESSAGE_CAPACITY)));
    unchecked((poolUsed[i] = true));
    return i;
  }
  return -1;
}

function releasePoolBuffer(s: Session): void {
  if (s.messageSlot >= 0) unchecked((poolUsed[s.messageSlot] = false));
  s.messageSlot = -1;
}

function finish(s: Session, why: string): bool {
  if (logBegin(LEVEL_DEBUG, "app")) {
    logStr("seqpacket echo session done");
    logKv("fd", s.fd);
    logKvStr("end", why);
    logKv("bytes", s.bytes);
    logEnd();
  }
  releasePoolBuffer(s);
  vs_close(s.fd);
  s.fd = -1;
  s.phase = PHASE_DONE;
  return false;
}

// Sends more of the message held in the pool buffer. False when the session ended.
function continueHeld(s: Session): bool {
  const left = s.messageLength - s.messageSent;
  const r = vs_send(s.fd, unchecked(pool[s.messageSlot]) + s.messageSent, left, MSG_DONTWAIT | s.messageFlags);
  if (r == -EAGAIN) return true;
  if (r < 0) return finish(s, errnoName(-r));
  s.messageSent += <u32>r;
  if (s.messageSent == s.messageLength) {
    s.bytes += <u64>s.messageLength;
    releasePoolBuffer(s);
  }
  return true;
}

// One message from the socket into `buffer` and out again; its flags (EOR) kept.
function echoMessage(s: Session, buffer: usize, length: u32): i32 {
  const got = vs_recvmsg(s.fd, buffer, length, MSG_DONTWAIT, flagsOut);
  if (got <= 0) return got;
  const eor = (load<u32>(flagsOut) & <u32>MSG_EOR) != 0 ? MSG_EOR : 0;
  return vs_send(s.fd, buffer, <u32>got, MSG_DONTWAIT | eor);
}

export function stepSeqpacketEcho(s: Session, scratch: usize, scratchSize: u32): bool {
  while (true) {
    if (s.messageSlot >= 0) {
      if (!continueHeld(s)) return false;
      if (s.messageSlot >= 0) return true; // still going out
    }
    const length = messageLength(s.fd);
    if (length == -1) break;
    if (length == -2 || length == 0) {
      vs_recvmsg(s.fd, scratch, 0, MSG_DONTWAIT, 0); // EMSGSIZE (a dropped message) or an empty one
      continue;
    }
    const room = sendSpace(s.fd);
    if (<u32>length <= room && <u32>length <= scratchSize) {
      const r = echoMessage(s, scratch, <u32>length);
      if (r < 0 && r != -EAGAIN) return finish(s, errnoName(-r));
      s.bytes += <u64>length;
      continue;
    }
    if (<u32>length <= scratchSize || room == 0) {
      // It fits whole once the send buffer drains, or there is no room at all yet. POLLOUT with
      // no room means send would fail at once: the peer is gone or reads no more.
      if (room == 0 && (socketEvents(s.fd) & POLLOUT) != 0) return finish(s, "peer stopped reading");
      break;
    }
    const slot = takePoolBuffer();
    if (slot < 0) break; // every pool buffer busy: this message waits
    s.messageSlot = slot;
    s.messageLength = <u32>length;
    s.messageSent = 0;
    const got = vs_recvmsg(s.fd, unchecked(pool[slot]), <u32>length, MSG_DONTWAIT, flagsOut);
    if (got != length) return finish(s, got < 0 ? errnoName(-got) : "short message");
    s.messageFlags = (load<u32>(flagsOut) & <u32>MSG_EOR) != 0 ? MSG_EOR : 0;
  }
  // No message: the peer is done (POLLIN with nothing to read means EOF or an error).
  if (s.messageSlot < 0 && messageLength(s.fd) == -1 && (socketEvents(s.fd) & POLLIN) != 0) return finish(s, "eof");
  return true;
}
