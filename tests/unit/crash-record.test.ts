// The crash report's "last packets" and "connections" sections (assembly/crash/), as the C report
// (firmware/crash-report.c) gets them after a trap: it calls crash_log_packets and
// crash_log_connections, and these lines are what the log then says. tests/e2e/crash_check.py and
// tests/boot/ match the same lines in the real image's report.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import { OP_NAMES, type VsockHeader } from "../../tools/vsock-model/vsock-packet";
import { ECHO_PORT, SINK_PORT, boot, connCount, guest, noViolations, pattern, WASM_PATH } from "./vsock-helpers";
import { Machine as SimMachine } from "../sim/machine";

const STATS_PORT = 1237; // assembly/apps/stats.ts

/** The lines an export logged, without their "[s.micros] error crash: " prefix (which each must have). */
function reportLines(m: Machine, exportName: string): string[] {
  const from = m.log.length;
  m.exports[exportName]();
  return m.log.slice(from).map((line) => {
    const match = /^\[\d+\.\d{6}\] error crash: (.*)$/.exec(line);
    assert.ok(match, `not a crash report line: ${line}`);
    return match[1];
  });
}

const PACKET_LINE =
  /^packet n=(\d+) t=(\d+)\.(\d{6}) (rx|tx) (\w+) (\d+):(\d+) -> (\d+):(\d+) len=(\d+) type=(\d+) flags=(\d+) buf_alloc=(\d+) fwd_cnt=(\d+)$/;
const OVERWRITTEN_LINE = /^packet n=(\d+) overwritten \(being recorded when the crash came\)$/;

interface PacketLine {
  n: number;
  micros: bigint;
  direction: string;
  op: string;
  header: Omit<VsockHeader, "op">;
}

function parsePacket(line: string): PacketLine {
  const f = PACKET_LINE.exec(line);
  assert.ok(f, `packet line: ${line}`);
  const num = (i: number) => Number(f[i]);
  return {
    n: num(1),
    micros: BigInt(f[2]) * 1_000_000n + BigInt(f[3]),
    direction: f[4],
    op: f[5],
    header: {
      srcCid: BigInt(f[6]), srcPort: num(7), dstCid: BigInt(f[8]), dstPort: num(9),
      len: num(10), type: num(11), flags: num(12), bufAlloc: num(13), fwdCnt: num(14),
    },
  };
}

/** The heading's figures, then the packet lines (unparsed). */
function lastPackets(m: Machine): { total: number; shown: number; lines: string[] } {
  const [heading, ...lines] = reportLines(m, "crash_log_packets");
  const h = /^last packets total=(\d+) shown=(\d+)$/.exec(heading);
  assert.ok(h, `heading: ${heading}`);
  assert.equal(lines.length, Number(h[2]), "one line per packet shown");
  return { total: Number(h[1]), shown: Number(h[2]), lines };
}

function samePacket(line: PacketLine, header: VsockHeader): void {
  const { op, ...fields } = header;
  assert.equal(line.op, OP_NAMES[op]);
  assert.deepEqual(line.header, fields, `packet n=${line.n}`);
}

class Crash extends Error {}

/** From now on each clock read asks `when` (never re-entered); the first time it says yes, the
 *  firmware "traps" right there: the throw unwinds the wasm as a trap would. Returns a function
 *  that puts the plain clock back. */
function crashWhen(m: Machine, when: () => boolean): () => void {
  let clock = m.clock;
  let asking = false;
  Object.defineProperty(m, "clock", {
    configurable: true,
    get: () => clock,
    set: (value: bigint) => {
      clock = value;
      if (asking) return;
      asking = true;
      let crash: boolean;
      try {
        crash = when();
      } finally {
        asking = false;
      }
      if (crash) throw new Crash();
    },
  });
  return () => Object.defineProperty(m, "clock", { configurable: true, writable: true, value: clock });
}

