// The iperf3 server (port 5201): one test at a time, as `iperf3 -s`, driven by the control
// connection's phases and stepped by appsPoll without ever blocking:
//   cookie -> PARAM_EXCHANGE, the client's parameters -> CREATE_STREAMS, the data streams (each
//   begins with the cookie) -> TEST_START, TEST_RUNNING -> data until the client's TEST_END ->
//   EXCHANGE_RESULTS, the client's results, ours -> DISPLAY_RESULTS -> the client's IPERF_DONE.
// A second client meanwhile gets ACCESS_DENIED; a malformed or hostile one gets SERVER_ERROR with
// iperf3's error number and errno, and a warn line; either way the next test starts clean.
// Two choices where iperf3 is loose, so that the client's byte counts match ours exactly:
//  - after TEST_END (forward), the server reads each stream until it has the bytes the client's
//    results say it sent (at most DRAIN_LIMIT_NS without progress) before answering;
//  - sending (-R) ends at -n / -k bytes exactly, or at -t (+ -O) seconds on the server's clock, or
//    at TEST_END. iperf3's client counts only what it read before it sent TEST_END (iperf_tcp_recv
//    counts in TEST_RUNNING only), so with -t the bytes still on their way then are sent but not
//    counted, as with iperf3's own server; with -n both counts are n.
import { clockNs } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logKvSigned, logKvStr, logStr } from "../platform/log";
import { MSG_DONTWAIT } from "../socket-api/api-constants";
import { vs_accept, vs_close, vs_send, vs_settimeout } from "../socket-api/api";
import { ControlChannel, INPUT_COMPLETE, INPUT_ENDED } from "./iperf3-control";
import { JsonReader } from "./iperf3-json-reader";
import { JsonWriter } from "./iperf3-json-writer";
import { TestParameters } from "./iperf3-params";
import {
  ACCESS_DENIED,
  CLIENT_TERMINATE,
  COOKIE_SIZE,
  CREATE_STREAMS,
  DISPLAY_RESULTS,
  DRAIN_LIMIT_NS,
  ERRNO_EINVAL,
  ERRNO_EMSGSIZE,
  ERRNO_EPROTO,
  ERRNO_ETIMEDOUT,
  EXCHANGE_RESULTS,
  IDLE_LIMIT_NS,
  IEMESSAGE,
  IENOMSG,
  IERECVCOOKIE,
  IERECVPARAMS,
  IERECVRESULTS,
  IPERF_DONE,
  MAX_JSON_LENGTH,
  MAX_STREAMS,
  PARAM_EXCHANGE,
  SERVER_ERROR,
  streamId,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
} from "./iperf3-protocol";
import { readClientResults, writeServerResults } from "./iperf3-results";
import { COOKIE_COMPLETE, COOKIE_ENDED, Iperf3Stream } from "./iperf3-stream";

const PHASE_IDLE: i32 = 0; // no client
const PHASE_COOKIE: i32 = 1;
const PHASE_PARAMS_LENGTH: i32 = 2;
const PHASE_PARAMS: i32 = 3;
const PHASE_CREATE_STREAMS: i32 = 4;
const PHASE_RUNNING: i32 = 5;
const PHASE_FLUSH_SENDERS: i32 = 6; // TEST_END came: our sending streams close
const PHASE_RESULTS_LENGTH: i32 = 7;
const PHASE_RESULTS: i32 = 8;
const PHASE_DRAIN: i32 = 9; // the client's last bytes, up to its own count
const PHASE_DONE_WAIT: i32 = 10; // DISPLAY_RESULTS sent, waiting for IPERF_DONE

const DATA_CHUNK: u32 = 65536; // one send buffer (the scratch for receiving, the pattern for sending)
const NS_PER_SECOND: u64 = 1000000000;

