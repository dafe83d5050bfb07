// Every op in both directions, the addressing rules, and the RST rules (VSOCK.md rules 1, 7, 10).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  GUEST_CID,
  MSG_DONTWAIT,
  EAGAIN,
  OP_CREDIT_REQUEST,
  OP_CREDIT_UPDATE,
  OP_REQUEST,
  OP_RESPONSE,
  OP_RST,
  OP_RW,
  OP_SHUTDOWN,
  connCount,
  guest,
  noViolations,
  sent,
  text,
} from "./vsock-helpers";

test("REQUEST to a listener gets RESPONSE; RW both ways; every packet has src_cid=33, dst_cid=2", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5000);
  const h = m.host.connect(5000, 7000);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const responses = sent(m, OP_RESPONSE).filter((p) => p.header.srcPort === 5000);
  assert.equal(responses.length, 1);
  assert.equal(responses[0].header.dstPort, 7000);
  const a = g.accept(lfd);
  assert.ok(a.fd >= 0);
  assert.deepEqual([a.cid, a.port], [2, 7000]);
  h.send("ping");
  m.poll(2);
  const got = g.recv(a.fd, 100, MSG_DONTWAIT);
  assert.ok(got instanceof Uint8Array);
  assert.equal(text(got), "ping");
  assert.equal(g.send(a.fd, "pong"), 4);
  assert.ok(m.runUntil(() => h.received.length === 4, 100));
  assert.equal(text(h.received), "pong");
  const rw = sent(m, OP_RW).filter((p) => p.header.srcPort === 5000);
  assert.equal(rw.length, 1);
  assert.equal(rw[0].header.len, 4);
  for (const p of m.device!.sentByGuest) {
    assert.equal(p.header.srcCid, BigInt(GUEST_CID));
    assert.equal(p.header.dstCid, 2n);
    assert.equal(p.header.type, 1);
  }
  noViolations(m);
});

test("CREDIT_REQUEST is answered with CREDIT_UPDATE carrying our buf_alloc and fwd_cnt", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5001);
  const h = m.host.connect(5001, 7001);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const a = g.accept(lfd);
  h.send("abc");
  m.poll(2);
  assert.equal(text(g.recv(a.fd, 10) as Uint8Array), "abc");
  const before = m.device!.sentByGuest.length;
  m.device!.inject({ srcPort: 7001, dstPort: 5001, op: OP_CREDIT_REQUEST, fwdCnt: 0 });
  m.poll(2);
  const updates = sent(m, OP_CREDIT_UPDATE, before);
  assert.equal(updates.length, 1);
  assert.equal(updates[0].header.bufAlloc, 262144);
  assert.equal(updates[0].header.fwdCnt, 3);
  assert.equal(updates[0].header.dstPort, 7001);
  noViolations(m);
});

test("CREDIT_UPDATE from the peer reopens a closed window", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5002);
  const h = m.host.connect(5002, 7002);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const a = g.accept(lfd);
  // Pretend the host has a 100-byte buffer that is full: fwd_cnt 0, buf_alloc 100.
  m.device!.inject({ srcPort: 7002, dstPort: 5002, op: OP_CREDIT_UPDATE, bufAlloc: 100, fwdCnt: 0 });
  m.poll(2);
  const before = m.device!.sentByGuest.length;
  assert.equal(g.send(a.fd, new Uint8Array(250).fill(7)), 250);
  m.poll(3);
  let rw = sent(m, OP_RW, before);
  assert.deepEqual(rw.map((p) => p.header.len), [100], "only 100 bytes fit the advertised window");
  m.device!.inject({ srcPort: 7002, dstPort: 5002, op: OP_CREDIT_UPDATE, bufAlloc: 100, fwdCnt: 100 });
  m.poll(3);
  rw = sent(m, OP_RW, before);
  assert.deepEqual(rw.map((p) => p.header.len), [100, 100]);
  m.device!.inject({ srcPort: 7002, dstPort: 5002, op: OP_CREDIT_UPDATE, bufAlloc: 1000, fwdCnt: 200 });
  m.poll(3);
  rw = sent(m, OP_RW, before);
  assert.deepEqual(rw.map((p) => p.header.len), [100, 100, 50]);
});

test("SHUTDOWN from the peer: buffered data first, then EOF; RST ends it", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5003);
  const h = m.host.connect(5003, 7003);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const a = g.accept(lfd);
  h.send("tail");
  h.shutdown(1);
  m.poll(3);
  assert.equal(text(g.recv(a.fd, 100) as Uint8Array), "tail");
  const eof = g.recv(a.fd, 100);
  assert.ok(eof instanceof Uint8Array && eof.length === 0, "EOF after the data");
  // the write side still works after the peer's half-close
  assert.equal(g.send(a.fd, "still"), 5);
  assert.ok(m.runUntil(() => h.received.length === 5, 100));
  assert.equal(g.close(a.fd), 0);
  assert.ok(m.runUntil(() => h.state === "closed", 100));
  const shut = sent(m, OP_SHUTDOWN).filter((p) => p.header.srcPort === 5003);
  assert.equal(shut.length, 1);
  assert.equal(shut[0].header.flags, 3);
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  noViolations(m);
});