test("the last packets are listed both ways, oldest first, with every header field as the device saw it", async () => {
  const m = await boot();
  const h = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  for (let i = 0; i < 40; i++) {
    h.send(pattern(100, i));
    assert.ok(m.runUntil(() => h.received.length === (i + 1) * 100, 200), `echo ${i}`);
  }
  const device = m.device!;
  const report = lastPackets(m);
  // Every packet the firmware handled: each delivered one reached the stack, each sent one left it.
  assert.equal(report.total, device.deliveredToGuest.length + device.sentByGuest.length);
  assert.ok(report.shown === 32 && report.total > 32, `ring wrapped: ${report.shown} of ${report.total}`);
  const packets = report.lines.map(parsePacket);
  packets.forEach((p, i) => assert.equal(p.n, report.total - 32 + i, "numbered in order"));
  for (let i = 1; i < packets.length; i++) assert.ok(packets[i].micros >= packets[i - 1].micros, "time order");
  assert.ok(packets[31].micros > packets[0].micros, "times are the packets' own, not one moment");
  const rx = packets.filter((p) => p.direction === "rx");
  const tx = packets.filter((p) => p.direction === "tx");
  assert.ok(rx.length > 0 && tx.length > 0);
  device.deliveredToGuest.slice(-rx.length).forEach((p, i) => samePacket(rx[i], p.header));
  device.sentByGuest.slice(-tx.length).forEach((p, i) => samePacket(tx[i], p.header));
  // The newest are this echo's last exchange.
  const lastTx = tx[tx.length - 1];
  assert.equal(lastTx.header.srcPort, ECHO_PORT);
  assert.equal(lastTx.header.dstPort, h.localPort);
  noViolations(m);
});

test("a crash while a packet is being recorded shows that slot as overwritten, never half old and half new", async () => {
  const m = await boot();
  const h = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  for (let i = 0; i < 20; i++) {
    h.send(pattern(100, i));
    assert.ok(m.runUntil(() => h.received.length === (i + 1) * 100, 200), `echo ${i}`);
  }
  assert.ok(lastPackets(m).total > 32, "the ring has wrapped");
  // Every time the firmware reads the clock, look at the report it would give if it crashed right
  // there; at the first moment it shows an overwritten slot, crash. Recording a packet reads the
  // clock, so this stops inside recordPacket.
  let crashedAt: number | null = null;
  const restoreClock = crashWhen(m, () => {
    const logged = m.log.length;
    const seen = lastPackets(m);
    m.log.length = logged;
    const overwritten = seen.lines.filter((line) => OVERWRITTEN_LINE.test(line));
    if (overwritten.length === 0) return false;
    assert.equal(overwritten.length, 1, "only the slot being written");
    crashedAt = seen.total;
    return true;
  });
  h.send(pattern(100, 99));
  assert.throws(() => m.runUntil(() => h.received.length === 2100, 200), Crash, "no moment showed an overwritten slot");
  restoreClock();
  // The report after the crash, as the C side asks for it.
  const report = lastPackets(m);
  assert.equal(report.total, crashedAt);
  assert.equal(report.shown, 32);
  assert.equal(OVERWRITTEN_LINE.exec(report.lines[0])?.[1], String(report.total - 32), "the oldest slot, being reused");
  report.lines.slice(1).forEach((line, i) => assert.equal(parsePacket(line).n, report.total - 31 + i));
});

