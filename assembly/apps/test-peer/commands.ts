// The test-peer's commands (grammar in README.md, "Test-peer"): each runs one or a few real
// socket API calls on a socket the test-peer opened and fills in the one-line answer
//   <ret> <errno name|OK> <bytes> <crc32>[ key=value ...]
// ret is the call's result (a negative errno on failure); bytes and crc32 (zlib's) describe the
// data a send or recv moved. A malformed command changes nothing and answers
//   -22 EINVAL 0 00000000 parse=<reason>
// Blocking calls are bounded: the test-peer's sockets start with 10 s receive and send timeouts
// and no timeout may be set beyond 60 s, so no command holds the firmware's other services long.
import {
  MSG_DONTWAIT,
  MSG_PEEK,
  POLLERR,
  POLLFD_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SO_ERROR,
  SO_RCVLOWAT,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  SO_VM_SOCKETS_BUFFER_MAX_SIZE,
  SO_VM_SOCKETS_BUFFER_MIN_SIZE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  SO_VM_SOCKETS_CONNECT_TIMEOUT,
} from "../../socket-api/api-constants";
import {
  vs_accept,
  vs_bind,
  vs_close,
  vs_connect,
  vs_getpeername,
  vs_getsockname,
  vs_getsockopt,
  vs_listen,
  vs_local_cid,
  vs_poll,
  vs_recv,
  vs_send,
  vs_setsockopt,
  vs_shutdown,
  vs_socket,
} from "../../socket-api/api";
import { receivable, socketEvents, unsentBytes } from "../../socket-api/readiness";
import { VMADDR_CID_ANY } from "../../socket-api/app-support";
import { clockNs } from "../../platform/imports";
import { crc32Begin, crc32End, crc32Update } from "../crc32";
import { EBADF, EINVAL, ESOCKTNOSUPPORT, ETIMEDOUT, errnoText } from "./errno-text";
import { Answer, Line, NOT_A_NUMBER } from "./line";
import { disown, own, ownedCount, owns } from "./owned-sockets";

export const SCRATCH_SIZE: u32 = 262144; // one recv / peek / wait at most; sends are chunked through it
const MAX_TRANSFER: i64 = 64 << 20; // bytes one send or recv-all command may move
const MAX_TIMEOUT_MS: i64 = 60000;
const DEFAULT_TIMEOUT_NS: i64 = 10_000_000_000; // vsock_test's TIMEOUT: 10 s
const MS: i64 = 1_000_000;
const SO_LINGER: i32 = 13; // Linux's number; passed to the API, which has no SO_LINGER (EOPNOTSUPP)
const EMFILE_LOCAL: i32 = 24; // the test-peer's own table of sockets is full
const POLLRDHUP: i32 = 0x2000; // Linux's; passed to vs_poll, which reports the hang-up as POLLHUP
const ONE_BYTE_PATTERN: u8 = 0x41; // 'A', the byte vsock_test's send_byte sends

let scratch: usize = 0;
let address: usize = 0; // { u32 cid; u32 port } and the 8-byte option value
let pollEntry: usize = 0;

export function commandsInit(): void {
  if (scratch != 0) return;
  scratch = heap.alloc(<usize>SCRATCH_SIZE);
  address = heap.alloc(16);
  pollEntry = heap.alloc(POLLFD_SIZE);
}

// ---- answers ---------------------------------------------------------------------------------

function malformed(a: Answer, reason: string): void {
  a.begin(-EINVAL, "EINVAL", 0, 0);
  a.key("parse");
  a.putStr(reason);
}

// A call's result: >= 0 is OK, < 0 a negative errno.
function result(a: Answer, ret: i64): void {
  a.begin(ret, errnoText(ret < 0 ? <i32>-ret : 0), 0, 0);
}

function putAddress(a: Answer, name: string): void {
  a.key(name);
  a.putUnsigned(load<u32>(address));
  a.putByte(0x3a);
  a.putUnsigned(load<u32>(address, 4));
}

function putEvents(a: Answer, events: i32): void {
  a.key("revents");
  if (events == 0) {
    a.putStr("none");
    return;
  }
  let first = true;
  const bits: i32[] = [POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL, POLLRDHUP];
  const names: string[] = ["in", "out", "err", "hup", "nval", "rdhup"];
  for (let i = 0; i < bits.length; i++) {
    if ((events & bits[i]) == 0) continue;
    if (!first) a.putByte(0x2c);
    a.putStr(names[i]);
    first = false;
  }
}

// ---- argument checks ---------------------------------------------------------------------------

// The fd word at `index`: NOT_A_NUMBER when it is no number; EBADF-worthy when not ours.
function fdArgument(line: Line, index: i32, a: Answer): i32 {
  const fd = line.number(index);
  if (index >= line.count) {
    malformed(a, "missing-argument");
    return -1;
  }
  if (fd == NOT_A_NUMBER || fd < 0 || fd > I32.MAX_VALUE) {
    malformed(a, "bad-number");
    return -1;
  }
  if (!owns(<i32>fd)) {
    // Another service's socket, or none: refused without touching it.
    a.begin(-EBADF, "EBADF", 0, 0);
    return -1;
  }
  return <i32>fd;
}

