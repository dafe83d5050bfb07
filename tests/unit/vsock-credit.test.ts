// Credit flow control both ways (VSOCK.md rules 4-6) and the credit bugs others shipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  accepted,
  MAX_PAYLOAD,
  MSG_DONTWAIT,
  EAGAIN,
  OP_CREDIT_UPDATE,
  OP_RW,
  RX_WINDOW,
  SO_VM_SOCKETS_BUFFER_SIZE,
  guest,
  noViolations,
  pattern,
  sent,
} from "./vsock-helpers";

test("host -> guest transfer of 4x the window: the guest sends CREDIT_UPDATE as it reads (no freeze at buf_alloc)", async () => {
  const { m, g, h, fd } = await accepted(5100, 7100);
  const data = pattern(4 * RX_WINDOW + 12345, 3);
  h.send(data);
  m.poll(3);
  // The host stops at our window: nothing more arrives until we read.
  assert.equal(h.pendingSendBytes, data.length - RX_WINDOW);
  const got = g.readAll(fd, data.length);
  assert.equal(got.length, data.length);
  assert.deepEqual(got, data);
  const updates = sent(m, OP_CREDIT_UPDATE).filter((p) => p.header.srcPort === 5100);
  assert.ok(updates.length >= 4, `credit updates sent: ${updates.length}`);
  assert.equal(updates.at(-1)!.header.fwdCnt > 3 * RX_WINDOW, true);
  noViolations(m);
});

test("credit stall and resume, host -> guest: an unread buffer stops the host, reading resumes it", async () => {
  const { m, g, h, fd } = await accepted(5101, 7101);
  const data = pattern(RX_WINDOW + 1000, 4);
  h.send(data);
  m.poll(5);
  assert.equal(h.peerCredit(), 0, "the window is full");
  assert.equal(h.pendingSendBytes, 1000, "the rest waits on the host");
  const first = g.recv(fd, 100000) as Uint8Array;
  assert.equal(first.length, 100000);
  m.poll(3);
  assert.equal(h.pendingSendBytes, 0, "our CREDIT_UPDATE let the host send the rest");
  const rest = g.readAll(fd, data.length - first.length);
  assert.deepEqual(rest, data.subarray(first.length));
  noViolations(m);
});

test("credit stall and resume, guest -> host: a host that does not read stops us at its buf_alloc", async () => {
  const { m, g, h, fd } = await accepted(5102, 7102, { hostBufAlloc: 65536 });
  h.pauseReading(true);
  const data = pattern(300000, 5);
  let queued = 0;
  for (let i = 0; i < 200 && queued < data.length; i++) {
    const r = g.send(fd, data.subarray(queued), MSG_DONTWAIT);
    if (r > 0) queued += r;
    m.poll();
  }
  const rwBytes = sent(m, OP_RW)
    .filter((p) => p.header.srcPort === 5102)
    .reduce((n, p) => n + p.header.len, 0);
  assert.equal(rwBytes, 65536, "exactly the host's buf_alloc went out");
  assert.equal(h.unreadBytes, 65536);
  assert.equal(queued, 65536 + 65536, "the window plus our send buffer");
  assert.equal(g.send(fd, "x", MSG_DONTWAIT), -EAGAIN);
  h.pauseReading(false);
  const total = queued + g.sendAll(fd, data.subarray(queued));
  assert.equal(total, data.length);
  assert.ok(m.runUntil(() => h.received.length === data.length, 10000));
  assert.deepEqual(h.received, data);
  noViolations(m);
});

test("guest -> host transfer larger than the window (1 MiB), every RW <= 64 KiB", async () => {
  const { m, g, h, fd } = await accepted(5103, 7103, { hostBufAlloc: 131072 });
  const data = pattern(1 << 20, 6);
  assert.equal(g.sendAll(fd, data), data.length);
  assert.ok(m.runUntil(() => h.received.length === data.length, 10000));
  assert.deepEqual(h.received, data);
  const rw = sent(m, OP_RW).filter((p) => p.header.srcPort === 5103);
  assert.ok(rw.every((p) => p.header.len <= MAX_PAYLOAD && p.header.len > 0));
  assert.ok(rw.some((p) => p.header.len === MAX_PAYLOAD), "large writes go out as full 64 KiB packets");
  noViolations(m);
});

test("a 200 KiB single send is cut into packets of at most 64 KiB (MigTD #452)", async () => {
  const { m, g, h, fd } = await accepted(5104, 7104);
  const data = pattern(200 * 1024, 7);
  assert.equal(g.sendAll(fd, data), data.length);
  assert.ok(m.runUntil(() => h.received.length === data.length, 1000));
  const lens = sent(m, OP_RW)
    .filter((p) => p.header.srcPort === 5104)
    .map((p) => p.header.len);
  assert.ok(Math.max(...lens) <= MAX_PAYLOAD, `lengths ${lens}`);
  assert.equal(lens.reduce((a, b) => a + b, 0), data.length);
  assert.deepEqual(h.received, data);
  noViolations(m);
});

