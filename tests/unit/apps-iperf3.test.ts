// The iperf3 server (port 5201) driven as iperf3's client drives it (tests/sim/iperf3-client.ts):
// forward, reverse, parallel, --bidir, -n, tests back to back, and clients that break the protocol.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import {
  ACCESS_DENIED,
  ControlReader,
  CREATE_STREAMS,
  DISPLAY_RESULTS,
  EXCHANGE_RESULTS,
  IENOMSG,
  IENUMSTREAMS,
  IEMESSAGE,
  IEPROTOCOL,
  IERECVCOOKIE,
  IERECVPARAMS,
  IEREVERSEBIDIR,
  PARAM_EXCHANGE,
  SERVER_ERROR,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
  bigEndian32,
  connectIperf3,
  cookieBytes,
  framedJson,
  makeCookie,
  parameters,
  runIperf3Test,
} from "../sim/iperf3-client";
import { ECHO_PORT, SHUT_WR, connCount, guest, noViolations, text } from "./vsock-helpers";

const STATS_PORT = 1237;
const EINVAL = 22, EMSGSIZE = 90, EPROTO = 71, ETIMEDOUT = 110;

/** Nothing of a test is left: no connection, no socket but the services' listeners, no buffered byte. */
function assertClean(m: Machine, listeners: number): void {
  assert.ok(m.runUntil(() => connCount(m) === 0, 5000), `connections left: ${connCount(m)}`);
  assert.equal(m.exports.vsock_open_socket_count(), listeners, "sockets left open");
  assert.equal(m.exports.vsock_buffered_bytes(), 0n, "bytes left in connection buffers");
}

/** The echo service still answers (other services are unaffected). */
function echoWorks(m: Machine): void {
  const h = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  h.send("still here");
  h.shutdown(SHUT_WR);
  assert.ok(m.runUntil(() => h.eof, 2000));
  assert.equal(text(h.received), "still here");
  h.close();
}

function listenerCount(m: Machine): number {
  return m.exports.vsock_open_socket_count();
}

test("ready line names the iperf3 port", async () => {
  const { m } = await guest();
  assert.match(m.logLines(/info app: ready:/)[0], / stats=1237 iperf3=5201 seqpacket_echo=1238$/);
});

test("forward, one stream: every state in order, and the server counts exactly what was sent", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  const r = runIperf3Test(m, { bytesPerStream: 1_000_000 });
  assert.deepEqual(r.states, [PARAM_EXCHANGE, CREATE_STREAMS, TEST_START, TEST_RUNNING, EXCHANGE_RESULTS, DISPLAY_RESULTS]);
  assert.equal(r.server.streams.length, 1);
  assert.equal(r.server.streams[0].id, 1);
  assert.equal(r.server.streams[0].bytes, 1_000_000);
  assert.equal(r.server.sender_has_retransmits, -1, "a receiving server says -1, as iperf3");
  for (const key of ["cpu_util_total", "cpu_util_user", "cpu_util_system"]) assert.equal(typeof (r.server as any)[key], "number");
  for (const key of ["retransmits", "jitter", "errors", "packets", "start_time", "end_time"]) assert.equal(typeof (r.server.streams[0] as any)[key], "number");
  assert.ok(r.server.streams[0].end_time > 0, "a duration");
  assert.ok(m.runUntil(() => m.logLines("iperf3: test done").length === 1, 100));
  assert.match(m.logLines("iperf3: test done")[0], /streams=1 reverse=0 bidir=0 received=1000000 sent=0 duration_us=\d+ tests=1$/);
  assertClean(m, listeners);
  noViolations(m);
});

test("reverse (-R) with -n: the server sends exactly n bytes, and both counts agree", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  const r = runIperf3Test(m, { reverse: true, num: 1_500_000 });
  assert.equal(r.received[0], 1_500_000);
  assert.equal(r.server.streams[0].bytes, 1_500_000);
  assert.equal(r.server.sender_has_retransmits, 0);
  assertClean(m, listeners);
  noViolations(m);
});

test("reverse (-R) with -t: the server sends for the test's time, and both counts agree", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  const r = runIperf3Test(m, { reverse: true, time: 2, parallel: 2 });
  assert.ok(r.received[0] > 100_000 && r.received[1] > 100_000, `received ${r.received}`);
  assert.deepEqual(r.server.streams.map((s) => s.bytes), r.received);
  assertClean(m, listeners);
  noViolations(m);
});

test("-P 4 forward: four streams with iperf3's ids 1, 3, 4, 5, each counted exactly", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  const r = runIperf3Test(m, { parallel: 4, bytesPerStream: 400_000 });
  assert.deepEqual(r.server.streams.map((s) => s.id), [1, 3, 4, 5]);
  assert.deepEqual(r.server.streams.map((s) => s.bytes), [400_000, 400_000, 400_000, 400_000]);
  assertClean(m, listeners);
  noViolations(m);
});

