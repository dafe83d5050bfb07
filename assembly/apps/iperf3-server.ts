// The iperf3 server (port 5201): one test at a time, as `iperf3 -s`, driven by the control
// connection's phases and stepped by appsPoll without ever blocking:
//   cookie -> PARAM_EXCHANGE, the client's parameters -> CREATE_STREAMS, the data streams (each
//   begins with the cookie) -> TEST_START, TEST_RUNNING -> data until the client's TEST_END ->
//   EXCHANGE_RESULTS, the client's results, ours -> DISPLAY_RESULTS -> the client's IPERF_DONE.
// A second client meanwhile gets ACCESS_DENIED; a malformed or hostile one gets SERVER_ERROR with
// iperf3's error number and errno, and a warn line; either way the next test starts clean.
// The test's state and its ends are in iperf3-test.ts.
// Two choices where iperf3 is loose, so that the client's byte counts match ours exactly:
//  - after TEST_END (forward), the server reads each stream until it has the bytes the client's
//    results say it sent (at most DRAIN_LIMIT_NS without progress) before answering;
//  - sending (-R) ends at -n / -k bytes exactly, or at -t (+ -O) seconds on the server's clock, or
//    at TEST_END. iperf3's client counts only what it read before it sent TEST_END (iperf_tcp_recv
//    counts in TEST_RUNNING only), so with -t the bytes still on their way then are sent but not
//    counted, as with iperf3's own server; with -n both counts are n.
import { clockNs } from "../platform/imports";
import { LEVEL_INFO, LEVEL_WARN, logEnd, logKv, logKvSigned, logKvStr } from "../platform/log";
import { vs_accept, vs_settimeout } from "../socket-api/api";
import { INPUT_COMPLETE, INPUT_ENDED } from "./iperf3-control";
import { JsonReader } from "./iperf3-json-reader";
import { JsonWriter } from "./iperf3-json-writer";
import {
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
  TEST_END,
  TEST_RUNNING,
  TEST_START,
} from "./iperf3-protocol";
import { readClientResults, writeServerResults } from "./iperf3-results";
import { arrangeStreams, dataBuffers, dataStart, deny, freeStreamSlot, noteOmitEnd, receiveAll, sendAll } from "./iperf3-data";
import { COOKIE_COMPLETE, COOKIE_ENDED } from "./iperf3-stream";
import {
  abortTest,
  control,
  dropTest,
  enter,
  finishTest,
  logTest,
  params,
  PHASE_COOKIE,
  PHASE_CREATE_STREAMS,
  PHASE_DONE_WAIT,
  PHASE_DRAIN,
  PHASE_FLUSH_SENDERS,
  PHASE_IDLE,
  PHASE_PARAMS,
  PHASE_PARAMS_LENGTH,
  PHASE_RESULTS,
  PHASE_RESULTS_LENGTH,
  PHASE_RUNNING,
  phaseName,
  streams,
  test,
} from "./iperf3-test";


let listener: i32 = -1;
const reader = new JsonReader();
const writer = new JsonWriter();
let cookie: usize = 0; // the control connection's cookie
let json: usize = 0;

export function iperf3Start(listenFd: i32): void {
  listener = listenFd;
  control.allocate();
  if (cookie == 0) cookie = heap.alloc(<usize>COOKIE_SIZE);
  if (json == 0) json = heap.alloc(<usize>MAX_JSON_LENGTH);
  dataStart();
}

// Tests completed (IPERF_DONE or the client's close after DISPLAY_RESULTS) since boot.
export function iperf3TestsDone(): u32 {
  return test.testsDone;
}

// ---- connections -------------------------------------------------------------------------------

