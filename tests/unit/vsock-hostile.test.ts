// A peer that breaks the rules: random headers at the listener and at live connections, lying
// credit fields. The stack must neither trap nor send anything vhost would drop, and keep serving.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ECHO_PORT,
  GUEST_CID,
  MAX_PAYLOAD,
  OP_CREDIT_UPDATE,
  OP_RW,
  connCount,
  guest,
  noViolations,
  pattern,
  text,
} from "./vsock-helpers";

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

test("2000 random packets: no trap, every reply well-formed, the echo service still works", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5500, 8);
  const live = m.host.connect(ECHO_PORT, 9500);
  assert.ok(m.runUntil(() => live.state === "connected", 100));
  const rand = rng(12345);
  const ports = [5500, ECHO_PORT, 1235, 1236, 9999, 0, 0xffffffff];
  const hostPorts = [9500, 9501, 9502, 0, 0xffffffff];
  for (let i = 0; i < 2000; i++) {
    const len = [0, 1, 17, 4096][rand(4)];
    m.device!.inject(
      {
        srcCid: rand(10) === 0 ? 7 : 2,
        srcPort: hostPorts[rand(hostPorts.length)],
        dstPort: ports[rand(ports.length)],
        op: rand(9),
        type: rand(8) === 0 ? rand(4) : 1,
        flags: rand(4),
        bufAlloc: [0, 1, 65536, 262144, 0xffffffff][rand(5)],
        fwdCnt: [0, 1, 0x7fffffff, 0xffffffff][rand(4)],
      },
      pattern(len, i),
    );
    if (i % 50 === 0) m.poll(2);
    if (i % 200 === 0) while (g.accept(lfd).fd >= 0); // keep the backlog moving
  }
  m.poll(20);
  assert.deepEqual(m.aborts, []);
  assert.deepEqual(m.device!.violations, []);
  for (const p of m.device!.sentByGuest) {
    assert.equal(p.header.srcCid, BigInt(GUEST_CID));
    assert.equal(p.header.dstCid, 2n);
    assert.ok(p.header.len <= MAX_PAYLOAD);
  }
  // The stack still serves new connections.
  const fresh = m.host.connect(ECHO_PORT, 9600);
  assert.ok(m.runUntil(() => fresh.state === "connected", 100));
  fresh.send("alive");
  assert.ok(m.runUntil(() => fresh.received.length === 5, 100));
  assert.equal(text(fresh.received), "alive");
});

test("lying credit: fwd_cnt ahead of what we sent, buf_alloc 0 -> we send nothing and do not trap", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5501);
  const h = m.host.connect(5501, 9501);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  m.device!.inject({ srcPort: 9501, dstPort: 5501, op: OP_CREDIT_UPDATE, bufAlloc: 0, fwdCnt: 0 });
  m.poll(2);
  const before = m.device!.sentByGuest.filter((p) => p.header.op === OP_RW).length;
  assert.equal(g.send(fd, pattern(1000, 1)), 1000);
  m.poll(3);
  assert.equal(m.device!.sentByGuest.filter((p) => p.header.op === OP_RW).length, before, "no credit, no RW");
  // fwd_cnt beyond tx_cnt: in flight wraps to a huge number; still no RW (never beyond the window)
  m.device!.inject({ srcPort: 9501, dstPort: 5501, op: OP_CREDIT_UPDATE, bufAlloc: 4096, fwdCnt: 5000 });
  m.poll(3);
  assert.equal(m.device!.sentByGuest.filter((p) => p.header.op === OP_RW).length, before);
  // An honest update reopens the window and the data arrives intact.
  m.device!.inject({ srcPort: 9501, dstPort: 5501, op: OP_CREDIT_UPDATE, bufAlloc: 262144, fwdCnt: 0 });
  assert.ok(m.runUntil(() => h.received.length === 1000, 100));
  assert.deepEqual(h.received, pattern(1000, 1));
  noViolations(m);
  assert.equal(connCount(m), 1);
});
