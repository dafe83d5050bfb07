// The log tool (tools/log/): parser, summary, filters, --follow, --pcap (checked with tshark), on a
// real log from the vhost-vsock e2e run (tests/log/fixtures/) and on crafted, garbled ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isProblem, parseLine, parseLog } from "../../tools/log/parse.ts";
import { summarize } from "../../tools/log/summary.ts";
import { makeFilter } from "../../tools/log/filter.ts";
import { pcapFile, LINKTYPE_VSOCK } from "../../tools/log/pcap.ts";

const REAL_LOG = "tests/log/fixtures/vsockmon-run.log";
const TSX = "node_modules/.bin/tsx";

function tool(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TSX, ["tools/log/main.ts", ...args], { encoding: "utf8", env: { ...process.env, FORCE_COLOR: "0" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function scratch(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), "vsockfw-log-"));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const CRAFTED = [
  ".[0.000000] info boot: reset",
  "[0.010000] info boot: long mode tsc_hz=2600000000",
  "[0.020000] info boot: runtime up memory_base=0x1000000",
  "[0.021000] info boot: vsockfw 0.1.0 build=1234 tsc_hz=2600000000 log_level=2",
  "[0.022000] info pci: 00:01.0 1af4:1053 class=078000",
  "[0.023000] info pci: scan done functions=1 buses=1",
  "[0.030000] info vsock-dev: ready guest_cid=33 features=0x100000000",
  "[0.040000] info app: ready: cid=33 echo=1234 sink=1235 source=1236 stats=1237",
  "[1.000000] info vsock: connection opened dir=in local=1234 peer=2:5000 buf_alloc=262144 peer_buf_alloc=262144 conns=1",
  "[1.000100] debug trace: rx RW src=2:5000 dst=33:1234 len=3 type=1 flags=0 buf_alloc=262144 fwd_cnt=0 data=616263",
  "[1.500000] warn vsock-dev: dropped: rx packet shorter than the header value=12 count=1",
  "[1.2345",
  "garbage \u0001\u0002 here",
  "[2.000000] info vsock: connection closed dir=in local=1234 peer=2:5000 reason=reset-by-peer rx_bytes=3 tx_bytes=3 duration_ms=1000 conns=0",
  "[2.100000] info vsock: connection opened dir=in local=1235 peer=2:5001 buf_alloc=262144 peer_buf_alloc=262144 conns=1",
  "[3.000000] info vsock: counters why=exit rx_packets=9 tx_packets=8 credit_updates_sent=1 credit_updates_received=0 credit_requests_received=0 rx_refills=9 tx_stalls_credit=0 tx_stalls_ring=0 drops=1",
  "[3.000001] info vsock: rejections total=1 no_socket=1",
  "[3.000002] error wasm: trap kind=unreachable",
  "[3.5",
].join("\n");

test("parser: fields, quoted values, the message, and the leading reset dot", () => {
  const r = parseLine('.[12.000345] warn vsock: drop reason="no socket: RST" count=2 note', 1);
  assert.ok(!isProblem(r));
  assert.equal(r.micros, 12_000_345);
  assert.equal(r.level, "warn");
  assert.equal(r.subsystem, "vsock");
  assert.equal(r.message, "drop note");
  assert.deepEqual(r.fields, { reason: "no socket: RST", count: "2" });
  const ready = parseLine("[0.479451] info app: ready: cid=33 echo=1234", 2);
  assert.ok(!isProblem(ready) && ready.message === "ready:" && ready.fields.cid === "33");
});

test("parser: truncated, garbled and binary lines are reported and skipped, never thrown", () => {
  const bad = ["[1.2345", "[0.000001] info", "hello", '[0.000001] info x: a="unterminated', "[0.000001] loud x: y", "\u0000\u00ff\u00fe", "[0.000001] info x: a\u0007b"];
  for (const [i, text] of bad.entries()) {
    const r = parseLine(text, i + 1);
    assert.ok(isProblem(r), text);
    assert.ok(r.reason.length > 0);
  }
  // Random bytes: never a crash, every line accounted for.
  let seed = 99;
  const noise = Buffer.alloc(20000, 0).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
  const parsed = parseLog(noise.toString("latin1"));
  assert.ok(parsed.problems.length > 0);
  const s = summarize(parsed.records, parsed.problems);
  assert.ok(s.lines >= parsed.problems.length);
});

test("summary of a crafted log: milestones, connections, counters, alerts, skipped lines", () => {
  const { records, problems } = parseLog(CRAFTED);
  assert.deepEqual(problems.map((p) => [p.line, p.reason]), [[12, "truncated line"], [13, "not a log line"], [19, "truncated line"]]);
  const s = summarize(records, problems);
  assert.deepEqual(s.milestones.map((m) => [m.name, m.micros]), [
    ["reset", 0], ["long mode", 10000], ["runtime up", 20000], ["pci scan done", 23000], ["device up", 30000], ["ready", 40000],
  ]);
  assert.deepEqual(s.connections.map((c) => [c.id, c.local, c.peer, c.reason, c.rxBytes]), [
    [1, 1234, "2:5000", "reset-by-peer", 3],
    [2, 1235, "2:5001", undefined, undefined],
  ]);
  assert.equal(s.alerts.length, 2);
  assert.equal(s.counters?.totals.rx_packets, "9");
  assert.deepEqual(s.counters?.drops, [{ reason: "no_socket", count: "1" }]);
  assert.equal(s.tracePackets.length, 1);
  assert.deepEqual([...s.tracePackets[0].data], [0x61, 0x62, 0x63]);
  assert.equal(s.devices[0].name, "virtio-vsock (modern)");
});

test("filters: level and worse, subsystems, a connection by port, peer or number", () => {
  const { records } = parseLog(CRAFTED);
  const s = summarize(records, []);
  const lines = (f: Parameters<typeof makeFilter>[0]) => records.filter(makeFilter(f, s.connections)).map((r) => r.line);
  assert.deepEqual(lines({ level: "warn" }), [11, 18]);
  assert.deepEqual(lines({ subsystems: ["pci", "app"] }), [5, 6, 8]);
  assert.deepEqual(lines({ conn: "5000" }), [9, 10, 14]);
  assert.deepEqual(lines({ conn: "2:5001" }), [15]);
  assert.deepEqual(lines({ conn: "#1" }), [9, 10, 14]);
  assert.throws(() => lines({ conn: "#9" }), /no connection #9/);
});

test("the CLI on the real log: summary with every section; errors named; exit 0", () => {
  assert.ok(existsSync(REAL_LOG));
  const r = tool(REAL_LOG);
  assert.equal(r.status, 0, r.stderr);
  for (const section of ["Boot timeline", "PCI devices", "Connections (", "Counters (why=", "Packet trace: "]) assert.ok(r.stdout.includes(section), section);
  for (const milestone of ["reset", "long mode", "runtime up", "pci scan done", "device up", "ready"]) {
    assert.match(r.stdout, new RegExp(`│ ${milestone} +│ \\d+\\.\\d{6} `), milestone);
  }
  assert.match(r.stdout, /No errors or warnings/);
  const sinkRow = r.stdout.split("\n").find((l) => /│ in +│ 1235 +│ 1 /.test(l));
  assert.ok(sinkRow, r.stdout);
});

test("the CLI on a garbled log reports skipped lines and still summarises", () => {
  const path = scratch("garbled.log", CRAFTED + "\n\u0000\u0001binary\n");
  const r = tool(path);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Errors and warnings \(2\)/);
  assert.match(r.stdout, /Skipped lines \(4\)/);
  assert.match(r.stdout, /line 12: truncated line/);
  const filtered = tool(path, "--level", "error");
  assert.equal(filtered.stdout.trim(), "[3.000002] error wasm: trap kind=unreachable");
  assert.equal(tool(join(tmpdir(), "no-such-vsockfw.log")).status, 2);
  assert.equal(tool(path, "--conn", "nonsense").status, 2);
});

test("--pcap: tshark decodes LINKTYPE_VSOCK with the traced ops, ports, lengths and credit", { skip: !existsSync("/usr/bin/tshark") && "tshark not installed" }, () => {
  const out = scratch("trace.pcap", "");
  const r = tool(REAL_LOG, "--pcap", out);
  assert.equal(r.status, 0, r.stderr);
  const blob = readFileSync(out);
  assert.equal(blob.readUInt32LE(20), LINKTYPE_VSOCK);
  const { records } = parseLog(readFileSync(REAL_LOG, "latin1"));
  const packets = summarize(records, []).tracePackets;
  assert.ok(packets.length >= 10);
  assert.match(r.stdout, new RegExp(`^log: ${packets.length} traced packets`));
  const fields = ["vsock.src_cid", "vsock.src_port", "vsock.dst_cid", "vsock.dst_port", "vsock.op", "vsock.virtio.op", "vsock.virtio.len", "vsock.virtio.buf_alloc", "vsock.virtio.fwd_cnt", "vsock.virtio.flags"];
  const shark = spawnSync("tshark", ["-r", out, "-T", "fields", ...fields.flatMap((f) => ["-e", f])], { encoding: "utf8" });
  assert.equal(shark.status, 0, shark.stderr);
  const rows = shark.stdout.trim().split("\n").map((l) => l.split("\t"));
  assert.equal(rows.length, packets.length);
  const monOp: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 3, 7: 3 };
  rows.forEach((row, i) => {
    const p = packets[i];
    assert.deepEqual(row, [p.srcCid, p.srcPort, p.dstCid, p.dstPort, monOp[p.op], p.op, p.len, p.bufAlloc, p.fwdCnt, `0x${p.flags.toString(16).padStart(8, "0")}`].map(String), `packet ${i}`);
  });
  // The human view names the ops.
  const text = spawnSync("tshark", ["-r", out, "-V", "-c", "1"], { encoding: "utf8" }).stdout;
  assert.match(text, /vsock/i);
  assert.match(text, /Operation: Connect/);
});

