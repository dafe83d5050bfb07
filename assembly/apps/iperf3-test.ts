// One iperf3 test's state (the server runs one at a time, as `iperf3 -s`): its phase and clocks,
// the control connection, the data streams and the parameters; and how a test ends: done, dropped
// (the client left or ended it) or aborted (SERVER_ERROR with iperf3's error number and errno).
// Every end closes everything of the test, so the next client starts clean.
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logKvSigned, logKvStr, logStr } from "../platform/log";
import { ControlChannel } from "./iperf3-control";
import { TestParameters } from "./iperf3-params";
import { MAX_STREAMS, SERVER_ERROR } from "./iperf3-protocol";
import { Iperf3Stream } from "./iperf3-stream";

export const PHASE_IDLE: i32 = 0; // no client
export const PHASE_COOKIE: i32 = 1;
export const PHASE_PARAMS_LENGTH: i32 = 2;
export const PHASE_PARAMS: i32 = 3;
export const PHASE_CREATE_STREAMS: i32 = 4;
export const PHASE_RUNNING: i32 = 5;
export const PHASE_FLUSH_SENDERS: i32 = 6; // TEST_END came: our sending streams close
export const PHASE_RESULTS_LENGTH: i32 = 7;
export const PHASE_RESULTS: i32 = 8;
export const PHASE_DRAIN: i32 = 9; // the client's last bytes, up to its own count
export const PHASE_DONE_WAIT: i32 = 10; // DISPLAY_RESULTS sent, waiting for IPERF_DONE

export class TestState {
  phase: i32 = PHASE_IDLE;
  phaseSinceNs: u64 = 0;
  lastProgressNs: u64 = 0; // any byte either way on any socket of the test (the idle limit)
  expectedStreams: i32 = 0;
  acceptedStreams: i32 = 0; // data connections taken in CREATE_STREAMS (ids follow this order)
  runningSinceNs: u64 = 0;
  endNs: u64 = 0; // TEST_END
  omitDone: bool = false;
  sendStopped: bool = false;
  sentTotal: u64 = 0;
  sendLimit: u64 = 0; // 0: no byte limit
  testsDone: u32 = 0; // completed since boot
}

export const test = new TestState();
export const control = new ControlChannel();
export const streams = new StaticArray<Iperf3Stream>(MAX_STREAMS);
export const params = new TestParameters();

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

export function phaseName(): string {
  return unchecked(PHASE_NAMES[test.phase]);
}

export function enter(next: i32, now: u64): void {
  test.phase = next;
  test.phaseSinceNs = now;
}

// "iperf3: <what>[: <reason>]" (the line's message), then the caller's keys and logEnd().
export function logTest(level: i32, what: string, reason: string): bool {
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

export function closeAll(): void {
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    s.close();
    s.verified = false;
  }
  control.close();
  test.phase = PHASE_IDLE;
}

// A refused or broken test: SERVER_ERROR, iperf3's error number and errno, then everything closes.
export function abortTest(iperfError: i32, errno: i32, reason: string): void {
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
export function dropTest(reason: string): void {
  if (logTest(LEVEL_WARN, "test ended early", reason)) {
    logKvStr("phase", phaseName());
    logEnd();
  }
  closeAll();
}

function bytesBy(sender: bool): u64 {
  let total: u64 = 0;
  for (let i = 0; i < test.expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (s.sender == sender) total += s.bytes - s.omitted;
  }
  return total;
}

export function finishTest(): void {
  test.testsDone++;
  if (logTest(LEVEL_INFO, "test done", "")) {
    logKv("streams", test.expectedStreams);
    logKv("reverse", params.reverse ? 1 : 0);
    logKv("bidir", params.bidirectional ? 1 : 0);
    logKv("received", bytesBy(false));
    logKv("sent", bytesBy(true));
    logKv("duration_us", (test.endNs - test.runningSinceNs) / 1000);
    logKv("tests", test.testsDone);
    logEnd();
  }
  closeAll();
}
