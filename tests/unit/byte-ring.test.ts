// Byte-ring wraparound (assembly/vsock-protocol/ring.ts), made deterministic (issue 19 item 6): the ring
// rewinds to 0 whenever it drains, so wraps happen in ordinary traffic only by chance. Each test
// parks a ring's head past the middle, writes across the end, checks with the unit build's hook
// (vsock_test_ring) that the bytes really straddle the wrap point, then reads or peeks across it.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Machine } from "../sim/machine";
import { accepted, MSG_DONTWAIT, MSG_PEEK, RX_WINDOW, SEND_BUFFER, noViolations, pattern } from "./vsock-helpers";

const RX = 0;
const TX = 1;

function ring(m: Machine, fd: number, which: number): { head: number; count: number; capacity: number } {
  const out = m.scratch(12);
  assert.equal(m.exports.vsock_test_ring(fd, which, out), 1);
  const view = new DataView(m.memory.buffer);
  return { head: view.getUint32(out, true), count: view.getUint32(out + 4, true), capacity: view.getUint32(out + 8, true) };
}

function straddles(r: { head: number; count: number; capacity: number }): boolean {
  return r.head > 0 && r.head + r.count > r.capacity;
}

test("receive ring: write across the end, peek and read across the wrap point", async () => {
  const { m, g, h, fd } = await accepted(5800, 9800);
  const data = pattern(350_000, 41);
  h.send(data.subarray(0, 200_000));
  m.poll(3);
  assert.deepEqual(g.recv(fd, 150_000), data.subarray(0, 150_000));
  m.poll(3); // our CREDIT_UPDATE lets the host send the rest
  h.send(data.subarray(200_000));
  m.poll(3);
  const r = ring(m, fd, RX);
  assert.equal(r.capacity, RX_WINDOW);
  assert.deepEqual([r.head, r.count], [150_000, 200_000], "head past the middle, the tail wrapped");
  assert.ok(straddles(r));
  // A peek across the wrap point returns the bytes in order and consumes nothing.
  assert.deepEqual(g.recv(fd, 200_000, MSG_PEEK), data.subarray(150_000));
  assert.deepEqual(ring(m, fd, RX), r);
  // Reads of odd sizes step over the end: one ends just before it, one crosses it.
  const upToEnd = RX_WINDOW - r.head;
  assert.deepEqual(g.recv(fd, upToEnd - 7), data.subarray(150_000, 150_000 + upToEnd - 7));
  assert.deepEqual(g.recv(fd, 1000), data.subarray(150_000 + upToEnd - 7, 150_000 + upToEnd + 993));
  assert.equal(ring(m, fd, RX).head, 993, "the head wrapped");
  assert.deepEqual(g.readAll(fd, 350_000 - (150_000 + upToEnd + 993)), data.subarray(150_000 + upToEnd + 993));
  noViolations(m);
});

test("send ring: a write that wraps, then sent across the wrap point in order", async () => {
  const { m, g, h, fd } = await accepted(5801, 9801, { hostBufAlloc: 10_000 });
  h.pauseReading(true);
  const data = pattern(80_000, 42);
  assert.equal(g.send(fd, data.subarray(0, 30_000), MSG_DONTWAIT), 30_000);
  m.poll(3); // the host's 10,000-byte window takes the first part; its reader is paused
  assert.equal(h.unreadBytes, 10_000);
  assert.deepEqual([ring(m, fd, TX).head, ring(m, fd, TX).count], [10_000, 20_000]);
  // The next write fills the ring: 35,536 bytes up to the end, 10,000 from the start.
  assert.equal(g.send(fd, data.subarray(30_000), MSG_DONTWAIT), SEND_BUFFER - 20_000);
  const r = ring(m, fd, TX);
  assert.deepEqual([r.head, r.count, r.capacity], [10_000, SEND_BUFFER, SEND_BUFFER]);
  assert.ok(straddles(r));
  // The host reads again: packets leave in order, one of them across the wrap point.
  h.pauseReading(false);
  const total = 30_000 + SEND_BUFFER - 20_000;
  assert.ok(m.runUntil(() => h.received.length === total, 2000));
  assert.deepEqual(h.received, data.subarray(0, total));
  assert.equal(g.send(fd, data.subarray(total), MSG_DONTWAIT), data.length - total);
  assert.ok(m.runUntil(() => h.received.length === data.length, 2000));
  assert.deepEqual(h.received, data);
  noViolations(m);
});