test("small writes coalesce: 1000 one-byte sends between polls leave as one packet", async () => {
  const { m, g, h, fd } = await accepted(5105, 7105);
  const before = sent(m, OP_RW).length;
  for (let i = 0; i < 1000; i++) assert.equal(g.send(fd, new Uint8Array([i & 0xff])), 1);
  m.poll(2);
  const rw = sent(m, OP_RW, 0).slice(before).filter((p) => p.header.srcPort === 5105);
  assert.deepEqual(rw.map((p) => p.header.len), [1000]);
  assert.equal(h.received.length, 1000);
  assert.equal(h.received[999], 999 & 0xff);
});

test("credit counters are per connection (gramine-tdx #25)", async () => {
  const { m, g } = await guest({ hostBufAlloc: 65536 });
  const lfd = g.listener(5106);
  const h1 = m.host.connect(5106, 7106);
  const h2 = m.host.connect(5106, 7107);
  assert.ok(m.runUntil(() => h1.state === "connected" && h2.state === "connected", 100));
  const a1 = g.accept(lfd).fd;
  const a2 = g.accept(lfd).fd;
  // Connection 1: the host reads nothing, so its window closes. Connection 2 must not care.
  h1.pauseReading(true);
  g.sendAll(a1, pattern(65536, 8));
  m.poll(3);
  assert.equal(h1.unreadBytes, 65536);
  const data2 = pattern(200000, 9);
  assert.equal(g.sendAll(a2, data2), data2.length);
  assert.ok(m.runUntil(() => h2.received.length === data2.length, 1000));
  assert.deepEqual(h2.received, data2);
  // And on the receive side: host 1 fills our window on a1; a2 still receives.
  h1.send(pattern(RX_WINDOW, 10));
  h2.send(pattern(1000, 11));
  m.poll(3);
  assert.deepEqual(g.recv(a2, 5000), pattern(1000, 11));
  // Each connection reports its own fwd_cnt when asked.
  const before = sent(m, OP_CREDIT_UPDATE).length;
  m.device!.inject({ srcPort: 7106, dstPort: 5106, op: 7 /* CREDIT_REQUEST */, fwdCnt: 0, bufAlloc: 65536 });
  m.device!.inject({ srcPort: 7107, dstPort: 5106, op: 7, fwdCnt: h2.fwdCnt, bufAlloc: 65536 });
  m.poll(3);
  const updates = sent(m, OP_CREDIT_UPDATE).slice(before);
  assert.equal(updates.find((p) => p.header.dstPort === 7106)!.header.fwdCnt, 0);
  assert.equal(updates.find((p) => p.header.dstPort === 7107)!.header.fwdCnt, 1000);
  noViolations(m);
});

test("SO_VM_SOCKETS_BUFFER_SIZE shrinks the advertised window and the host respects it", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5107);
  assert.equal(g.setsockopt(lfd, SO_VM_SOCKETS_BUFFER_SIZE, 4096n), 0);
  const h = m.host.connect(5107, 7107);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  const response = sent(m).find((p) => p.header.srcPort === 5107)!;
  assert.equal(response.header.bufAlloc, 4096);
  const data = pattern(50000, 12);
  h.send(data);
  m.poll(3);
  assert.equal(h.pendingSendBytes, 50000 - 4096);
  assert.deepEqual(g.readAll(fd, data.length), data);
  // Growing it again is announced at once.
  const before = sent(m, OP_CREDIT_UPDATE).length;
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 262144n), 0);
  m.poll(2);
  const update = sent(m, OP_CREDIT_UPDATE).slice(before).find((p) => p.header.srcPort === 5107)!;
  assert.equal(update.header.bufAlloc, 262144);
  noViolations(m);
});

test("a peer that overruns our window has the excess dropped, not written past the buffer", async () => {
  // The window is 1000 bytes from the start (the listener's size): lowering it on a live
  // connection would not revoke the 256 KiB already granted (credit-integrity.test.ts).
  const { m, g } = await guest();
  const lfd = g.listener(5108);
  assert.equal(g.setsockopt(lfd, SO_VM_SOCKETS_BUFFER_SIZE, 1000n), 0);
  const h = m.host.connect(5108, 7108);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  assert.equal(h.peerCredit(), 1000);
  m.device!.inject({ srcPort: 7108, dstPort: 5108, op: OP_RW }, pattern(800, 13));
  m.device!.inject({ srcPort: 7108, dstPort: 5108, op: OP_RW }, pattern(800, 14)); // beyond credit
  m.poll(2);
  const got = g.recv(fd, 5000) as Uint8Array;
  assert.deepEqual(got, pattern(800, 13));
  assert.equal(g.recv(fd, 5000, MSG_DONTWAIT), -EAGAIN);
  assert.equal(h.state, "connected");
});
