// The u32 credit counters (tx_cnt, fwd_cnt) wrap at 4 GiB (issue 19 item 2). The unit build's hook
// vsock_test_counter_start starts every new connection as if it had already carried that many
// bytes each way; the simulated host starts its sockets the same way (SimHost.counterStart), so a
// transfer of a few hundred KiB carries both sides' counters across 2^32.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rejections } from "./rejection-counts";
import { EAGAIN, ECHO_PORT, MSG_DONTWAIT, accepted, OP_CREDIT_UPDATE, RX_WINDOW, guest, noViolations, pattern, sent } from "./vsock-helpers";

const WRAP = 2n ** 32n;
// 8 GiB minus 300 KB: the counters read 2^32 - 300,000, and the byte totals are past 4 GiB.
const START = 2n * WRAP - 300_000n;
const START_U32 = Number(BigInt.asUintN(32, START));

async function nearWrap() {
  const { m, g } = await guest();
  m.exports.vsock_test_counter_start(START);
  m.host.counterStart = START;
  return { m, g };
}

async function acceptedNearWrap(port: number, hostPort: number) {
  return accepted(port, hostPort, {}, (m) => {
    m.exports.vsock_test_counter_start(START);
    m.host.counterStart = START;
  });
}

/** Whether a u32 counter that started at START_U32 has wrapped past 0. */
function wrapped(counter: number): boolean {
  return counter < START_U32;
}

test("host -> guest across the 2^32 boundary: every byte in order, credit updates keep it flowing", async () => {
  const { m, g, h, fd } = await acceptedNearWrap(5500, 7500);
  const data = pattern(4 * RX_WINDOW + 777, 31);
  h.send(data);
  assert.deepEqual(g.readAll(fd, data.length), data);
  assert.ok(wrapped(h.txCnt), `host tx_cnt wrapped: ${h.txCnt}`);
  const updates = sent(m, OP_CREDIT_UPDATE).filter((p) => p.header.srcPort === 5500);
  assert.ok(updates.some((p) => wrapped(p.header.fwdCnt)), "our fwd_cnt went across 0");
  m.poll(3);
  assert.ok(h.peerCredit() > RX_WINDOW - 65536, `all consumed: the window is open again (${h.peerCredit()})`);
  noViolations(m);
});

test("guest -> host across the 2^32 boundary: every byte in order, the host's credit updates honoured", async () => {
  const { m, g, h, fd } = await acceptedNearWrap(5501, 7501);
  const data = pattern(4 * RX_WINDOW + 555, 32);
  assert.equal(g.sendAll(fd, data), data.length);
  assert.ok(m.runUntil(() => h.received.length === data.length, 20000));
  assert.deepEqual(h.received, data);
  assert.ok(wrapped(h.fwdCnt), `host fwd_cnt wrapped: ${h.fwdCnt}`);
  noViolations(m);
});

test("both directions at once across the boundary (the echo service)", async () => {
  const { m } = await nearWrap();
  const h = m.host.connect(ECHO_PORT, 7502);
  const data = pattern(3 * RX_WINDOW + 99, 33);
  h.send(data);
  assert.ok(m.runUntil(() => h.received.length === data.length, 50000));
  assert.deepEqual(h.received, data);
  assert.ok(wrapped(h.txCnt) && wrapped(h.fwdCnt), `host tx_cnt ${h.txCnt} fwd_cnt ${h.fwdCnt}`);
  noViolations(m);
});

test("a peer fwd_cnt ahead of what we sent is caught after 4 GiB too, across the wrap", async () => {
  const { m, g, h, fd } = await acceptedNearWrap(5503, 7503);
  const data = pattern(400_000, 34); // our tx_cnt goes past 2^32
  assert.equal(g.sendAll(fd, data), data.length);
  assert.ok(m.runUntil(() => h.received.length === data.length, 20000));
  const txCnt = (START_U32 + data.length) >>> 0;
  assert.ok(txCnt < START_U32, "tx_cnt wrapped");
  m.poll(3);
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 0, "honest headers across the wrap are not lies");
  // A byte waits in the send buffer behind an honestly closed window, then the lie comes.
  m.device!.inject({ srcPort: 7503, dstPort: 5503, op: OP_CREDIT_UPDATE, bufAlloc: 0, fwdCnt: txCnt });
  m.poll(2);
  assert.equal(g.send(fd, "x"), 1);
  m.device!.inject({ srcPort: 7503, dstPort: 5503, op: OP_CREDIT_UPDATE, bufAlloc: RX_WINDOW, fwdCnt: (txCnt + 5000) >>> 0 });
  m.poll(2);
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 1);
  // While the lie stands we send nothing and take nothing more (its "in flight" is near 4 GiB,
  // beyond our buffer size); the host's next honest header reopens the window.
  assert.equal(g.send(fd, "y", MSG_DONTWAIT), -EAGAIN);
  m.poll(3);
  assert.equal(h.received.length, data.length);
  m.device!.inject({ srcPort: 7503, dstPort: 5503, op: OP_CREDIT_UPDATE, bufAlloc: RX_WINDOW, fwdCnt: txCnt });
  assert.ok(m.runUntil(() => h.received.length === data.length + 1, 100));
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 1);
});

test("a peer that shrinks its buffer below what is in flight across the wrap gets nothing, not 4 GiB", async () => {
  const { m, g, h, fd } = await acceptedNearWrap(5504, 7504);
  h.pauseReading(true);
  const data = pattern(310_000, 35);
  // 1000 bytes short of our buffer size (256 KiB) in flight, so the socket still takes 1000 more.
  g.sendAll(fd, data.subarray(0, RX_WINDOW - 1000));
  m.poll(3);
  assert.equal(h.unreadBytes, RX_WINDOW - 1000);
  // tx_cnt crossed 0 while the peer's fwd_cnt did not: in flight = 255 KiB > the new buf_alloc.
  const before = sent(m).length;
  m.device!.inject({ srcPort: 7504, dstPort: 5504, op: OP_CREDIT_UPDATE, bufAlloc: 4096, fwdCnt: START_U32 });
  assert.equal(g.send(fd, data.subarray(RX_WINDOW - 1000, RX_WINDOW)), 1000);
  m.poll(3);
  assert.equal(sent(m).slice(before).filter((p) => p.header.op === 5).length, 0, "no RW while the window is negative");
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 0);
});