test("-P 4 reverse with -n: the n bytes spread over the streams, counts agree per stream", async () => {
  const { m } = await guest();
  const r = runIperf3Test(m, { parallel: 4, reverse: true, num: 2_000_000 });
  assert.equal(r.received.reduce((a, b) => a + b, 0), 2_000_000);
  assert.deepEqual(r.server.streams.map((s) => s.bytes), r.received);
  noViolations(m);
});

test("--bidir -P 2: the first two streams carry the client's data, the last two the server's", async () => {
  const { m } = await guest();
  const r = runIperf3Test(m, { bidir: true, parallel: 2, num: 600_000, bytesPerStream: 300_000 });
  assert.deepEqual(r.server.streams.map((s) => s.id), [1, 3, 4, 5]);
  assert.deepEqual(r.server.streams.slice(0, 2).map((s) => s.bytes), [300_000, 300_000]);
  assert.deepEqual(r.server.streams.slice(2).map((s) => s.bytes), r.received.slice(2));
  assert.equal(r.received[2] + r.received[3], 600_000);
  noViolations(m);
});

test("-n forward with -l: the parameters are read (log line) and the count is exact", async () => {
  const { m } = await guest();
  const r = runIperf3Test(m, { num: 262_144, len: 8192, bytesPerStream: 262_144 });
  assert.equal(r.server.streams[0].bytes, 262_144);
  assert.match(m.logLines("iperf3: test requested")[0], /streams=1 reverse=0 bidir=0 time=0 num=262144 len=8192$/);
  noViolations(m);
});

test("ten tests back to back leave no connection, socket or buffered byte; conns=0 in the log and from the stats service", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  for (let i = 0; i < 10; i++) {
    const r = runIperf3Test(m, { parallel: 1 + (i % 4), reverse: i % 2 === 1, num: i % 2 === 1 ? 200_000 : 0, bytesPerStream: 50_000 + i }, i + 1);
    if (i % 2 === 0) assert.ok(r.server.streams.every((s) => s.bytes === 50_000 + i), `test ${i}`);
    else assert.deepEqual(r.server.streams.map((s) => s.bytes), r.received, `test ${i}`);
  }
  assertClean(m, listeners);
  assert.ok(m.runUntil(() => m.logLines(/iperf3: test done .* tests=10$/).length === 1, 100));
  assert.match(m.logLines(/connection closed .*local=5201/).at(-1)!, / conns=0$/);
  const stats = m.host.connect(STATS_PORT);
  assert.ok(m.runUntil(() => stats.eof, 500));
  assert.match(text(stats.received), /counters why=request conns=0 /);
  stats.close();
  noViolations(m);
});

/** Starts a test up to the state byte after the cookie; returns the control socket and its reader. */
function open(m: Machine, cookie = makeCookie()): { control: ReturnType<typeof connectIperf3>; reader: ControlReader } {
  const control = connectIperf3(m);
  control.send(cookieBytes(cookie));
  return { control, reader: new ControlReader(m, control) };
}

function expectServerError(reader: ControlReader, code: number, errno: number, step: string): void {
  assert.equal(reader.state(step), SERVER_ERROR, step);
  assert.deepEqual(reader.serverError(step), [code, errno], step);
}

/** After a refused client: its connection closed, a warn line, the services and a real test fine. */
function recovers(m: Machine, reason: RegExp): void {
  assert.ok(m.logLines(/warn app: iperf3: /).some((l) => reason.test(l)), `warn line ${reason}:\n${m.logLines("iperf3").join("\n")}`);
  echoWorks(m);
  const r = runIperf3Test(m, { bytesPerStream: 10_000 }, 99);
  assert.equal(r.server.streams[0].bytes, 10_000);
  noViolations(m);
}

test("malformed client: a bad cookie gets SERVER_ERROR IERECVCOOKIE", async () => {
  const { m } = await guest();
  const control = connectIperf3(m);
  const bad = cookieBytes(makeCookie());
  bad[36] = 0x41; // no NUL at the end
  bad[3] = 0x07; // and a control character
  control.send(bad);
  const reader = new ControlReader(m, control);
  expectServerError(reader, IERECVCOOKIE, EPROTO, "bad cookie");
  assert.ok(m.runUntil(() => control.eof, 200));
  control.close();
  recovers(m, /test aborted: bad cookie phase=cookie error=106 errno=71$/);
});

test("malformed client: an oversized JSON length gets SERVER_ERROR IERECVPARAMS EMSGSIZE", async () => {
  for (const length of [0xffffffff, 16385, 0]) {
    const { m } = await guest();
    const { control, reader } = open(m);
    assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
    control.send(bigEndian32(length));
    expectServerError(reader, IERECVPARAMS, EMSGSIZE, `length ${length}`);
    assert.ok(m.logLines(`length=${length >>> 0} max=16384`).length === 1);
    control.close();
    recovers(m, /test aborted: JSON length out of range phase=params-length error=114 errno=90$/);
  }
});

