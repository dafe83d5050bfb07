// Line-oriented logger to the debug console. Every line has the documented shape
//   [<seconds.micros>] <level> <subsystem>: <message> key=value ...
// A line is assembled in a static buffer (no allocation) and written with one log_write call,
// so a line is never torn. Levels above LOG_LEVEL (a build-time constant) compile away when the
// caller checks `logOn(level)` first, or cost one compare otherwise.
import { clockNs, logWrite } from "./imports";

export const LEVEL_ERROR: i32 = 0;
export const LEVEL_WARN: i32 = 1;
export const LEVEL_INFO: i32 = 2;
export const LEVEL_DEBUG: i32 = 3;

const LINE_CAPACITY: i32 = 480;
const line = new StaticArray<u8>(LINE_CAPACITY + 2);
const digits = new StaticArray<u8>(20);
let lineLength: i32 = 0;
let lineOpen = false;

// @ts-ignore: decorator
@inline export function logOn(level: i32): bool {
  return level <= LOG_LEVEL;
}

function putByte(b: u32): void {
  if (lineLength < LINE_CAPACITY) {
    unchecked((line[lineLength++] = <u8>b));
  }
}

// ASCII only: a character outside printable ASCII is written as '?', so a hostile string
// (e.g. a name read from the device) cannot inject control characters or fake lines.
export function logStr(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = <u32>s.charCodeAt(i);
    putByte(c >= 0x20 && c < 0x7f ? c : 0x3f);
  }
}

export function logDec(value: u64): void {
  if (value == 0) {
    putByte(0x30);
    return;
  }
  let n = 0;
  while (value != 0) {
    unchecked((digits[n++] = <u8>(0x30 + <u32>(value % 10))));
    value /= 10;
  }
  while (n > 0) putByte(unchecked(digits[--n]));
}

export function logSigned(value: i64): void {
  if (value < 0) {
    putByte(0x2d);
    logDec(<u64>-value);
  } else {
    logDec(<u64>value);
  }
}

// Hexadecimal without prefix, at least `width` digits.
export function logHex(value: u64, width: i32 = 1): void {
  let started = false;
  for (let shift = 60; shift >= 0; shift -= 4) {
    const nibble = <u32>((value >> <u64>shift) & 0xf);
    if (nibble != 0 || started || shift < width * 4) {
      started = true;
      putByte(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10);
    }
  }
}

export function logKv(key: string, value: u64): void {
  putByte(0x20);
  logStr(key);
  putByte(0x3d);
  logDec(value);
}

export function logKvSigned(key: string, value: i64): void {
  putByte(0x20);
  logStr(key);
  putByte(0x3d);
  logSigned(value);
}

export function logKvHex(key: string, value: u64, width: i32 = 1): void {
  putByte(0x20);
  logStr(key);
  logStr("=0x");
  logHex(value, width);
}

// "key=<hex bytes>": the first `count` bytes at `ptr`, two lowercase digits each.
export function logKvBytes(key: string, ptr: usize, count: u32): void {
  putByte(0x20);
  logStr(key);
  putByte(0x3d);
  for (let i: u32 = 0; i < count; i++) {
    const b = <u32>load<u8>(ptr + i);
    putByte(b >> 4 < 10 ? 0x30 + (b >> 4) : 0x57 + (b >> 4));
    putByte((b & 0xf) < 10 ? 0x30 + (b & 0xf) : 0x57 + (b & 0xf));
  }
}

export function logKvStr(key: string, value: string): void {
  putByte(0x20);
  logStr(key);
  putByte(0x3d);
  logStr(value);
}

// "[s.micros] " prefix from the monotonic clock.
function putTimestamp(): void {
  const micros = clockNs() / 1000;
  putByte(0x5b);
  logDec(micros / 1000000);
  putByte(0x2e);
  const frac = <u32>(micros % 1000000);
  for (let div: u32 = 100000; div > 0; div /= 10) putByte(0x30 + ((frac / div) % 10));
  putByte(0x5d);
  putByte(0x20);
}

function levelName(level: i32): string {
  if (level == LEVEL_ERROR) return "error";
  if (level == LEVEL_WARN) return "warn";
  if (level == LEVEL_INFO) return "info";
  return "debug";
}

// Starts a line. Returns false (and starts nothing) when the level is filtered out; the
// logAppend helpers are harmless no-ops on a line that was not started.
export function logBegin(level: i32, subsystem: string): bool {
  if (!logOn(level)) {
    lineOpen = false;
    lineLength = LINE_CAPACITY; // appends after a filtered begin are dropped
    return false;
  }
  logStartLine(level, subsystem);
  return true;
}

// Starts a line whatever the build's level.
export function logStartLine(level: i32, subsystem: string): void {
  lineOpen = true;
  lineLength = 0;
  putTimestamp();
  logStr(levelName(level));
  putByte(0x20);
  logStr(subsystem);
  putByte(0x3a);
  putByte(0x20);
}

export function logEnd(): void {
  if (!lineOpen) return;
  lineOpen = false;
  putByte(0x0a);
  if (line[lineLength - 1] != 0x0a) unchecked((line[lineLength++] = 0x0a)); // truncated line still ends
  logWrite(changetype<usize>(line), <u32>lineLength);
  if (captureBuffer != 0) capture();
  lineLength = 0;
}

// Capture: lines logged between logCaptureBegin and logCaptureEnd are also copied into a buffer
// (whole lines only), so a service can hand the host exactly what the log says.
let captureBuffer: usize = 0;
let captureCapacity: u32 = 0;
let captureLength: u32 = 0;

function capture(): void {
  if (captureLength + <u32>lineLength > captureCapacity) return;
  memory.copy(captureBuffer + captureLength, changetype<usize>(line), <usize>lineLength);
  captureLength += <u32>lineLength;
}

export function logCaptureBegin(buffer: usize, capacity: u32): void {
  captureBuffer = buffer;
  captureCapacity = capacity;
  captureLength = 0;
}

// Stops capturing; returns the bytes captured.
export function logCaptureEnd(): u32 {
  captureBuffer = 0;
  return captureLength;
}

// One-call forms for plain messages.
export function logLine(level: i32, subsystem: string, message: string): void {
  if (logBegin(level, subsystem)) {
    logStr(message);
    logEnd();
  }
}

export function logError(subsystem: string, message: string): void {
  logLine(LEVEL_ERROR, subsystem, message);
}
export function logWarn(subsystem: string, message: string): void {
  logLine(LEVEL_WARN, subsystem, message);
}
export function logInfo(subsystem: string, message: string): void {
  logLine(LEVEL_INFO, subsystem, message);
}
export function logDebug(subsystem: string, message: string): void {
  logLine(LEVEL_DEBUG, subsystem, message);
}
