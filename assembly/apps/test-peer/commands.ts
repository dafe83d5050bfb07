// The test-peer's commands (grammar in README.md, "Test-peer"): each runs one or a few real
// socket API calls on a socket the test-peer opened and fills in the one-line answer
//   <ret> <errno name|OK> <bytes> <crc32>[ key=value ...]
// ret is the call's result (a negative errno on failure); bytes and crc32 (zlib's) describe the
// data a send or recv moved (data-commands.ts). A malformed command changes nothing and answers
//   -22 EINVAL 0 00000000 parse=<reason>
// Blocking calls are bounded: the test-peer's sockets start with 10 s receive and send timeouts
// and no timeout may be set beyond 60 s, so no command holds the firmware's other services long.
import {
  SHUT_RD,
  SHUT_RDWR,
  SHUT_WR,
  SO_ERROR,
  SO_RCVLOWAT,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  SO_TYPE,
  SO_VM_SOCKETS_BUFFER_MAX_SIZE,
  SO_VM_SOCKETS_BUFFER_MIN_SIZE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  SO_VM_SOCKETS_CONNECT_TIMEOUT,
  SOCK_SEQPACKET,
  SOCK_STREAM,
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
  vs_setsockopt,
  vs_shutdown,
  vs_socket,
} from "../../socket-api/api";
import { VMADDR_CID_ANY } from "../../socket-api/app-support";
import { addressWord, arity, boundedTimeoutMs, fdArgument, malformed, MS, putAddress, result } from "./arguments";
import { cmdPoll, cmdQueue, cmdRecv, cmdSend, cmdWait, dataCommandsInit, SCRATCH_SIZE } from "./data-commands";
import { errnoText } from "./errno-text";
import { Answer, Line, NOT_A_NUMBER } from "./line";
import { disown, own, ownedCount } from "./owned-sockets";

const DEFAULT_TIMEOUT_NS: i64 = 10_000_000_000; // vsock_test's TIMEOUT: 10 s
const SO_LINGER: i32 = 13; // Linux's number; passed to the API, which has no SO_LINGER (EOPNOTSUPP)
const EMFILE_LOCAL: i32 = 24; // the test-peer's own table of sockets is full

let address: usize = 0; // { u32 cid; u32 port } and the 8-byte option value

export function commandsInit(): void {
  dataCommandsInit();
  if (address == 0) address = heap.alloc(16);
}

// ---- commands ----------------------------------------------------------------------------------

// A new socket of the test-peer's (already in owned-sockets): bounded blocking from the start.
function adopt(fd: i32): void {
  vs_setsockopt(fd, SO_RCVTIMEO, DEFAULT_TIMEOUT_NS);
  vs_setsockopt(fd, SO_SNDTIMEO, DEFAULT_TIMEOUT_NS);
}

// SEQPACKET where the device negotiated it; otherwise the API answers -ESOCKTNOSUPPORT, as Linux
// does for a type the transport lacks.
function openSocket(seqpacket: bool): i32 {
  return vs_socket(seqpacket ? SOCK_SEQPACKET : SOCK_STREAM);
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
  if (child >= 0) putAddress(a, "peer", address);
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
  if (line.is(index, "type")) return SO_TYPE;
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

function cmdName(line: Line, a: Answer, peer: bool): void {
  if (!arity(line, a, 1, 1)) return;
  const fd = fdArgument(line, 1, a);
  if (fd < 0) return;
  const r = peer ? vs_getpeername(fd, address) : vs_getsockname(fd, address);
  result(a, r);
  if (r >= 0) putAddress(a, "addr", address);
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