// `any` or a u32.
function addressWord(line: Line, index: i32): i64 {
  if (line.is(index, "any")) return <i64>VMADDR_CID_ANY;
  const v = line.number(index);
  return v < 0 || v > <i64>U32.MAX_VALUE ? NOT_A_NUMBER : v;
}

function arity(line: Line, a: Answer, least: i32, most: i32): bool {
  if (line.count - 1 < least) {
    malformed(a, "missing-argument");
    return false;
  }
  if (line.count - 1 > most) {
    malformed(a, "extra-argument");
    return false;
  }
  return true;
}

function boundedTimeoutMs(line: Line, index: i32, a: Answer): i64 {
  const ms = line.number(index);
  if (ms == NOT_A_NUMBER) {
    malformed(a, "bad-number");
    return -1;
  }
  if (ms < 0 || ms > MAX_TIMEOUT_MS) {
    malformed(a, "timeout-range");
    return -1;
  }
  return ms;
}

// ---- commands ----------------------------------------------------------------------------------

// A new socket of the test-peer's (already in owned-sockets): bounded blocking from the start.
function adopt(fd: i32): void {
  vs_setsockopt(fd, SO_RCVTIMEO, DEFAULT_TIMEOUT_NS);
  vs_setsockopt(fd, SO_SNDTIMEO, DEFAULT_TIMEOUT_NS);
}

// The socket API makes SOCK_STREAM sockets only (vs_socket takes no type yet). For SEQPACKET the
// answer is Linux's for a type the transport lacks, until the API takes a type (issue 15).
function openSocket(seqpacket: bool): i32 {
  if (seqpacket) return -ESOCKTNOSUPPORT;
  return vs_socket();
}

function cmdSocket(line: Line, a: Answer): void {
  if (!arity(line, a, 1, 1)) return;
  const stream = line.is(1, "stream");
  if (!stream && !line.is(1, "seqpacket")) return malformed(a, "bad-word");
  const fd = openSocket(!stream);
  if (fd >= 0 && !own(fd)) {
    vs_close(fd);
    return result(a, -EMFILE_LOCAL);
  }
  if (fd >= 0) adopt(fd);
  result(a, fd);
}
function cmdBind(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 3)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const port = addressWord(line, 2);
  const cid = line.count > 3 ? addressWord(line, 3) : <i64>VMADDR_CID_ANY;
  if (port == NOT_A_NUMBER || cid == NOT_A_NUMBER) return malformed(a, "bad-number");
  result(a, vs_bind(fd, <u32>cid, <u32>port));
}

function cmdListen(line: Line, a: Answer): void {
  if (!arity(line, a, 1, 2)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const backlog = line.count > 2 ? line.number(2) : 1;
  if (backlog == NOT_A_NUMBER || backlog < 0 || backlog > 1024) return malformed(a, "bad-number");
  result(a, vs_listen(fd, <i32>backlog));
}

function cmdAccept(line: Line, a: Answer): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const child = vs_accept(fd, address);
  if (child >= 0 && !own(child)) {
    vs_close(child);
    return result(a, -EMFILE_LOCAL);
  }
  if (child >= 0) adopt(child);
  result(a, child);
  if (child >= 0) putAddress(a, "peer");
}

function cmdConnect(line: Line, a: Answer): void {
  if (!arity(line, a, 3, 3)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const cid = line.number(2);
  const port = line.number(3);
  if (cid < 0 || cid > <i64>U32.MAX_VALUE || port < 0 || port > <i64>U32.MAX_VALUE) return malformed(a, "bad-number");
  result(a, vs_connect(fd, <u32>cid, <u32>port));
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

function cmdSend(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 4)) return;
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

function cmdRecv(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 6)) return;
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
    else return malformed(a, "bad-word");
  }
  const limit = all && (flags & MSG_PEEK) == 0 ? MAX_TRANSFER : <i64>SCRATCH_SIZE;
  if (length < 0 || length > limit) return malformed(a, "length-range");
  // nullbuf: address 0, which the API never takes as a data buffer (vsock_test's invalid buffer).
  const buffer: usize = nullBuffer ? 0 : scratch;
  let total: i64 = 0;
  let crc = crc32Begin();
  let errno = 0;
  let eof = false;
  do {
    const n = <u32>min<i64>(length - total, <i64>SCRATCH_SIZE);
    const r = vs_recv(fd, buffer, n, flags);
    if (r < 0) {
      errno = -r;
      break;
    }
    if (r == 0 && n > 0) eof = true;
    if (r > 0) crc = crc32Update(crc, buffer, <u32>r);
    total += <i64>r;
    if (r == 0) break;
  } while (all && total < length);
  const ret = total > 0 || errno == 0 ? total : -<i64>errno;
  a.begin(ret, errnoText(errno), <u64>total, crc32End(crc));
  if (eof) {
    a.key("eof");
    a.putByte(0x31);
  }
}

