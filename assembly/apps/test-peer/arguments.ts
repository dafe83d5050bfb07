// The test-peer's answers and the checks of a command's words (commands.ts, data-commands.ts):
// a malformed line changes nothing and answers -22 EINVAL 0 00000000 parse=<reason>; an fd the
// test-peer did not open is EBADF. No timeout beyond 60 s is taken (none would be bounded).
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from "../../socket-api/api-constants";
import { VMADDR_CID_ANY } from "../../socket-api/app-support";
import { EBADF, EINVAL, errnoText } from "./errno-text";
import { Answer, Line, NOT_A_NUMBER } from "./line";
import { owns } from "./owned-sockets";

export const MAX_TIMEOUT_MS: i64 = 60000;
export const MS: i64 = 1_000_000;
export const POLLRDHUP: i32 = 0x2000; // Linux's; passed to vs_poll, which reports the hang-up as POLLHUP

export function malformed(a: Answer, reason: string): void {
  a.begin(-EINVAL, "EINVAL", 0, 0);
  a.key("parse");
  a.putStr(reason);
}

// A call's result: >= 0 is OK, < 0 a negative errno.
export function result(a: Answer, ret: i64): void {
  a.begin(ret, errnoText(ret < 0 ? <i32>-ret : 0), 0, 0);
}

// A { u32 cid; u32 port } the API wrote at `address`.
export function putAddress(a: Answer, name: string, address: usize): void {
  a.key(name);
  a.putUnsigned(load<u32>(address));
  a.putByte(0x3a);
  a.putUnsigned(load<u32>(address, 4));
}

export function putEvents(a: Answer, events: i32): void {
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

// The fd word at `index`: NOT_A_NUMBER when it is no number; EBADF-worthy when not ours.
export function fdArgument(line: Line, index: i32, a: Answer): i32 {
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
export function addressWord(line: Line, index: i32): i64 {
  if (line.is(index, "any")) return <i64>VMADDR_CID_ANY;
  const v = line.number(index);
  return v < 0 || v > <i64>U32.MAX_VALUE ? NOT_A_NUMBER : v;
}

export function arity(line: Line, a: Answer, least: i32, most: i32): bool {
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

export function boundedTimeoutMs(line: Line, index: i32, a: Answer): i64 {
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
