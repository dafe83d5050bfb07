// The packet trace, the counters and the stats service, on the simulated machine: the trace
// (opt/vsockfw/trace) must agree packet for packet with what the simulated device saw, read back
// through the log tool's own parser.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import type { VsockPacket } from "../../tools/vsock-model/vsock-device";
import { parseLog } from "../../tools/log/parse.ts";
import { summarize } from "../../tools/log/summary.ts";
import type { TracePacket } from "../../tools/log/trace.ts";
import { ECHO_PORT, SHUT_WR, SINK_PORT, boot, connCount, guest, noViolations, pattern, text } from "./vsock-helpers";

const STATS_PORT = 1237;

function traced(m: Machine): TracePacket[] {
  const { records, problems } = parseLog(m.logText());
  assert.deepEqual(problems, [], "every log line parses");
  const s = summarize(records, problems);
  assert.deepEqual(s.traceProblems, []);
  return s.tracePackets;
}

function same(t: TracePacket, p: VsockPacket, what: string): void {
  const h = p.header;
  assert.deepEqual(
    [t.op, t.srcCid, t.srcPort, t.dstCid, t.dstPort, t.len, t.type, t.flags, t.bufAlloc, t.fwdCnt],
    [h.op, h.srcCid, h.srcPort, h.dstCid, h.dstPort, h.len, h.type, h.flags, h.bufAlloc, h.fwdCnt],
    what,
  );
  assert.deepEqual([...t.data], [...p.payload.subarray(0, t.data.length)], `${what}: payload bytes`);
}

/** An echo and a 600 KiB sink transfer (credit updates both ways), both closed. */
function exchange(m: Machine): void {
  const echo = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => echo.state === "connected", 100));
  echo.send("hello trace\n");
  echo.shutdown(SHUT_WR);
  assert.ok(m.runUntil(() => echo.eof, 1000));
  assert.equal(text(echo.received), "hello trace\n");
  echo.close();
  const sink = m.host.connect(SINK_PORT);
  assert.ok(m.runUntil(() => sink.state === "connected", 100));
  sink.send(pattern(600 * 1024, 7));
  sink.shutdown(SHUT_WR);
  assert.ok(m.runUntil(() => sink.eof, 20000));
  sink.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 200));
}

test("trace (opt/vsockfw/trace=1) agrees packet for packet with the device, each way", async () => {
  const { m } = await guest({ options: { trace: "1" } });
  assert.equal(m.logLines(/info trace: on payload_bytes=16 option=1$/).length, 1);
  exchange(m);
  const packets = traced(m);
  const rx = packets.filter((p) => p.direction === "rx");
  const tx = packets.filter((p) => p.direction === "tx");
  const delivered = m.device!.deliveredToGuest;
  const sentByGuest = m.device!.sentByGuest;
  assert.equal(rx.length, delivered.length);
  assert.equal(tx.length, sentByGuest.length);
  rx.forEach((t, i) => same(t, delivered[i], `rx packet ${i}`));
  tx.forEach((t, i) => same(t, sentByGuest[i], `tx packet ${i}`));
  const ops = new Set(packets.map((p) => p.opName));
  for (const op of ["REQUEST", "RESPONSE", "RW", "SHUTDOWN", "RST", "CREDIT_UPDATE"]) assert.ok(ops.has(op), `trace has ${op}`);
  // The first bytes of the echo's payload, hex, at most 16.
  assert.ok(m.logLines(/ trace: rx RW .* len=12 .* data=68656c6c6f2074726163650a$/).length === 1);
  assert.ok(packets.every((p) => p.data.length <= 16));
  noViolations(m);
});

// The header layout exists twice, as data: assembly/wire/vsock-header.ts (the firmware's) and
// tools/vsock-model/vsock-packet.ts (the device model's codec, which the simulator, the backend and
// the pcap writer share). Every field gets a value no other field has, byte for byte, so a field at
// the wrong offset, of the wrong width or read as another shows in the firmware's own trace line,
// one way and the other.
test("the header layout: the firmware's trace names each field the codec encoded, each way", async () => {
  const { m } = await guest({ options: { trace: "4" } });
  const fields = { srcPort: 0x0a0b0c0d, dstPort: 0x01020304, op: 5, flags: 0x55667788, bufAlloc: 0x39aabbcc, fwdCnt: 0x4deeff01 };
  m.device!.inject(fields, new Uint8Array([0xf1, 0xf2, 0xf3]));
  m.poll(4);
  const packets = traced(m);
  const rx = packets.find((p) => p.direction === "rx" && p.srcPort === fields.srcPort)!;
  assert.ok(rx, "the injected packet is traced");
  assert.deepEqual(
    [rx.srcCid, rx.dstCid, rx.srcPort, rx.dstPort, rx.len, rx.type, rx.op, rx.flags, rx.bufAlloc, rx.fwdCnt, [...rx.data]],
    [2n, 33n, fields.srcPort, fields.dstPort, 3, 1, fields.op, fields.flags, fields.bufAlloc, fields.fwdCnt, [0xf1, 0xf2, 0xf3]],
  );
  // Nobody listens on that port: the firmware's RST, decoded by the codec, against its trace line.
  const reply = m.device!.sentByGuest.find((p) => p.header.dstPort === fields.srcPort)!;
  assert.ok(reply, "an RST for the tuple");
  const tx = packets.find((p) => p.direction === "tx" && p.dstPort === fields.srcPort)!;
  same(tx, reply, "the RST");
  assert.deepEqual([reply.header.srcCid, reply.header.srcPort, reply.header.dstCid], [33n, fields.dstPort, 2n]);
});

