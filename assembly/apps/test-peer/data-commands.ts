// The test-peer's data commands: send, recv, wait, poll, inq and outq (grammar in README.md,
// "Test-peer"). send and recv answer the bytes they moved and their CRC-32 (zlib's); send's
// bytes are 'A' (vsock_test's send_byte) or a seeded pattern the driver regenerates.
import { MSG_DONTWAIT, MSG_EOR, MSG_PEEK, MSG_TRUNC, POLLFD_SIZE, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from "../../socket-api/api-constants";
import { vs_poll, vs_recvmsg, vs_send } from "../../socket-api/api";
import { receivable, socketEvents, unsentBytes } from "../../socket-api/readiness";
import { clockNs } from "../../platform/imports";
import { crc32Begin, crc32End, crc32Update } from "../crc32";
import { arity, boundedTimeoutMs, fdArgument, malformed, MS, POLLRDHUP, putEvents, result } from "./arguments";
import { ETIMEDOUT, errnoText } from "./errno-text";
import { Answer, Line, NOT_A_NUMBER } from "./line";

// One recv / peek / wait at most; sends are chunked through it. 4 KiB over the API's 256 KiB
// SEQPACKET limit, so that one send command can offer a message just over it (EMSGSIZE).
export const SCRATCH_SIZE: u32 = 266240;
const MAX_TRANSFER: i64 = 64 << 20; // bytes one send or recv-all command may move
const ONE_BYTE_PATTERN: u8 = 0x41; // 'A', the byte vsock_test's send_byte sends

let scratch: usize = 0;
let pollEntry: usize = 0;
let messageFlags: usize = 0; // vs_recvmsg's flags output

export function dataCommandsInit(): void {
  if (scratch != 0) return;
  scratch = heap.alloc(<usize>SCRATCH_SIZE);
  pollEntry = heap.alloc(POLLFD_SIZE);
  messageFlags = heap.alloc(4);
}

// byte[i] of a send: 'A' without a seed, else (i * 7 + (i >> 8) + seed) & 0xff.
function fillPattern(offset: i64, length: u32, seeded: bool, seed: i64): void {
  if (!seeded) {
    memory.fill(scratch, ONE_BYTE_PATTERN, length);
    return;
  }
  for (let k: u32 = 0; k < length; k++) {
    const i = offset + <i64>k;
    store<u8>(scratch + <usize>k, <u8>((i * 7 + (i >> 8) + seed) & 0xff));
  }
}

export function cmdSend(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 5)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const length = line.number(2);
  if (length == NOT_A_NUMBER) return malformed(a, "bad-number");
  if (length < 0 || length > MAX_TRANSFER) return malformed(a, "length-range");
  let flags = 0;
  let seeded = false;
  let seed: i64 = 0;
  for (let i = 3; i < line.count; i++) {
    if (line.is(i, "dontwait")) flags |= MSG_DONTWAIT;
    else if (line.is(i, "eor")) flags |= MSG_EOR;
    else {
      seed = line.number(i);
      if (seed == NOT_A_NUMBER || seed < 0 || seed > 255) return malformed(a, "bad-word");
      seeded = true;
    }
  }
  let total: i64 = 0;
  let crc = crc32Begin();
  let errno = 0;
  do {
    const n = <u32>min<i64>(length - total, <i64>SCRATCH_SIZE);
    fillPattern(total, n, seeded, seed);
    const r = vs_send(fd, scratch, n, flags);
    if (r < 0) {
      errno = -r;
      break;
    }
    crc = crc32Update(crc, scratch, <u32>r);
    total += <i64>r;
    if (<u32>r < n) break; // a short send: the rest would not go either
  } while (total < length);
  const ret = total > 0 || errno == 0 ? total : -<i64>errno;
  a.begin(ret, errnoText(errno), <u64>total, crc32End(crc));
}

export function cmdRecv(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 7)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const length = line.number(2);
  if (length == NOT_A_NUMBER) return malformed(a, "bad-number");
  let flags = 0;
  let all = false;
  let nullBuffer = false;
  for (let i = 3; i < line.count; i++) {
    if (line.is(i, "peek")) flags |= MSG_PEEK;
    else if (line.is(i, "dontwait")) flags |= MSG_DONTWAIT;
    else if (line.is(i, "all")) all = true;
    else if (line.is(i, "nullbuf")) nullBuffer = true;
    else if (line.is(i, "trunc")) flags |= MSG_TRUNC;
    else return malformed(a, "bad-word");
  }
  const limit = all && (flags & MSG_PEEK) == 0 ? MAX_TRANSFER : <i64>SCRATCH_SIZE;
  if (length < 0 || length > limit) return malformed(a, "length-range");
  // nullbuf: address 0, which the API never takes as a data buffer (vsock_test's invalid buffer).
  const buffer: usize = nullBuffer ? 0 : scratch;
  let total: i64 = 0; // bytes copied
  let reported: i64 = 0; // what the calls returned (with MSG_TRUNC: a message's real length)
  let crc = crc32Begin();
  let errno = 0;
  let eof = false;
  let seen: u32 = 0; // MSG_TRUNC | MSG_EOR as vs_recvmsg reported them (SEQPACKET)
  do {
    const n = <u32>min<i64>(length - total, <i64>SCRATCH_SIZE);
    const r = vs_recvmsg(fd, buffer, n, flags, messageFlags);
    if (r < 0) {
      errno = -r;
      break;
    }
    seen |= load<u32>(messageFlags);
    const copied = min<u32>(<u32>r, n);
    if (r == 0 && n > 0) eof = true;
    if (copied > 0) crc = crc32Update(crc, buffer, copied);
    total += <i64>copied;
    reported += <i64>r;
    if (r == 0) break;
  } while (all && total < length);
  const ret = reported > 0 || errno == 0 ? reported : -<i64>errno;
  a.begin(ret, errnoText(errno), <u64>total, crc32End(crc));
  if (eof) {
    a.key("eof");
    a.putByte(0x31);
  }
  putMessageFlags(a, seen);
}