function cmdShutdown(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 2)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  let how = -1;
  if (line.is(2, "rd")) how = SHUT_RD;
  else if (line.is(2, "wr")) how = SHUT_WR;
  else if (line.is(2, "rdwr")) how = SHUT_RDWR;
  else return malformed(a, "bad-word");
  result(a, vs_shutdown(fd, how));
}

function cmdClose(line: Line, a: Answer): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  disown(fd);
  result(a, vs_close(fd));
}

// Option names and their API numbers; timeouts are given in milliseconds.
function optionNumber(line: Line, index: i32): i32 {
  if (line.is(index, "buffer_size")) return SO_VM_SOCKETS_BUFFER_SIZE;
  if (line.is(index, "buffer_min_size")) return SO_VM_SOCKETS_BUFFER_MIN_SIZE;
  if (line.is(index, "buffer_max_size")) return SO_VM_SOCKETS_BUFFER_MAX_SIZE;
  if (line.is(index, "connect_timeout")) return SO_VM_SOCKETS_CONNECT_TIMEOUT;
  if (line.is(index, "rcvtimeo")) return SO_RCVTIMEO;
  if (line.is(index, "sndtimeo")) return SO_SNDTIMEO;
  if (line.is(index, "rcvlowat")) return SO_RCVLOWAT;
  if (line.is(index, "linger")) return SO_LINGER;
  if (line.is(index, "error")) return SO_ERROR;
  return -1;
}

function isTimeout(option: i32): bool {
  return option == SO_VM_SOCKETS_CONNECT_TIMEOUT || option == SO_RCVTIMEO || option == SO_SNDTIMEO;
}

function cmdSetsockopt(line: Line, a: Answer): void {
  if (!arity(line, a, 3, 3)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const option = optionNumber(line, 2);
  if (option < 0 || option == SO_ERROR) return malformed(a, "bad-word");
  let value = line.number(3);
  if (value == NOT_A_NUMBER) return malformed(a, "bad-number");
  if (isTimeout(option)) {
    value = boundedTimeoutMs(line, 3, a);
    if (value < 0) return;
    value *= MS;
  }
  result(a, vs_setsockopt(fd, option, value));
}

function cmdGetsockopt(line: Line, a: Answer): void {
  if (!arity(line, a, 2, 2)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const option = optionNumber(line, 2);
  if (option < 0) return malformed(a, "bad-word");
  const r = vs_getsockopt(fd, option, address);
  result(a, r);
  if (r < 0) return;
  const value = load<i64>(address);
  a.key("value");
  if (option == SO_ERROR) a.putStr(errnoText(<i32>value));
  else a.putSigned(isTimeout(option) && value > 0 ? value / MS : value);
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

function cmdPoll(line: Line, a: Answer): void {
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
function cmdWait(line: Line, a: Answer): void {
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

function cmdName(line: Line, a: Answer, peer: bool): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const r = peer ? vs_getpeername(fd, address) : vs_getsockname(fd, address);
  result(a, r);
  if (r >= 0) putAddress(a, "addr");
}

// SIOCINQ and SIOCOUTQ as the socket API counts them: bytes ready to read, bytes not yet sent.
function cmdQueue(line: Line, a: Answer, incoming: bool): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  result(a, incoming ? <i64>receivable(fd) : <i64>unsentBytes(fd));
}

function cmdInfo(line: Line, a: Answer): void {
  if (!arity(line, a, 0, 0)) return;
  result(a, 0);
  a.key("cid");
  a.putUnsigned(vs_local_cid());
  a.key("max_connections");
  a.putUnsigned(<u64>MAX_CONNECTIONS);
  a.key("sockets");
  a.putUnsigned(<u64>ownedCount());
  a.key("scratch");
  a.putUnsigned(<u64>SCRATCH_SIZE);
}

// Runs one split line; the answer is always filled in.
export function execute(line: Line, a: Answer): void {
  if (line.count == 0) return malformed(a, "empty");
  if (line.is(0, "socket")) cmdSocket(line, a);
  else if (line.is(0, "bind")) cmdBind(line, a);
  else if (line.is(0, "listen")) cmdListen(line, a);
  else if (line.is(0, "accept")) cmdAccept(line, a);
  else if (line.is(0, "connect")) cmdConnect(line, a);
  else if (line.is(0, "send")) cmdSend(line, a);
  else if (line.is(0, "recv")) cmdRecv(line, a);
  else if (line.is(0, "shutdown")) cmdShutdown(line, a);
  else if (line.is(0, "close")) cmdClose(line, a);
  else if (line.is(0, "setsockopt")) cmdSetsockopt(line, a);
  else if (line.is(0, "getsockopt")) cmdGetsockopt(line, a);
  else if (line.is(0, "poll")) cmdPoll(line, a);
  else if (line.is(0, "wait")) cmdWait(line, a);
  else if (line.is(0, "sockname")) cmdName(line, a, false);
  else if (line.is(0, "peername")) cmdName(line, a, true);
  else if (line.is(0, "inq")) cmdQueue(line, a, true);
  else if (line.is(0, "outq")) cmdQueue(line, a, false);
  else if (line.is(0, "info")) cmdInfo(line, a);
  else malformed(a, "unknown-command");
}