test("RST to unknown tuples, to non-REQUEST packets at a listener, to unknown types; never to an RST", async () => {
  const { m, g } = await guest();
  g.listener(5004);
  const resets = () => sent(m, OP_RST).length;
  let before = resets();
  m.device!.inject({ srcPort: 7100, dstPort: 9999, op: OP_RW }, new Uint8Array([1, 2]));
  m.poll(2);
  assert.equal(resets(), before + 1, "RW to an unknown tuple");
  let last = sent(m, OP_RST).at(-1)!;
  assert.deepEqual([last.header.srcPort, last.header.dstPort], [9999, 7100]);
  before = resets();
  m.device!.inject({ srcPort: 7101, dstPort: 5004, op: OP_RW }, new Uint8Array([1]));
  m.poll(2);
  assert.equal(resets(), before + 1, "RW aimed at a listener");
  before = resets();
  m.device!.inject({ srcPort: 7102, dstPort: 5004, op: OP_SHUTDOWN, flags: 3 });
  m.poll(2);
  assert.equal(resets(), before + 1, "SHUTDOWN aimed at a listener");
  before = resets();
  m.device!.inject({ srcPort: 7103, dstPort: 5004, op: OP_REQUEST, type: 2 });
  m.poll(2);
  assert.equal(resets(), before + 1, "SEQPACKET REQUEST (unsupported type)");
  before = resets();
  m.device!.inject({ srcPort: 7104, dstPort: 5004, op: 99 });
  m.poll(2);
  assert.equal(resets(), before + 1, "unknown op at a listener");
  before = resets();
  m.device!.inject({ srcPort: 7105, dstPort: 9999, op: OP_RST });
  m.device!.inject({ srcPort: 7105, dstPort: 5004, op: OP_RST });
  m.poll(2);
  assert.equal(resets(), before, "an RST is never answered");
  assert.equal(connCount(m), 0);
  last = sent(m, OP_RST).at(-1)!;
  assert.equal(last.header.srcCid, BigInt(GUEST_CID));
});

test("unknown op on an established connection is ignored; recv does not report EOF for non-data packets", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5005);
  const h = m.host.connect(5005, 7005);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const a = g.accept(lfd);
  const before = sent(m, OP_RST).length;
  m.device!.inject({ srcPort: 7005, dstPort: 5005, op: 42 });
  m.device!.inject({ srcPort: 7005, dstPort: 5005, op: OP_CREDIT_UPDATE, fwdCnt: 0 });
  m.device!.inject({ srcPort: 7005, dstPort: 5005, op: OP_RW }); // zero-length RW
  m.device!.inject({ srcPort: 7005, dstPort: 5005, op: OP_SHUTDOWN, flags: 0 }); // no flags
  m.poll(3);
  assert.equal(sent(m, OP_RST).length, before);
  // MigTD a97e5d9: a non-data packet must not look like EOF
  assert.equal(g.recv(a.fd, 10, MSG_DONTWAIT), -EAGAIN);
  h.send("ok");
  m.poll(2);
  assert.equal(text(g.recv(a.fd, 10) as Uint8Array), "ok");
  noViolations(m);
});

test("connections are matched by the full tuple (peer cid, peer port, local port)", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5006);
  const h1 = m.host.connect(5006, 7006);
  const h2 = m.host.connect(5006, 7007);
  assert.ok(m.runUntil(() => h1.state === "connected" && h2.state === "connected", 100));
  const a1 = g.accept(lfd);
  const a2 = g.accept(lfd);
  assert.deepEqual([a1.port, a2.port], [7006, 7007]);
  h1.send("one");
  h2.send("two");
  m.poll(2);
  assert.equal(text(g.recv(a1.fd, 10) as Uint8Array), "one");
  assert.equal(text(g.recv(a2.fd, 10) as Uint8Array), "two");
  // Same ports, another cid: not this connection (gramine-tdx #56). Only the host (cid 2) talks
  // to us and vhost would drop a reply to any other cid: dropped without data or reply.
  const before = sent(m, OP_RST).length;
  m.device!.inject({ srcCid: 3, srcPort: 7006, dstPort: 5006, op: OP_RW }, new TextEncoder().encode("evil"));
  m.device!.inject({ srcCid: 3, srcPort: 7010, dstPort: 5006, op: OP_REQUEST });
  m.poll(2);
  assert.equal(sent(m, OP_RST).length, before);
  assert.equal(g.recv(a1.fd, 10, MSG_DONTWAIT), -EAGAIN);
  assert.equal(g.accept(lfd).fd, -EAGAIN);
  // Same peer port, other local port: another tuple, RST.
  m.device!.inject({ srcPort: 7006, dstPort: 5007, op: OP_RW }, new TextEncoder().encode("evil"));
  m.poll(2);
  assert.equal(sent(m, OP_RST).length, before + 1);
  assert.equal(sent(m, OP_RST).at(-1)!.header.dstPort, 7006);
  assert.equal(g.recv(a1.fd, 10, MSG_DONTWAIT), -EAGAIN);
  assert.equal(h1.state, "connected");
  noViolations(m);
});