test("the connection lines list every live connection with its tuple, direction, fd and counters", async () => {
  const { m, g } = await guest();
  const echo = m.host.connect(ECHO_PORT);
  const sink = m.host.connect(SINK_PORT);
  assert.ok(m.runUntil(() => echo.state === "connected" && sink.state === "connected", 200));
  const listener = m.host.listen(6400);
  const outFd = g.socket();
  g.connect(outFd, 6400);
  assert.ok(m.runUntil(() => listener.accepted.length === 1, 200));
  echo.send(pattern(1000, 5));
  sink.send(pattern(3000, 6));
  assert.ok(m.runUntil(() => echo.received.length === 1000, 500));
  m.poll(20);
  const [heading, ...lines] = reportLines(m, "crash_log_connections");
  assert.equal(heading, `connections live=${connCount(m)} shown=${connCount(m)}`);
  assert.equal(lines.length, 3);
  const field = "rx_queued=\\d+ tx_queued=\\d+ buf_alloc=(\\d+) fwd_cnt=(\\d+) peer_buf_alloc=\\d+ peer_fwd_cnt=\\d+ tx_cnt=(\\d+)";
  const tail = " peer_shutdown=0 local_shutdown=0 owed=0 dropped=0$";
  const line = (local: number, peer: number, dir: string, bytes: string) =>
    new RegExp(`^conn slot=(\\d+) state=established dir=${dir} local=${local} peer=2:${peer} fd=(-?\\d+) ${bytes} ${field}${tail}`);
  const echoLine = lines.map((l) => line(ECHO_PORT, echo.localPort, "in", "rx_bytes=1000 tx_bytes=1000").exec(l)).find(Boolean);
  assert.ok(echoLine, `echo connection in:\n${lines.join("\n")}`);
  assert.ok(Number(echoLine[2]) >= 3, "the echo service's fd");
  assert.deepEqual([echoLine[4], echoLine[5]], ["1000", "1000"], "fwd_cnt and tx_cnt");
  const sinkLine = lines.map((l) => line(SINK_PORT, sink.localPort, "in", "rx_bytes=3000 tx_bytes=0").exec(l)).find(Boolean);
  assert.ok(sinkLine, `sink connection in:\n${lines.join("\n")}`);
  const outLine = lines.map((l) => /^conn slot=(\d+) state=established dir=out local=(\d+) peer=2:6400 fd=(\d+) /.exec(l)).find(Boolean);
  assert.ok(outLine, `outbound connection in:\n${lines.join("\n")}`);
  assert.equal(Number(outLine[2]), listener.accepted[0].peerPort);
  assert.equal(Number(outLine[3]), outFd);
  assert.equal(new Set([echoLine[1], sinkLine[1], outLine[1]]).size, 3, "slots distinct");
  // Closed connections leave the list.
  echo.close();
  sink.close();
  g.close(outFd);
  assert.ok(m.runUntil(() => connCount(m) === 0, 500));
  assert.deepEqual(reportLines(m, "crash_log_connections"), ["connections live=0 shown=0"]);
  noViolations(m);
});

test("a trap while a service captures the log leaves the report's lines in the log only, each whole", async () => {
  const m = await boot();
  // The stats service captures the counter lines it logs; crash as it starts its second line.
  const stats = m.host.connect(STATS_PORT);
  const restoreClock = crashWhen(m, () => m.log.some((line) => line.includes("info vsock: counters why=request")));
  assert.throws(() => m.runUntil(() => stats.state === "closed", 200), Crash, "the stats service never logged its counters");
  restoreClock();
  const [heading, ...lines] = reportLines(m, "crash_log_connections");
  assert.match(heading, /^connections live=1 shown=1$/);
  assert.match(lines[0], new RegExp(`^conn slot=\\d+ state=established dir=in local=${STATS_PORT} peer=2:${stats.localPort} `));
  // Nothing but the logger's own line buffer holds the text a line is built in, and the heading
  // was overwritten there by the line after it: a copy elsewhere would be a capture still running.
  const memory = Buffer.from(m.memory.buffer);
  assert.equal(memory.indexOf("error crash: connections live="), -1, "a report line was captured");
});

test("before the stack starts the sections say so: no connections, no packets", async () => {
  const m = await SimMachine.create({ wasmPath: WASM_PATH, vsock: false });
  assert.equal(m.init(), false);
  assert.deepEqual(reportLines(m, "crash_log_connections"), ["connections none: the stack was not started"]);
  assert.deepEqual(reportLines(m, "crash_log_packets"), ["last packets total=0 shown=0"]);
});
