// The crash record the C crash report reads (assembly/crash/, firmware/crash-record.h): the last
// packet headers and the connection summary, decoded here with the offsets of the C header, so
// the two sides cannot drift apart unnoticed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Machine } from "../sim/machine";
import { decodeHeader, type VsockHeader } from "../sim/vsock-packet";
import { ECHO_PORT, SINK_PORT, boot, connCount, noViolations, pattern, WASM_PATH } from "./vsock-helpers";
import { Machine as SimMachine } from "../sim/machine";

/** Every `#define NAME number` of firmware/crash-record.h. */
function cLayout(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync("firmware/crash-record.h", "utf8").matchAll(/^#define (\w+) (0x[0-9a-f]+|\d+)u?\b/gim)) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}
const C = cLayout();

interface HistoryEntry {
  sequence: number;
  direction: "rx" | "tx";
  timeNs: bigint;
  header: VsockHeader;
}

interface Record {
  view: DataView;
  at: number;
  historyTotal: bigint;
  history: HistoryEntry[]; // oldest first, as the C report prints them
}

function readRecord(m: Machine): Record {
  const at = m.exports.crash_record() as number;
  const view = new DataView(m.memory.buffer);
  assert.equal(view.getUint32(at + C.CR_MAGIC, true), C.CRASH_RECORD_MAGIC, "magic");
  assert.equal(view.getUint32(at + C.CR_VERSION, true), C.CRASH_RECORD_VERSION, "version");
  assert.equal(view.getUint32(at + C.CR_HISTORY_ENTRY_SIZE, true), C.HISTORY_ENTRY_SIZE);
  assert.equal(view.getUint32(at + C.CR_CONNECTION_ENTRY_SIZE, true), C.CONNECTION_ENTRY_SIZE);
  const total = view.getBigUint64(at + C.CR_HISTORY_TOTAL, true);
  const ring = view.getUint32(at + C.CR_HISTORY_ADDRESS, true);
  const capacity = view.getUint32(at + C.CR_HISTORY_CAPACITY, true);
  assert.ok(capacity >= 16 && ring > 0 && ring + capacity * C.HISTORY_ENTRY_SIZE <= m.memory.buffer.byteLength);
  const history: HistoryEntry[] = [];
  const first = total > BigInt(capacity) ? total - BigInt(capacity) : 0n;
  for (let n = first; n < total; n++) {
    const e = ring + Number(n % BigInt(capacity)) * C.HISTORY_ENTRY_SIZE;
    const direction = view.getUint32(e + C.HE_DIRECTION, true);
    assert.ok(direction === C.HISTORY_DIRECTION_RX || direction === C.HISTORY_DIRECTION_TX, `direction ${direction}`);
    history.push({
      sequence: view.getUint32(e + C.HE_SEQUENCE, true),
      direction: direction === C.HISTORY_DIRECTION_RX ? "rx" : "tx",
      timeNs: view.getBigUint64(e + C.HE_TIME_NS, true),
      header: decodeHeader(new Uint8Array(m.memory.buffer, e + C.HE_HEADER, 44).slice()),
    });
  }
  return { view, at, historyTotal: total, history };
}

interface ConnectionEntry {
  slot: number;
  state: number;
  peerCid: bigint;
  localPort: number;
  peerPort: number;
  fd: number;
  outbound: number;
  rxBytes: bigint;
  txBytes: bigint;
  rxQueued: number;
  bufAlloc: number;
  fwdCnt: number;
  txCnt: number;
}

function snapshot(m: Machine): { count: number; live: number; entries: ConnectionEntry[] } {
  const count = m.exports.crash_snapshot() as number;
  const r = readRecord(m);
  const v = r.view;
  assert.equal(v.getInt32(r.at + C.CR_CONNECTIONS_COUNT, true), count, "the record holds the count returned");
  const base = v.getUint32(r.at + C.CR_CONNECTIONS_ADDRESS, true);
  const entries: ConnectionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const e = base + i * C.CONNECTION_ENTRY_SIZE;
    entries.push({
      slot: v.getUint32(e + C.CE_INDEX, true),
      state: v.getUint32(e + C.CE_STATE, true),
      peerCid: v.getBigUint64(e + C.CE_PEER_CID, true),
      localPort: v.getUint32(e + C.CE_LOCAL_PORT, true),
      peerPort: v.getUint32(e + C.CE_PEER_PORT, true),
      fd: v.getInt32(e + C.CE_FD, true),
      outbound: v.getUint8(e + C.CE_OUTBOUND),
      rxBytes: v.getBigUint64(e + C.CE_RX_BYTES, true),
      txBytes: v.getBigUint64(e + C.CE_TX_BYTES, true),
      rxQueued: v.getUint32(e + C.CE_RX_QUEUED, true),
      bufAlloc: v.getUint32(e + C.CE_BUF_ALLOC, true),
      fwdCnt: v.getUint32(e + C.CE_FWD_CNT, true),
      txCnt: v.getUint32(e + C.CE_TX_CNT, true),
    });
  }
  return { count, live: v.getUint32(r.at + C.CR_CONNECTIONS_LIVE, true), entries };
}

const sameHeader = (a: VsockHeader, b: VsockHeader) => assert.deepEqual(a, b);

test("the packet history holds the last headers both ways, in order, as the device saw them", async () => {
  const m = await boot();
  const h = m.host.connect(ECHO_PORT);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  for (let i = 0; i < 40; i++) {
    h.send(pattern(100, i));
    assert.ok(m.runUntil(() => h.received.length === (i + 1) * 100, 200), `echo ${i}`);
  }
  const r = readRecord(m);
  const device = m.device!;
  // Every packet the firmware handled: each delivered one reached the stack, each sent one left it.
  assert.equal(r.historyTotal, BigInt(device.deliveredToGuest.length + device.sentByGuest.length));
  assert.ok(r.history.length === 32 && r.historyTotal > 32n, `ring wrapped: ${r.history.length} of ${r.historyTotal}`);
  r.history.forEach((e, i) => assert.equal(e.sequence, Number(r.historyTotal) - r.history.length + i, "sequence"));
  for (let i = 1; i < r.history.length; i++) assert.ok(r.history[i].timeNs >= r.history[i - 1].timeNs, "time order");
  const rx = r.history.filter((e) => e.direction === "rx").map((e) => e.header);
  const tx = r.history.filter((e) => e.direction === "tx").map((e) => e.header);
  assert.ok(rx.length > 0 && tx.length > 0);
  device.deliveredToGuest.slice(-rx.length).forEach((p, i) => sameHeader(rx[i], p.header));
  device.sentByGuest.slice(-tx.length).forEach((p, i) => sameHeader(tx[i], p.header));
  // The newest are this echo's last exchange.
  const lastTx = tx[tx.length - 1];
  assert.equal(lastTx.srcPort, ECHO_PORT);
  assert.equal(lastTx.dstPort, h.localPort);
  noViolations(m);
});

test("the connection summary lists every live connection with its tuple and counters", async () => {
  const m = await boot();
  const echo = m.host.connect(ECHO_PORT);
  const sink = m.host.connect(SINK_PORT);
  assert.ok(m.runUntil(() => echo.state === "connected" && sink.state === "connected", 200));
  echo.send(pattern(1000, 5));
  sink.send(pattern(3000, 6));
  assert.ok(m.runUntil(() => echo.received.length === 1000, 500));
  m.poll(20);
  const s = snapshot(m);
  assert.equal(s.count, connCount(m));
  assert.equal(s.live, connCount(m));
  const e = s.entries.find((c) => c.localPort === ECHO_PORT && c.peerPort === echo.localPort);
  assert.ok(e, `echo connection in ${JSON.stringify(s.entries, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
  assert.equal(e.state, 2, "established");
  assert.equal(e.peerCid, 2n);
  assert.equal(e.outbound, 0);
  assert.ok(e.fd >= 3);
  assert.equal(e.rxBytes, 1000n);
  assert.equal(e.txBytes, 1000n);
  assert.equal(e.fwdCnt, 1000);
  const k = s.entries.find((c) => c.localPort === SINK_PORT && c.peerPort === sink.localPort);
  assert.ok(k);
  assert.equal(k.rxBytes, 3000n);
  assert.equal(k.txBytes, 0n);
  assert.equal(new Set(s.entries.map((c) => c.slot)).size, s.count, "slots distinct");
  // Closed connections leave the summary.
  echo.close();
  sink.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 500));
  assert.equal(snapshot(m).count, 0);
  noViolations(m);
});

test("before the stack starts the summary says so (-1) and the history is empty", async () => {
  const m = await SimMachine.create({ wasmPath: WASM_PATH, vsock: false });
  assert.equal(m.init(), false);
  assert.equal(m.exports.crash_snapshot(), -1);
  const r = readRecord(m);
  assert.equal(r.historyTotal, 0n);
  assert.equal(r.history.length, 0);
});
