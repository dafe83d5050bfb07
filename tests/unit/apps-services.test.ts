// The default applications: echo (1234), sink (1235), source (1236), the greeting, the ready line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import type { HostSocket } from "../../tools/vsock-model/host";
import { connectionLines } from "./connection-lines";
import {
  ECHO_PORT,
  GREETING_PORT,
  SINK_PORT,
  SOURCE_PORT,
  SHUT_WR,
  connCount,
  guest,
  noViolations,
  pattern,
  text,
} from "./vsock-helpers";

/** The source service's documented pattern (assembly/apps/source-pattern.ts). */
function sourcePattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + Math.floor(i / 256)) & 0xff;
  return out;
}

test("ready line once listening", async () => {
  const { m } = await guest();
  const ready = m.logLines(/info app: ready:/);
  assert.equal(ready.length, 1);
  assert.match(ready[0], /\] info app: ready: cid=33 echo=1234 sink=1235 source=1236 stats=1237 iperf3=5201 seqpacket_echo=1238$/);
});

test("echo returns every byte (2 MiB, more than every window) and closes after EOF", async () => {
  const { m } = await guest();
  const h = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const data = pattern(2 << 20, 21);
  h.send(data);
  h.shutdown(SHUT_WR);
  assert.ok(m.runUntil(() => h.eof, 20000));
  assert.equal(h.received.length, data.length);
  assert.deepEqual(h.received, data);
  h.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  noViolations(m);
});

test("sink answers '<bytes> <crc32>\\n' like zlib.crc32", async () => {
  const { m } = await guest();
  for (const size of [0, 1, 7, 9, 1000, 700000]) {
    const h = m.host.connect(SINK_PORT);
    assert.ok(m.runUntil(() => h.state === "connected", 100));
    const data = pattern(size, size + 1);
    if (size) h.send(data);
    h.shutdown(SHUT_WR);
    assert.ok(m.runUntil(() => h.eof, 20000), `size ${size}`);
    const expected = `${size} ${(crc32(data) >>> 0).toString(16).padStart(8, "0")}\n`;
    assert.equal(text(h.received), expected);
    h.close();
  }
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  noViolations(m);
});

test("source sends exactly the requested count of the documented pattern, then closes", async () => {
  const { m } = await guest();
  for (const count of [0, 5, 300, 1_000_000]) {
    const h = m.host.connect(SOURCE_PORT);
    assert.ok(m.runUntil(() => h.state === "connected", 100));
    h.send(`${count}\n`);
    assert.ok(m.runUntil(() => h.eof, 20000), `count ${count}`);
    assert.equal(h.received.length, count);
    assert.deepEqual(h.received, sourcePattern(count));
    h.close();
  }
  // A malformed request is closed without data.
  const bad = m.host.connect(SOURCE_PORT);
  assert.ok(m.runUntil(() => bad.state === "connected", 100));
  bad.send("12x\n");
  assert.ok(m.runUntil(() => bad.eof, 100));
  assert.equal(bad.received.length, 0);
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  noViolations(m);
});

test("services run concurrently: a stalled source reader does not hold up echo or sink", async () => {
  const { m } = await guest();
  const slow = m.host.connect(SOURCE_PORT);
  assert.ok(m.runUntil(() => slow.state === "connected", 100));
  slow.pauseReading(true);
  slow.send("5000000\n");
  m.poll(5);
  const echo = m.host.connect(ECHO_PORT);
  const sink = m.host.connect(SINK_PORT);
  assert.ok(m.runUntil(() => echo.state === "connected" && sink.state === "connected", 100));
  echo.send("hi");
  sink.send("abc");
  sink.shutdown(SHUT_WR);
  assert.ok(m.runUntil(() => echo.received.length === 2 && sink.eof, 1000));
  assert.equal(text(echo.received), "hi");
  assert.equal(text(sink.received), `3 ${(crc32(Buffer.from("abc")) >>> 0).toString(16).padStart(8, "0")}\n`);
  slow.pauseReading(false);
  assert.ok(m.runUntil(() => slow.eof, 50000));
  assert.deepEqual(slow.received, sourcePattern(5_000_000));
  noViolations(m);
});

test("500 open/use/close cycles across the services leave no connection behind", async () => {
  const { m } = await guest();
  for (let i = 0; i < 500; i++) {
    const port = [ECHO_PORT, SINK_PORT, SOURCE_PORT][i % 3];
    const h: HostSocket = m.host.connect(port);
    assert.ok(m.runUntil(() => h.state === "connected", 100), `cycle ${i}`);
    if (port === SOURCE_PORT) h.send("10\n");
    else {
      h.send(`cycle ${i}`);
      h.shutdown(SHUT_WR);
    }
    assert.ok(m.runUntil(() => h.eof, 1000), `cycle ${i} eof`);
    h.close();
    assert.ok(m.runUntil(() => h.state === "closed", 100));
  }
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  // Past a burst, connections at this pace are folded into one line a second (connection-log.ts).
  m.advance(1_000_000_000n);
  m.poll(2);
  const lines = connectionLines(m);
  assert.equal(lines.openedLines + lines.foldedOpened, 500, "every connection counted as opened");
  assert.equal(lines.closedLines + lines.foldedClosed, 500, "every connection counted as closed");
  assert.equal(lines.closedLines, lines.openedLines, "every opened line has its closed line");
  assert.ok(lines.foldedOpened > 0, "the churn was folded");
  assert.equal(lines.lastConns, 0);
  noViolations(m);
});

test("greeting: delivered at boot when the host listens on 4050", async () => {
  const { m } = await guest({});
  // boot() already made the first attempt (nobody listening): it is logged at info, not as an error.
  assert.match(m.logLines("greeting:")[0], /info app: greeting: no listener yet .* attempt=1 reason=ECONNRESET/);
  assert.equal(m.logLines(/ error /).length, 0);
  const hl = m.host.listen(GREETING_PORT);
  m.advance(2_000_000_000n);
  assert.ok(m.runUntil(() => hl.accepted.length === 1 && hl.accepted[0].eof, 100));
  assert.equal(text(hl.accepted[0].received), "Hello, Host! This is a message from the VM.\n");
  assert.match(m.logLines("greeting:").at(-1)!, /greeting: sent port=4050 attempt=2/);
  hl.accepted[0].close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  noViolations(m);
});

test("greeting: retried about every 2 s, then given up after 5 attempts", async () => {
  const { m } = await guest();
  for (let i = 0; i < 6; i++) {
    m.advance(2_100_000_000n);
    m.poll(4);
  }
  const lines = m.logLines("greeting:");
  assert.equal(lines.length, 5);
  assert.match(lines.at(-1)!, /giving up .*attempt=5/);
  m.advance(10_000_000_000n);
  m.poll(4);
  assert.equal(m.logLines("greeting:").length, 5, "no more attempts");
  assert.equal(connCount(m), 0);
});