function acceptConnections(now: u64): void {
  while (true) {
    const fd = vs_accept(listener, 0);
    if (fd < 0) return;
    vs_settimeout(fd, 0);
    if (test.phase == PHASE_DONE_WAIT) {
      // The results are out; the next client's connect can overtake the last one's IPERF_DONE
      // (through a TCP forward each connection travels on its own): this test is over.
      finishTest();
    }
    if (test.phase == PHASE_IDLE) {
      dataBuffers();
      control.open(fd);
      control.want(COOKIE_SIZE);
      test.expectedStreams = 0;
      test.acceptedStreams = 0;
      test.lastProgressNs = now;
      enter(PHASE_COOKIE, now);
      continue;
    }
    const slot = test.phase == PHASE_CREATE_STREAMS ? freeStreamSlot() : null;
    if (slot == null) {
      // iperf3 -s does the same: a client while a test runs is told the server is busy.
      if (logTest(LEVEL_INFO, "busy: a connection was refused", "")) {
        logKvStr("phase", phaseName());
        logEnd();
      }
      deny(fd);
      continue;
    }
    slot.start(fd, test.acceptedStreams++);
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
  test.expectedStreams = params.streamCount();
  test.sendLimit = params.sendLimit();
  if (logTest(LEVEL_INFO, "test requested", "")) {
    logKv("streams", test.expectedStreams);
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

function stepCreateStreams(now: u64): void {
  let verified = 0;
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    if (s.inUse() && !s.verified) {
      const r = s.readCookie();
      if (r == COOKIE_ENDED) {
        s.close();
      } else if (r == COOKIE_COMPLETE) {
        test.lastProgressNs = now;
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
  if (verified < test.expectedStreams) return;
  arrangeStreams();
  control.putByte(TEST_START);
  control.putByte(TEST_RUNNING);
  test.runningSinceNs = now;
  test.sentTotal = 0;
  test.omitDone = params.omitSeconds == 0;
  test.sendStopped = false;
  enter(PHASE_RUNNING, now);
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
  if (state == TEST_END && test.phase == PHASE_RUNNING) return true;
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
  noteOmitEnd(now);
  if (!readClientState()) return;
  test.endNs = now;
  test.sendStopped = true;
  enter(PHASE_FLUSH_SENDERS, now);
}

function stepFlushSenders(now: u64): void {
  receiveAll(now);
  for (let i = 0; i < test.expectedStreams; i++) {
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
  if (!readClientResults(reader, streams, test.expectedStreams)) return abortTest(IERECVRESULTS, ERRNO_EINVAL, "malformed results");
  enter(PHASE_DRAIN, now);
}

function stepDrain(now: u64): void {
  receiveAll(now);
  let missing: u64 = 0;
  for (let i = 0; i < test.expectedStreams; i++) {
    const s = unchecked(streams[i]);
    const target = s.clientBytes + s.omitted;
    if (!s.sender && s.inUse() && !s.ended && s.bytes < target) missing += target - s.bytes;
  }
  if (missing > 0 && now - test.lastProgressNs < DRAIN_LIMIT_NS && now - test.phaseSinceNs < IDLE_LIMIT_NS) return;
  if (missing > 0 && logTest(LEVEL_WARN, "the client's last bytes did not all come", "")) {
    logKv("missing", missing);
    logEnd();
  }
  for (let i = 0; i < test.expectedStreams; i++) unchecked(streams[i]).close();
  writer.reset(json, MAX_JSON_LENGTH);
  const serverSends = params.reverse || params.bidirectional;
  if (!writeServerResults(writer, streams, test.expectedStreams, (test.endNs - test.runningSinceNs) / 1000, serverSends)) {
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
  if (test.phase == PHASE_IDLE) {
    acceptConnections(now);
    if (test.phase == PHASE_IDLE) return;
  }
  control.moved = 0;
  if (test.phase == PHASE_COOKIE) stepCookie(now);
  else if (test.phase == PHASE_PARAMS_LENGTH) stepJsonLength(now, IERECVPARAMS, PHASE_PARAMS);
  else if (test.phase == PHASE_PARAMS) stepParams(now);
  else if (test.phase == PHASE_CREATE_STREAMS) {
    readClientState(); // nothing is expected here but CLIENT_TERMINATE or a close: either ends the test
    if (test.phase == PHASE_CREATE_STREAMS) stepCreateStreams(now);
  } else if (test.phase == PHASE_RUNNING) stepRunning(now);
  else if (test.phase == PHASE_FLUSH_SENDERS) stepFlushSenders(now);
  else if (test.phase == PHASE_RESULTS_LENGTH) stepJsonLength(now, IERECVRESULTS, PHASE_RESULTS);
  else if (test.phase == PHASE_RESULTS) stepResults(now);
  else if (test.phase == PHASE_DRAIN) stepDrain(now);
  else if (test.phase == PHASE_DONE_WAIT) stepDoneWait();
  acceptConnections(now); // after the step: a test that just ended makes way for the next client
  if (test.phase == PHASE_IDLE) return;
  control.flush();
  if (control.moved > 0) test.lastProgressNs = now;
  if (control.broken) return dropTest("control connection failed");
  if (now - test.lastProgressNs > IDLE_LIMIT_NS) abortTest(IENOMSG, ERRNO_ETIMEDOUT, "client idle");
}