test("trace=<n> shows n payload bytes (at most 64); trace off by default and with trace=0", async () => {
  const wide = await boot({ options: { trace: "40" } });
  const h = wide.host.connect(ECHO_PORT);
  assert.ok(wide.runUntil(() => h.state === "connected", 100));
  h.send(pattern(100, 3));
  assert.ok(wide.runUntil(() => h.received.length === 100, 1000));
  const rw = traced(wide).filter((p) => p.opName === "RW");
  assert.ok(rw.length >= 2 && rw.every((p) => p.data.length === Math.min(40, p.len)));
  const huge = await boot({ options: { trace: "5000" } });
  assert.equal(huge.logLines(/info trace: on payload_bytes=64 /).length, 1);
  for (const options of [{}, { trace: "0" }]) {
    const m = await boot({ options });
    const c = m.host.connect(ECHO_PORT);
    assert.ok(m.runUntil(() => c.state === "connected", 100));
    assert.equal(m.logLines(/ trace: (rx|tx) /).length, 0, JSON.stringify(options));
  }
});

test("stats service (1237) answers with the counters, which match the device's packet counts", async () => {
  const { m } = await guest();
  exchange(m);
  const delivered = m.device!.deliveredToGuest.length;
  const sent = m.device!.sentByGuest.length;
  const creditUpdatesSent = m.device!.sentByGuest.filter((p) => p.header.op === 6).length;
  const stats = m.host.connect(STATS_PORT);
  assert.ok(m.runUntil(() => stats.eof, 200));
  const report = text(stats.received);
  stats.close();
  // The reply is the log's own lines.
  const { records, problems } = parseLog(report);
  assert.deepEqual(problems, []);
  const counters = records.find((r) => r.message === "counters")!;
  assert.equal(counters.fields.why, "request");
  // The stats connection's own REQUEST is counted by the time the report is written.
  assert.equal(Number(counters.fields.rx_packets), delivered + 1);
  assert.equal(Number(counters.fields.tx_packets), sent + 1); // + the RESPONSE
  assert.equal(Number(counters.fields.credit_updates_sent), creditUpdatesSent);
  assert.ok(creditUpdatesSent > 0);
  assert.ok(Number(counters.fields.rx_refills) > 0);
  const rxOps = records.find((r) => r.message === "packets" && r.fields.dir === "rx")!;
  assert.equal(Number(rxOps.fields.request), 3);
  assert.ok(records.some((r) => r.subsystem === "vsock-dev" && r.message === "counters"));
  for (const line of report.trim().split("\n")) assert.ok(m.log.includes(line), `logged too: ${line}`);
  // The summary reads them.
  const s = summarize(parseLog(m.logText()).records, []);
  assert.equal(s.counters?.why, "request");
  assert.equal(s.counters?.packets.tx.response, "3");
});

test("drops (rejections by reason) in the counters; counters every N seconds with opt/vsockfw/counters=N", async () => {
  const m = await boot({ options: { counters: "1" } });
  m.device!.inject({ op: 5, srcPort: 7000, dstPort: 4444, len: 0 }); // RW to nobody: RST
  m.device!.inject({ op: 5, srcPort: 7001, dstPort: 4444, len: 0 });
  m.poll(3);
  m.advance(1_500_000_000n);
  m.runUntil(() => m.logLines("counters why=interval").length > 0, 2000);
  const report = m.logLines(/info vsock: counters why=interval /);
  assert.ok(report.length >= 1, m.logText());
  assert.match(report[0], / drops=2$/);
  assert.ok(m.logLines(/info vsock: rejections total=2 .*no_socket=2/).length >= 1);
});