test("malformed client: truncated or invalid JSON gets SERVER_ERROR IERECVPARAMS EINVAL", async () => {
  const bad = ['{"tcp":true,"time":', '{"tcp":true,"time":10', '{"tcp":tru}', '[1,2]', '{"a":01}', '{"a":"x\u0001"}', '{"a":1}x', "[".repeat(40) + "]".repeat(40), '{"a":' + "[".repeat(20) + "]".repeat(20) + "}"];
  for (const json of bad) {
    const { m } = await guest();
    const { control, reader } = open(m);
    assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
    const body = new TextEncoder().encode(json);
    control.send(bigEndian32(body.length));
    control.send(body);
    expectServerError(reader, IERECVPARAMS, EINVAL, json);
    control.close();
    recovers(m, /test aborted: malformed parameters phase=params error=114 errno=22$/);
  }
});

test("malformed client: JSON cut short by the client (length says more, then silence) ends with IENOMSG after 30 s", async () => {
  const { m } = await guest();
  const { control, reader } = open(m);
  assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
  control.send(bigEndian32(200));
  control.send('{"tcp":true,"time":10,');
  m.poll(20);
  assert.equal(control.received.length, 1, "nothing more before the idle limit");
  m.advance(31_000_000_000n);
  expectServerError(reader, IENOMSG, ETIMEDOUT, "idle");
  control.close();
  recovers(m, /test aborted: client idle phase=params error=144 errno=110$/);
});

test("refused tests get iperf3's own error: --bidir with -R, too many streams, UDP", async () => {
  const cases: [Record<string, unknown>, number][] = [
    [{ reverse: true, bidirectional: true }, IEREVERSEBIDIR],
    [{ parallel: 100 }, IENUMSTREAMS],
    [{ udp: true }, IEPROTOCOL],
  ];
  for (const [extra, code] of cases) {
    const { m } = await guest();
    const { control, reader } = open(m);
    assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
    control.send(framedJson(parameters({ extra })));
    expectServerError(reader, code, 0, JSON.stringify(extra));
    control.close();
    recovers(m, /test aborted: test not supported phase=params error=\d+ errno=0$/);
  }
});

test("an unknown state byte while running gets SERVER_ERROR IEMESSAGE; a second client meanwhile gets ACCESS_DENIED", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  const cookie = makeCookie(7);
  const { control, reader } = open(m, cookie);
  assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
  control.send(framedJson(parameters({ parallel: 1 })));
  assert.equal(reader.state("create streams"), CREATE_STREAMS);
  // A second client while this test is set up: refused (iperf3 says ACCESS_DENIED too).
  const other = connectIperf3(m);
  other.send(cookieBytes(makeCookie(8)));
  assert.ok(m.runUntil(() => other.received.length >= 1, 500));
  assert.equal((other.received[0] << 24) >> 24, ACCESS_DENIED);
  // A data stream with another cookie is refused; the test goes on with the right one.
  const intruder = connectIperf3(m);
  intruder.send(cookieBytes(makeCookie(9)));
  const stream = connectIperf3(m);
  stream.send(cookieBytes(cookie));
  assert.ok(m.runUntil(() => intruder.received.length >= 1, 500));
  assert.equal((intruder.received[0] << 24) >> 24, ACCESS_DENIED);
  assert.equal(reader.state("test start"), TEST_START);
  assert.equal(reader.state("test running"), TEST_RUNNING);
  stream.send(new Uint8Array(5000));
  control.send(new Uint8Array([99]));
  expectServerError(reader, IEMESSAGE, EPROTO, "state 99");
  assert.ok(m.logLines(/warn app: iperf3: unexpected state from the client state=99/).length === 1);
  // In CREATE_STREAMS both newcomers are taken for data streams: their cookies are refused.
  assert.equal(m.logLines(/iperf3: data stream with a wrong cookie refused/).length, 2);
  for (const s of [control, other, intruder, stream]) s.close();
  assert.deepEqual(m.device!.violations, []);
  recovers(m, /test aborted: unexpected state phase=running error=110 errno=71$/);
  assertClean(m, listeners);
});

test("a client that vanishes mid-test (reset) or terminates leaves nothing behind", async () => {
  const { m } = await guest();
  const listeners = listenerCount(m);
  for (const how of ["reset", "terminate", "close-stream-first"]) {
    const cookie = makeCookie(3);
    const { control, reader } = open(m, cookie);
    assert.equal(reader.state("param exchange"), PARAM_EXCHANGE);
    control.send(framedJson(parameters({ parallel: 2, reverse: true })));
    assert.equal(reader.state("create streams"), CREATE_STREAMS);
    const streams = [connectIperf3(m), connectIperf3(m)];
    for (const s of streams) s.send(cookieBytes(cookie));
    assert.equal(reader.state("test start"), TEST_START);
    m.runUntil(() => streams[0].received.length > 100_000, 5000);
    if (how === "reset") {
      control.reset();
      for (const s of streams) s.reset();
    } else if (how === "terminate") {
      control.send(new Uint8Array([12])); // CLIENT_TERMINATE
      for (const s of streams) s.close();
      control.close();
    } else {
      for (const s of streams) s.close();
      m.poll(50);
      control.send(new Uint8Array([TEST_END]));
      control.close();
    }
    assertClean(m, listeners);
  }
  echoWorks(m);
  noViolations(m);
});