// flags=trunc,eor: what recvmsg's msg_flags said of the message(s) (nothing when neither).
function putMessageFlags(a: Answer, seen: u32): void {
  if ((seen & <u32>(MSG_TRUNC | MSG_EOR)) == 0) return;
  a.key("flags");
  if ((seen & <u32>MSG_TRUNC) != 0) a.putStr("trunc");
  if ((seen & <u32>MSG_TRUNC) != 0 && (seen & <u32>MSG_EOR) != 0) a.putByte(0x2c);
  if ((seen & <u32>MSG_EOR) != 0) a.putStr("eor");
}

// A comma list of in, out, rdhup, or none.
function eventBits(line: Line, index: i32): i32 {
  let bits = 0;
  let start = unchecked(line.starts[index]);
  const end = unchecked(line.ends[index]);
  while (start <= end) {
    let stop = start;
    while (stop < end && unchecked(line.bytes[stop]) != 0x2c) stop++;
    const bit = eventWord(line, start, stop);
    if (bit < 0) return -1;
    bits |= bit;
    start = stop + 1;
  }
  return bits;
}

function eventWord(line: Line, start: i32, stop: i32): i32 {
  const words: string[] = ["none", "in", "out", "rdhup"];
  const values: i32[] = [0, POLLIN, POLLOUT, POLLRDHUP];
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    if (word.length != stop - start) continue;
    let same = true;
    for (let k = 0; k < word.length && same; k++) same = <i32>unchecked(line.bytes[start + k]) == word.charCodeAt(k);
    if (same) return values[w];
  }
  return -1;
}

export function cmdPoll(line: Line, a: Answer): void {
  if (!arity(line, a, 3, 3)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const events = eventBits(line, 2);
  if (events < 0) return malformed(a, "bad-word");
  const ms = boundedTimeoutMs(line, 3, a);
  if (ms < 0) return;
  store<i32>(pollEntry, fd);
  store<u16>(pollEntry, <u16>events, 4);
  store<u16>(pollEntry, 0, 6);
  const r = vs_poll(pollEntry, 1, ms * MS);
  result(a, r);
  if (r >= 0) putEvents(a, <i32>load<u16>(pollEntry, 6));
}

// Waits until `bytes` are ready to read, the read side ended, or the timeout: ret = the bytes
// ready (ETIMEDOUT when fewer). vsock_test's waits for the peer's data and SO_RCVLOWAT stand-in.
export function cmdWait(line: Line, a: Answer): void {
  if (!arity(line, a, 3, 3)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const want = line.number(2);
  if (want == NOT_A_NUMBER || want < 0 || want > <i64>SCRATCH_SIZE) return malformed(a, "bad-number");
  const ms = boundedTimeoutMs(line, 3, a);
  if (ms < 0) return;
  const deadline = clockNs() + <u64>(ms * MS);
  store<i32>(pollEntry, fd);
  while (true) {
    const ready = <i64>receivable(fd);
    const events = socketEvents(fd);
    if (ready >= want) return result(a, ready);
    // Nothing more can come: EOF, an error, a reset.
    if ((events & (POLLHUP | POLLERR | POLLNVAL)) != 0 || ((events & POLLIN) != 0 && ready == 0)) {
      result(a, ready);
      putEvents(a, events);
      return;
    }
    if (clockNs() >= deadline) {
      a.begin(ready > 0 ? ready : -ETIMEDOUT, "ETIMEDOUT", 0, 0);
      return;
    }
    store<u16>(pollEntry, 0, 4); // no event asked: the call just moves the device along
    vs_poll(pollEntry, 1, 0);
  }
}

// SIOCINQ and SIOCOUTQ as the socket API counts them: bytes ready to read, bytes not yet sent.
export function cmdQueue(line: Line, a: Answer, incoming: bool): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  result(a, incoming ? <i64>receivable(fd) : <i64>unsentBytes(fd));
}