let listener: i32 = -1;
let phase: i32 = PHASE_IDLE;
const control = new ControlChannel();
const streams = new StaticArray<Iperf3Stream>(MAX_STREAMS);
const params = new TestParameters();
const reader = new JsonReader();
const writer = new JsonWriter();
let cookie: usize = 0; // the control connection's cookie
let scratch: usize = 0;
let sendData: usize = 0;
let json: usize = 0;
let expectedStreams: i32 = 0;
let acceptedStreams: i32 = 0; // data connections taken in CREATE_STREAMS (ids follow this order)
let runningSinceNs: u64 = 0;
let endNs: u64 = 0;
let phaseSinceNs: u64 = 0;
let lastProgressNs: u64 = 0;
let omitDone = false;
let sendStopped = false;
let sentTotal: u64 = 0;
let sendLimit: u64 = 0; // 0: no byte limit
let testsDone: u32 = 0;

export function iperf3Start(listenFd: i32): void {
  listener = listenFd;
  control.allocate();
  if (cookie == 0) cookie = heap.alloc(<usize>COOKIE_SIZE);
  if (scratch == 0) scratch = heap.alloc(<usize>DATA_CHUNK);
  if (json == 0) json = heap.alloc(<usize>MAX_JSON_LENGTH);
  if (sendData == 0) {
    sendData = heap.alloc(<usize>DATA_CHUNK);
    // Not all zeros, so that nothing on the way can shrink it; the client discards the bytes.
    for (let i: u32 = 0; i < DATA_CHUNK; i++) store<u8>(sendData + <usize>i, <u8>((i * 7 + (i >> 8)) & 0xff));
  }
  for (let i = 0; i < MAX_STREAMS; i++) unchecked((streams[i] = new Iperf3Stream()));
}

// Tests completed (IPERF_DONE or the client's close after DISPLAY_RESULTS) since boot.
export function iperf3TestsDone(): u32 {
  return testsDone;
}

const PHASE_NAMES: StaticArray<string> = [
  "idle",
  "cookie",
  "params-length",
  "params",
  "create-streams",
  "running",
  "flush-senders",
  "results-length",
  "results",
  "drain",
  "done-wait",
];

function phaseName(): string {
  return unchecked(PHASE_NAMES[phase]);
}

function enter(next: i32, now: u64): void {
  phase = next;
  phaseSinceNs = now;
}

// "iperf3: <what>[: <reason>]" (the line's message), then the caller's keys and logEnd().
function logTest(level: i32, what: string, reason: string): bool {
  if (!logBegin(level, "app")) return false;
  logStr("iperf3: ");
  logStr(what);
  if (reason.length > 0) {
    logStr(": ");
    logStr(reason);
  }
  return true;
}

// ---- the end of a test -------------------------------------------------------------------------

function closeAll(): void {
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    s.close();
    s.verified = false;
  }
  control.close();
  phase = PHASE_IDLE;
}

// A refused or broken test: SERVER_ERROR, iperf3's error number and errno, then everything closes.
function abortTest(iperfError: i32, errno: i32, reason: string): void {
  if (logTest(LEVEL_WARN, "test aborted", reason)) {
    logKvStr("phase", phaseName());
    logKvSigned("error", iperfError);
    logKvSigned("errno", errno);
    logEnd();
  }
  control.putByte(SERVER_ERROR);
  control.putBigEndian32(<u32>iperfError);
  control.putBigEndian32(<u32>errno);
  closeAll();
}

// The client went away or ended the test itself: nothing to tell it.
function dropTest(reason: string): void {
  if (logTest(LEVEL_WARN, "test ended early", reason)) {
    logKvStr("phase", phaseName());
    logEnd();
  }
  closeAll();
}

function bytesBy(sender: bool): u64 {
  let total: u64 = 0;
  for (let i = 0; i < expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (s.sender == sender) total += s.bytes - s.omitted;
  }
  return total;
}

function finishTest(): void {
  testsDone++;
  if (logTest(LEVEL_INFO, "test done", "")) {
    logKv("streams", expectedStreams);
    logKv("reverse", params.reverse ? 1 : 0);
    logKv("bidir", params.bidirectional ? 1 : 0);
    logKv("received", bytesBy(false));
    logKv("sent", bytesBy(true));
    logKv("duration_us", (endNs - runningSinceNs) / 1000);
    logKv("tests", testsDone);
    logEnd();
  }
  closeAll();
}

// ---- connections -------------------------------------------------------------------------------

function deny(fd: i32): void {
  store<i8>(scratch, <i8>ACCESS_DENIED);
  vs_send(fd, scratch, 1, MSG_DONTWAIT);
  vs_close(fd);
}

