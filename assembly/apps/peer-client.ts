// A client for guest-to-guest tests: with `opt/vsockfw/peer=<cid>:<port>[:<bytes>]` it connects
// to that peer (a sibling VM behind a vhost-user backend, or the host), sends <bytes> (default
// 65536) of the source pattern, shuts its write side, reads the echo to EOF and checks every byte.
// One line tells the outcome: `peer echo ok ...` (info) or `peer echo failed reason=...` (warn).
// The peer may still be booting: a refused connect is retried every RETRY_NS, up to ATTEMPTS.
// Non-blocking, stepped by appsPoll like the services.
import { clockNs } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import { runtimeOption } from "../platform/options";
import { MSG_DONTWAIT, SHUT_WR } from "../socket-api/api-constants";
import { vs_close, vs_recv, vs_send, vs_shutdown } from "../socket-api/api";
import { EAGAIN, errnoName } from "../socket-api/app-support";
import { sendSpace } from "../socket-api/readiness";
import { allowSiblingCid } from "../socket-api/app-support";
import { CONNECT_GAVE_UP, CONNECT_READY, RetryingConnect } from "./retrying-connect";
import { fillSourcePattern, sourceByte } from "./source-pattern";

const DEFAULT_BYTES: u64 = 65536;
const MAX_BYTES: u64 = 1 << 30;
const ATTEMPTS: i32 = 60;
const RETRY_NS: u64 = 500000000;
const CHUNK: u32 = 4096;

const OFF: i32 = 0;
const CONNECTING: i32 = 1; // connecting, or waiting for the next attempt
const TRANSFER: i32 = 2;
const DONE: i32 = 3;

let state: i32 = OFF;
let peerCid: u64 = 0;
let peerPort: u32 = 0;
let total: u64 = DEFAULT_BYTES;
let connect: RetryingConnect | null = null;
let fd: i32 = -1; // the connected socket, from TRANSFER on
let startedAt: u64 = 0;
let sent: u64 = 0;
let received: u64 = 0;
let mismatchAt: i64 = -1;
let writeShut = false;
let buffer: usize = 0;

// Decimal fields separated by ':'; false when malformed.
function parsePeer(text: string): bool {
  const fields = new StaticArray<u64>(3);
  let field = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x3a;
    if (c >= 0x30 && c <= 0x39 && digits < 11) {
      unchecked((fields[field] = unchecked(fields[field]) * 10 + <u64>(c - 0x30)));
      digits++;
    } else if (c == 0x3a && digits > 0 && field < 3) {
      field++;
      digits = 0;
    } else {
      return false;
    }
  }
  if (field < 2 || unchecked(fields[1]) > 0xffffffff) return false;
  peerCid = unchecked(fields[0]);
  peerPort = <u32>unchecked(fields[1]);
  if (field == 3) total = min(unchecked(fields[2]), MAX_BYTES);
  return true;
}

function report(ok: bool, reason: string, error: i32): void {
  if (logBegin(ok ? LEVEL_INFO : LEVEL_WARN, "app")) {
    logStr(ok ? "peer echo ok" : "peer echo failed");
    logKv("cid", peerCid);
    logKv("port", peerPort);
    logKv("bytes", received);
    if (ok) logKv("us", (clockNs() - startedAt) / 1000);
    logKv("attempts", connect!.attempts);
    if (!ok) logKvStr("reason", reason);
    if (error != 0) logKvStr("error", errnoName(error));
    if (mismatchAt >= 0) logKv("mismatch_at", <u64>mismatchAt);
    logEnd();
  }
}

export function peerClientStart(): void {
  const option = runtimeOption("peer");
  if (option.length == 0) return;
  if (!parsePeer(option) || (peerCid != 2 && !allowSiblingCid(peerCid))) {
    if (logBegin(LEVEL_WARN, "app")) {
      logStr("peer option ignored (want <cid>:<port>[:<bytes>])");
      logKvStr("value", option);
      logEnd();
    }
    return;
  }
  buffer = heap.alloc(<usize>CHUNK);
  connect = new RetryingConnect(peerCid, peerPort, ATTEMPTS, RETRY_NS);
  state = CONNECTING;
  if (logBegin(LEVEL_INFO, "app")) {
    logStr("peer client");
    logKv("cid", peerCid);
    logKv("port", peerPort);
    logKv("bytes", total);
    logEnd();
  }
}

function finish(ok: bool, reason: string, error: i32): void {
  if (fd >= 0) vs_close(fd);
  fd = -1;
  state = DONE;
  report(ok, reason, error);
}

function sendSome(): void {
  while (sent < total) {
    const room = min<u64>(min<u64>(<u64>sendSpace(fd), total - sent), <u64>CHUNK);
    if (room == 0) return;
    fillSourcePattern(buffer, sent, <u32>room);
    const n = vs_send(fd, buffer, <u32>room, MSG_DONTWAIT);
    if (n <= 0) return;
    sent += <u64>n;
  }
  if (!writeShut) {
    vs_shutdown(fd, SHUT_WR); // after the queued bytes: the echo ends when it has sent them back
    writeShut = true;
  }
}

// Reads what arrived and checks it; true at EOF (or an error, which finishes the run).
function receiveSome(): bool {
  while (true) {
    const n = vs_recv(fd, buffer, CHUNK, MSG_DONTWAIT);
    if (n == -EAGAIN) return false;
    if (n == 0) return true;
    if (n < 0) {
      finish(false, "recv", -n);
      return true;
    }
    for (let k: i32 = 0; k < n; k++) {
      if (mismatchAt < 0 && load<u8>(buffer + <usize>k) != sourceByte(received + <u64>k)) mismatchAt = <i64>(received + <u64>k);
    }
    received += <u64>n;
  }
}

export function peerClientPoll(): void {
  if (state == OFF || state == DONE) return;
  if (state == CONNECTING) {
    const c = connect!;
    const outcome = c.poll();
    if (outcome == CONNECT_GAVE_UP) finish(false, "connect", c.error);
    if (outcome != CONNECT_READY) return;
    fd = c.fd;
    state = TRANSFER;
    startedAt = clockNs();
  }
  sendSome();
  if (!receiveSome()) return;
  if (state == DONE) return;
  if (received != total) finish(false, "short echo", 0);
  else if (mismatchAt >= 0) finish(false, "bytes differ", 0);
  else finish(true, "", 0);
}