test("pcap writer: captured length is what the trace kept, original length the whole payload", () => {
  const blob = pcapFile([{ line: 1, micros: 2_500_001, direction: "tx", op: 5, opName: "RW", srcCid: 33n, srcPort: 1234, dstCid: 2n, dstPort: 5000, len: 1000, type: 1, flags: 0, bufAlloc: 262144, fwdCnt: 7, data: Uint8Array.of(1, 2, 3) }]);
  assert.equal(blob.length, 24 + 16 + 32 + 44 + 3);
  assert.deepEqual([blob.readUInt32LE(24), blob.readUInt32LE(28), blob.readUInt32LE(32), blob.readUInt32LE(36)], [2, 500001, 79, 1076]);
  assert.equal(blob.readUInt16LE(40 + 24), 4); // AF_VSOCK_OP_PAYLOAD
  assert.equal(blob.readUInt16LE(40 + 26), 2); // transport virtio
  assert.equal(blob.readUInt16LE(40 + 28), 44);
});

test("--follow prints lines as they are appended, waiting for a partial line's end", async () => {
  const path = scratch("live.log", "[0.000001] info boot: reset\n");
  const child = spawn(TSX, ["tools/log/main.ts", path, "--follow"], { env: { ...process.env, FORCE_COLOR: "0" } });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const until = async (re: RegExp) => {
    for (let i = 0; i < 150 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    return re.test(out);
  };
  try {
    assert.ok(await until(/boot: reset/), out);
    appendFileSync(path, "[0.500000] info pci: scan done functions=1 buses=1\n[0.6000");
    assert.ok(await until(/scan done/), out);
    assert.ok(!out.includes("[0.6000"));
    appendFileSync(path, "00] warn vsock: late line\n");
    assert.ok(await until(/warn vsock: late line/), out);
  } finally {
    child.kill("SIGINT"); // our own child, by its handle
  }
});

test("summary: `connections folded` lines add up, with their end reasons, and are rendered", () => {
  const log = [
    ".[0.000000] info boot: reset",
    "[1.000000] info vsock: connection opened dir=in local=1234 peer=2:5000 buf_alloc=262144 peer_buf_alloc=262144 conns=1",
    "[1.100000] info vsock: connection closed dir=in local=1234 peer=2:5000 reason=peer-shutdown rx_bytes=3 tx_bytes=3 duration_ms=100 conns=0",
    "[2.200000] info vsock: connections folded opened=40 closed=38 peer-shutdown=30 reset-by-peer=8 rx_bytes=4000 tx_bytes=4100 ms=1000 conns=2",
    "[3.200000] info vsock: connections folded opened=2 closed=4 peer-shutdown=4 rx_bytes=10 tx_bytes=20 ms=1000 conns=0",
  ].join("\n");
  const parsed = parseLog(log);
  const s = summarize(parsed.records, parsed.problems);
  assert.equal(s.connections.length, 1);
  assert.deepEqual(s.folded, { lines: 2, opened: 42, closed: 42, reasons: { "peer-shutdown": 34, "reset-by-peer": 8 }, rxBytes: 4010, txBytes: 4120 });
  const out = tool(scratch("folded.log", log)).stdout;
  assert.match(out, /Folded \(too many to log one by one, 2 lines\): opened 42, closed 42 \(peer-shutdown=34 reset-by-peer=8\)/);
});

// SEQPACKET (issue 15): the type and the EOM/EOR flags, by name in --packets and the summary, and
// as the raw header fields tshark decodes from --pcap.
const SEQPACKET_TRACE = [
  ".[0.000000] info boot: reset",
  "[1.000100] debug trace: rx REQUEST src=2:5000 dst=33:1238 len=0 type=2 flags=0 buf_alloc=262144 fwd_cnt=0",
  "[1.000200] debug trace: rx RW src=2:5000 dst=33:1238 len=3 type=2 flags=3 buf_alloc=262144 fwd_cnt=0 data=616263",
  "[1.000300] debug trace: tx RW src=33:1238 dst=2:5000 len=65536 type=2 flags=0 buf_alloc=262144 fwd_cnt=3",
  "[1.000400] debug trace: tx RW src=33:1238 dst=2:5000 len=10 type=2 flags=1 buf_alloc=262144 fwd_cnt=3",
  "[1.000500] debug trace: tx SHUTDOWN src=33:1234 dst=2:5001 len=0 type=1 flags=3 buf_alloc=262144 fwd_cnt=3",
].join("\n") + "\n";

test("SEQPACKET in the trace: --packets names the type and EOM/EOR, the summary counts message ends", () => {
  const log = scratch("seq.log", SEQPACKET_TRACE);
  const listed = tool(log, "--packets");
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual(listed.stdout.trim().split("\n"), [
    "[1.000100] rx REQUEST SEQPACKET 2:5000 -> 33:1238 len=0 flags=0 buf_alloc=262144 fwd_cnt=0",
    "[1.000200] rx RW SEQPACKET 2:5000 -> 33:1238 len=3 flags=EOM|EOR buf_alloc=262144 fwd_cnt=0",
    "[1.000300] tx RW SEQPACKET 33:1238 -> 2:5000 len=65536 flags=0 buf_alloc=262144 fwd_cnt=3",
    "[1.000400] tx RW SEQPACKET 33:1238 -> 2:5000 len=10 flags=EOM buf_alloc=262144 fwd_cnt=3",
    "[1.000500] tx SHUTDOWN STREAM 33:1234 -> 2:5001 len=0 flags=RCV|SEND buf_alloc=262144 fwd_cnt=3",
  ]);
  assert.match(tool(log).stdout, /by type: STREAM 1, SEQPACKET 4 \(messages ended: EOM 2, EOR 1\)/);
});

test("SEQPACKET in --pcap: tshark reads type 2 and the EOM/EOR flags from the virtio header", { skip: !existsSync("/usr/bin/tshark") && "tshark not installed" }, () => {
  const out = scratch("seq.pcap", "");
  assert.equal(tool(scratch("seq.log", SEQPACKET_TRACE), "--pcap", out).status, 0);
  const shark = spawnSync("tshark", ["-r", out, "-T", "fields", "-e", "vsock.virtio.type", "-e", "vsock.virtio.flags", "-e", "vsock.virtio.len"], { encoding: "utf8" });
  assert.deepEqual(shark.stdout.trim().split("\n").map((l) => l.split("\t")), [
    ["2", "0x00000000", "0"],
    ["2", "0x00000003", "3"],
    ["2", "0x00000000", "65536"],
    ["2", "0x00000001", "10"],
    ["1", "0x00000003", "0"],
  ]);
});