function freeStreamSlot(): Iperf3Stream | null {
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    if (!s.inUse() && !s.verified) return s;
  }
  return null;
}

function acceptConnections(now: u64): void {
  while (true) {
    const fd = vs_accept(listener, 0);
    if (fd < 0) return;
    vs_settimeout(fd, 0);
    if (phase == PHASE_DONE_WAIT) {
      // The results are out; the next client's connect can overtake the last one's IPERF_DONE
      // (through a TCP forward each connection travels on its own): this test is over.
      finishTest();
    }
    if (phase == PHASE_IDLE) {
      control.open(fd);
      control.want(COOKIE_SIZE);
      expectedStreams = 0;
      acceptedStreams = 0;
      lastProgressNs = now;
      enter(PHASE_COOKIE, now);
      continue;
    }
    const slot = phase == PHASE_CREATE_STREAMS ? freeStreamSlot() : null;
    if (slot == null) {
      // iperf3 -s does the same: a client while a test runs is told the server is busy.
      if (logTest(LEVEL_INFO, "busy: a connection was refused", "")) {
        logKvStr("phase", phaseName());
        logEnd();
      }
      deny(fd);
      continue;
    }
    slot.start(fd, acceptedStreams++);
  }
}

// ---- phases ------------------------------------------------------------------------------------

