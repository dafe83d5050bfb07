// The three default services, each a step function over a Session that never blocks:
//   echo   (1234) sends back every byte until EOF, then closes;
//   sink   (1235) reads to EOF, then answers "<bytes> <crc32-hex>\n" (zlib.crc32, 8 lowercase digits);
//   source (1236) reads a decimal byte count and "\n", sends that many pattern bytes, closes.
// A step returns false once the session is over (its socket is closed).
import { LEVEL_DEBUG, logBegin, logEnd, logKv, logKvHex, logKvStr, logStr } from "../platform/log";
import { MSG_DONTWAIT, POLLIN, POLLOUT } from "../socket-api/api-constants";
import { vs_close, vs_recv, vs_send } from "../socket-api/api";
import { EAGAIN, errnoName } from "../socket-api/app-support";
import { receivable, sendSpace, socketEvents } from "../socket-api/readiness";
import { crc32Begin, crc32End, crc32Update } from "./crc32";
import { fillSourcePattern } from "./source-pattern";
import { PHASE_DONE, PHASE_READING, PHASE_WRITING, Session, SERVICE_ECHO, SERVICE_SEQPACKET_ECHO, SERVICE_SINK } from "./session";
import { stepSeqpacketEcho } from "./seqpacket-echo";

export const SCRATCH_SIZE: u32 = 65536;
let scratch: usize = 0;

export function servicesInit(): void {
  if (scratch == 0) scratch = heap.alloc(<usize>SCRATCH_SIZE);
}

function serviceName(service: i32): string {
  return service == SERVICE_ECHO ? "echo" : service == SERVICE_SINK ? "sink" : "source";
}

function finish(s: Session, why: string): bool {
  if (logBegin(LEVEL_DEBUG, "app")) {
    logStr(serviceName(s.service));
    logStr(" session done");
    logKv("fd", s.fd);
    logKvStr("end", why);
    logKv("bytes", s.bytes);
    logEnd();
  }
  vs_close(s.fd); // buffered output still goes out before the SHUTDOWN
  s.fd = -1;
  s.phase = PHASE_DONE;
  return false;
}

// Nothing buffered and the read side reports POLLIN: EOF (0) or an error is what recv says.
function readEnded(s: Session): bool {
  return receivable(s.fd) == 0 && (socketEvents(s.fd) & POLLIN) != 0;
}

// Send would fail (peer gone or not reading any more): POLLOUT with no room means an error is due.
function writeDead(s: Session): bool {
  return sendSpace(s.fd) == 0 && (socketEvents(s.fd) & POLLOUT) != 0;
}

function stepEcho(s: Session): bool {
  while (true) {
    const n = min(min(receivable(s.fd), sendSpace(s.fd)), SCRATCH_SIZE);
    if (n == 0) break;
    const got = vs_recv(s.fd, scratch, n, MSG_DONTWAIT);
    if (got <= 0) break;
    vs_send(s.fd, scratch, <u32>got, MSG_DONTWAIT); // fits: sendSpace said so
    s.bytes += <u64>got;
  }
  if (receivable(s.fd) > 0 && writeDead(s)) return finish(s, "peer stopped reading");
  if (readEnded(s)) return finish(s, "eof");
  return true;
}

function stepSink(s: Session): bool {
  if (s.phase == PHASE_READING) {
    while (receivable(s.fd) > 0) {
      const got = vs_recv(s.fd, scratch, SCRATCH_SIZE, MSG_DONTWAIT);
      if (got <= 0) break;
      s.crc = crc32Update(s.crc, scratch, <u32>got);
      s.bytes += <u64>got;
    }
    if (!readEnded(s)) return true;
    const r = vs_recv(s.fd, scratch, 1, MSG_DONTWAIT);
    if (r < 0 && r != -EAGAIN) return finish(s, errnoName(-r));
    s.putReplyDecimal(s.bytes);
    s.putReplyByte(0x20);
    s.putReplyHex8(crc32End(s.crc));
    s.putReplyByte(0x0a);
    s.phase = PHASE_WRITING;
    if (logBegin(LEVEL_DEBUG, "app")) {
      logStr("sink summary");
      logKv("bytes", s.bytes);
      logKvHex("crc32", crc32End(s.crc), 8);
      logEnd();
    }
  }
  return sendReply(s);
}

function sendReply(s: Session): bool {
  const left = s.replyLength - s.replySent;
  if (left > 0) {
    const sent = vs_send(s.fd, s.replyPointer(), <u32>left, MSG_DONTWAIT);
    if (sent > 0) s.replySent += sent;
    else if (sent != -EAGAIN) return finish(s, errnoName(-sent));
  }
  if (s.replySent < s.replyLength) return true;
  return finish(s, "replied");
}

// Reads the decimal count up to '\n' (a '\r' before it is tolerated). False: malformed or EOF.
function readCount(s: Session): bool {
  while (receivable(s.fd) > 0) {
    if (vs_recv(s.fd, scratch, 1, MSG_DONTWAIT) != 1) return true;
    const c = <u32>load<u8>(scratch);
    if (c == 0x0a) {
      if (s.digits == 0) return false;
      s.phase = PHASE_WRITING;
      return true;
    }
    if (c == 0x0d) continue;
    if (c < 0x30 || c > 0x39 || s.digits >= 19) return false;
    s.target = s.target * 10 + <u64>(c - 0x30);
    s.digits++;
  }
  return !readEnded(s);
}

function stepSource(s: Session): bool {
  if (s.phase == PHASE_READING) {
    if (!readCount(s)) return finish(s, "bad request");
    if (s.phase == PHASE_READING) return true;
  }
  while (s.bytes < s.target) {
    const room = sendSpace(s.fd);
    if (room == 0) {
      if (writeDead(s)) return finish(s, "peer stopped reading");
      return true;
    }
    const left = s.target - s.bytes;
    const n = <u32>min<u64>(min<u64>(left, <u64>room), <u64>SCRATCH_SIZE);
    fillSourcePattern(scratch, s.bytes, n);
    const sent = vs_send(s.fd, scratch, n, MSG_DONTWAIT);
    if (sent <= 0) return sent == -EAGAIN ? true : finish(s, errnoName(-sent));
    s.bytes += <u64>sent;
  }
  return finish(s, "sent");
}

export function stepSession(s: Session): bool {
  if (s.service == SERVICE_ECHO) return stepEcho(s);
  if (s.service == SERVICE_SINK) return stepSink(s);
  if (s.service == SERVICE_SEQPACKET_ECHO) return stepSeqpacketEcho(s, scratch, SCRATCH_SIZE);
  return stepSource(s);
}