function cookieWellFormed(): bool {
  for (let i: u32 = 0; i < COOKIE_SIZE - 1; i++) {
    const c = load<u8>(control.input + <usize>i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return load<u8>(control.input + <usize>(COOKIE_SIZE - 1)) == 0;
}

function stepCookie(now: u64): void {
  const r = control.fill();
  if (r == INPUT_ENDED) return dropTest("closed before its cookie");
  if (r != INPUT_COMPLETE) return;
  if (!cookieWellFormed()) return abortTest(IERECVCOOKIE, ERRNO_EPROTO, "bad cookie");
  memory.copy(cookie, control.input, <usize>COOKIE_SIZE);
  control.putByte(PARAM_EXCHANGE);
  control.want(4);
  enter(PHASE_PARAMS_LENGTH, now);
}

// A 4-byte big-endian length, then that many bytes of JSON; `next` follows the length.
function stepJsonLength(now: u64, iperfError: i32, next: i32): void {
  const r = control.fill();
  if (r == INPUT_ENDED) return dropTest("closed before its JSON");
  if (r != INPUT_COMPLETE) return;
  const length = control.bigEndian32();
  if (length == 0 || length > MAX_JSON_LENGTH) {
    if (logTest(LEVEL_WARN, "JSON length out of range", "")) {
      logKv("length", length);
      logKv("max", MAX_JSON_LENGTH);
      logEnd();
    }
    return abortTest(iperfError, ERRNO_EMSGSIZE, "JSON length out of range");
  }
  control.want(length);
  enter(next, now);
}

function stepParams(now: u64): void {
  const r = control.fill();
  if (r == INPUT_ENDED) return dropTest("closed inside its parameters");
  if (r != INPUT_COMPLETE) return;
  reader.reset(control.input, control.have);
  if (!params.read(reader)) return abortTest(IERECVPARAMS, ERRNO_EINVAL, "malformed parameters");
  const refused = params.check();
  if (refused != 0) return abortTest(refused, refused == IERECVPARAMS ? ERRNO_EINVAL : 0, "test not supported");
  expectedStreams = params.streamCount();
  sendLimit = params.sendLimit();
  if (logTest(LEVEL_INFO, "test requested", "")) {
    logKv("streams", expectedStreams);
    logKv("reverse", params.reverse ? 1 : 0);
    logKv("bidir", params.bidirectional ? 1 : 0);
    logKvSigned("time", params.timeSeconds);
    logKvSigned("num", params.bytes);
    logKvSigned("len", params.blockSize);
    logEnd();
  }
  control.putByte(CREATE_STREAMS);
  control.want(1); // CLIENT_TERMINATE may come at any time
  enter(PHASE_CREATE_STREAMS, now);
}

// The streams, sorted into connection order in slots 0..n-1, get their ids and directions.
function arrangeStreams(): void {
  for (let i = 0; i < expectedStreams; i++) {
    let best = -1;
    for (let j = i; j < MAX_STREAMS; j++) {
      const s = unchecked(streams[j]);
      if (s.verified && (best < 0 || s.acceptOrder < unchecked(streams[best]).acceptOrder)) best = j;
    }
    const t = unchecked(streams[i]);
    unchecked((streams[i] = streams[best]));
    unchecked((streams[best] = t));
    const s = unchecked(streams[i]);
    s.id = streamId(i);
    // --bidir: the client's sending streams connect first (iperf_create_streams(test, 1) first).
    s.sender = params.bidirectional ? i >= <i32>params.parallel : params.reverse;
  }
  // Connections beyond the test's (still sending a cookie): refused.
  for (let j = expectedStreams; j < MAX_STREAMS; j++) {
    const s = unchecked(streams[j]);
    if (s.inUse()) {
      deny(s.fd);
      s.fd = -1;
    }
  }
}

function stepCreateStreams(now: u64): void {
  let verified = 0;
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    if (s.inUse() && !s.verified) {
      const r = s.readCookie();
      if (r == COOKIE_ENDED) {
        s.close();
      } else if (r == COOKIE_COMPLETE) {
        lastProgressNs = now;
        if (s.cookieMatches(cookie)) {
          s.verified = true;
        } else {
          if (logTest(LEVEL_WARN, "data stream with a wrong cookie refused", "")) logEnd();
          deny(s.fd);
          s.fd = -1;
        }
      }
    }
    if (s.verified) verified++;
  }
  if (verified < expectedStreams) return;
  arrangeStreams();
  control.putByte(TEST_START);
  control.putByte(TEST_RUNNING);
  runningSinceNs = now;
  sentTotal = 0;
  omitDone = params.omitSeconds == 0;
  sendStopped = false;
  enter(PHASE_RUNNING, now);
}

function receiveAll(now: u64): void {
  for (let i = 0; i < expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (!s.sender && s.inUse() && s.receive(scratch, DATA_CHUNK) > 0) lastProgressNs = now;
  }
}

function sendAll(now: u64): void {
  if (params.timeSeconds > 0 && now - runningSinceNs >= <u64>(params.timeSeconds + params.omitSeconds) * NS_PER_SECOND) {
    sendStopped = true;
  }
  if (sendLimit > 0 && sentTotal >= sendLimit) sendStopped = true;
  if (sendStopped) return;
  for (let i = 0; i < expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (!s.sender || !s.inUse()) continue;
    const limit = sendLimit > 0 ? sendLimit - sentTotal : U64.MAX_VALUE;
    if (limit == 0) break;
    const sent = s.send(sendData, DATA_CHUNK, limit);
    if (sent > 0) lastProgressNs = now;
    sentTotal += sent;
  }
}

// A state byte from the client while the test runs (or before it): TEST_END, or CLIENT_TERMINATE.
// Returns true when TEST_END came; anything else ends the test here.
function readClientState(): bool {
  const r = control.fill();
  if (r == INPUT_ENDED) {
    dropTest("control connection closed");
    return false;
  }
  if (r != INPUT_COMPLETE) return false;
  const state = control.stateByte();
  if (state == TEST_END && phase == PHASE_RUNNING) return true;
  if (state == CLIENT_TERMINATE) {
    dropTest("client terminated");
    return false;
  }
  if (logTest(LEVEL_WARN, "unexpected state from the client", "")) {
    logKvSigned("state", state);
    logEnd();
  }
  abortTest(IEMESSAGE, ERRNO_EPROTO, "unexpected state");
  return false;
}

function stepRunning(now: u64): void {
  receiveAll(now);
  sendAll(now);
  if (!omitDone && now - runningSinceNs >= <u64>params.omitSeconds * NS_PER_SECOND) {
    omitDone = true;
    for (let i = 0; i < expectedStreams; i++) {
      const s = unchecked(streams[i]);
      s.omitted = s.bytes;
    }
  }
  if (!readClientState()) return;
  endNs = now;
  sendStopped = true;
  enter(PHASE_FLUSH_SENDERS, now);
}

function stepFlushSenders(now: u64): void {
  receiveAll(now);
  for (let i = 0; i < expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (s.sender) s.close(); // what is still buffered leaves before the SHUTDOWN
  }
  control.putByte(EXCHANGE_RESULTS);
  control.want(4);
  enter(PHASE_RESULTS_LENGTH, now);
}

function stepResults(now: u64): void {
  receiveAll(now);
  const r = control.fill();
  if (r == INPUT_ENDED) return dropTest("closed inside its results");
  if (r != INPUT_COMPLETE) return;
  reader.reset(control.input, control.have);
  if (!readClientResults(reader, streams, expectedStreams)) return abortTest(IERECVRESULTS, ERRNO_EINVAL, "malformed results");
  enter(PHASE_DRAIN, now);
}

function stepDrain(now: u64): void {
  receiveAll(now);
  let missing: u64 = 0;
  for (let i = 0; i < expectedStreams; i++) {
    const s = unchecked(streams[i]);
    const target = s.clientBytes + s.omitted;
    if (!s.sender && s.inUse() && !s.ended && s.bytes < target) missing += target - s.bytes;
  }
  if (missing > 0 && now - lastProgressNs < DRAIN_LIMIT_NS && now - phaseSinceNs < IDLE_LIMIT_NS) return;
  if (missing > 0 && logTest(LEVEL_WARN, "the client's last bytes did not all come", "")) {
    logKv("missing", missing);
    logEnd();
  }
  for (let i = 0; i < expectedStreams; i++) unchecked(streams[i]).close();
  writer.reset(json, MAX_JSON_LENGTH);
  const serverSends = params.reverse || params.bidirectional;
  if (!writeServerResults(writer, streams, expectedStreams, (endNs - runningSinceNs) / 1000, serverSends)) {
    return abortTest(IERECVRESULTS, ERRNO_EMSGSIZE, "results too long");
  }
  control.putBigEndian32(writer.length);
  control.putBytes(json, writer.length);
  control.putByte(DISPLAY_RESULTS);
  control.want(1);
  enter(PHASE_DONE_WAIT, now);
}

function stepDoneWait(): void {
  const r = control.fill();
  if (r == INPUT_ENDED) return finishTest(); // the results are out; a client may just close
  if (r != INPUT_COMPLETE) return;
  const state = control.stateByte();
  if (state != IPERF_DONE && logTest(LEVEL_WARN, "expected IPERF_DONE", "")) {
    logKvSigned("state", state);
    logEnd();
  }
  finishTest();
}

export function iperf3Poll(): void {
  if (listener < 0) return;
  const now = clockNs();
  if (phase == PHASE_IDLE) {
    acceptConnections(now);
    if (phase == PHASE_IDLE) return;
  }
  control.moved = 0;
  if (phase == PHASE_COOKIE) stepCookie(now);
  else if (phase == PHASE_PARAMS_LENGTH) stepJsonLength(now, IERECVPARAMS, PHASE_PARAMS);
  else if (phase == PHASE_PARAMS) stepParams(now);
  else if (phase == PHASE_CREATE_STREAMS) {
    readClientState(); // nothing is expected here but CLIENT_TERMINATE or a close: either ends the test
    if (phase == PHASE_CREATE_STREAMS) stepCreateStreams(now);
  } else if (phase == PHASE_RUNNING) stepRunning(now);
  else if (phase == PHASE_FLUSH_SENDERS) stepFlushSenders(now);
  else if (phase == PHASE_RESULTS_LENGTH) stepJsonLength(now, IERECVRESULTS, PHASE_RESULTS);
  else if (phase == PHASE_RESULTS) stepResults(now);
  else if (phase == PHASE_DRAIN) stepDrain(now);
  else if (phase == PHASE_DONE_WAIT) stepDoneWait();
  acceptConnections(now); // after the step: a test that just ended makes way for the next client
  if (phase == PHASE_IDLE) return;
  control.flush();
  if (control.moved > 0) lastProgressNs = now;
  if (control.broken) return dropTest("control connection failed");
  if (now - lastProgressNs > IDLE_LIMIT_NS) abortTest(IENOMSG, ERRNO_ETIMEDOUT, "client idle");
}
