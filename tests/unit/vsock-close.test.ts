// Ending connections: half-close, the close handshake and its timeout, RST at every stage,
// failed connects, transport reset (VSOCK.md rules 8, 9, 12).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  accepted,
  ECONNRESET,
  EAGAIN,
  EINPROGRESS,
  ENOTCONN,
  EPIPE,
  ETIMEDOUT,
  GUEST_CID,
  MSG_DONTWAIT,
  OP_REQUEST,
  OP_RST,
  OP_SHUTDOWN,
  POLLERR,
  POLLIN,
  POLLOUT,
  SHUT_RD,
  SHUT_WR,
  SO_ERROR,
  SO_VM_SOCKETS_CONNECT_TIMEOUT,
  connCount,
  guest,
  noViolations,
  pattern,
  sent,
  text,
} from "./vsock-helpers";

test("half-close from the guest (SHUT_WR): the host sees EOF and can still send to us", async () => {
  const { m, g, h, fd } = await accepted(5300, 8300);
  assert.equal(g.send(fd, "last words"), 10);
  assert.equal(g.shutdown(fd, SHUT_WR), 0);
  assert.ok(m.runUntil(() => h.eof, 100));
  assert.equal(text(h.received), "last words", "data before the SHUTDOWN");
  const shut = sent(m, OP_SHUTDOWN).filter((p) => p.header.srcPort === 5300);
  assert.deepEqual(shut.map((p) => p.header.flags), [2]);
  assert.equal(g.send(fd, "more"), -EPIPE);
  const reply = pattern(100000, 2);
  h.send(reply);
  assert.deepEqual(g.readAll(fd, reply.length), reply);
  h.close();
  assert.ok(m.runUntil(() => (g.recv(fd, 10, MSG_DONTWAIT) as Uint8Array).length === 0, 100));
  g.close(fd);
  assert.ok(m.runUntil(() => h.state === "closed" && connCount(m) === 0, 100));
  noViolations(m);
});

test("half-close from the host: we read to EOF and keep sending", async () => {
  const { m, g, h, fd } = await accepted(5301, 8301);
  h.send("question");
  h.shutdown(SHUT_WR);
  m.poll(3);
  assert.equal(text(g.readAll(fd, 100)), "question");
  assert.deepEqual(g.recv(fd, 10), new Uint8Array(0));
  const answer = pattern(300000, 3);
  assert.equal(g.sendAll(fd, answer), answer.length);
  assert.ok(m.runUntil(() => h.received.length === answer.length, 1000));
  assert.deepEqual(h.received, answer);
  noViolations(m);
});

test("SHUT_RD: recv gives EOF at once and the peer is told", async () => {
  const { m, g, h, fd } = await accepted(5302, 8302);
  h.send("ignored");
  m.poll(2);
  assert.equal(g.shutdown(fd, SHUT_RD), 0);
  assert.deepEqual(g.recv(fd, 10), new Uint8Array(0));
  m.poll(2);
  assert.equal(h.peerShutdown, 1);
  assert.equal(g.send(fd, "ok"), 2, "the write side is open");
});

test("close handshake: SHUTDOWN(3), the peer's RST frees the tuple; the summary is logged", async () => {
  const { m, g, h, fd } = await accepted(5303, 8303);
  h.send("x".repeat(10));
  m.poll(2);
  g.recv(fd, 100);
  g.send(fd, "y".repeat(20));
  assert.equal(g.close(fd), 0);
  assert.equal(connCount(m), 1, "lingers until the peer answers");
  assert.ok(m.runUntil(() => h.state === "closed", 100));
  assert.equal(text(h.received), "y".repeat(20), "buffered data left before the SHUTDOWN");
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  const line = m.logLines("connection closed").at(-1)!;
  assert.match(line, /dir=in local=5303 peer=2:8303 reason=local-close rx_bytes=10 tx_bytes=20 duration_ms=\d+ conns=0/);
  assert.equal(g.close(fd), -9, "the fd is gone");
  noViolations(m);
});

test("close timeout: a peer that never answers our SHUTDOWN gets our RST after 8 s", async () => {
  const { m, g, fd } = await accepted(5304, 8304);
  // A host that never answers: its packets for this connection are lost.
  const originalReceive = m.host.receive.bind(m.host);
  m.host.receive = (h, payload) => {
    if (h.srcPort !== 5304) originalReceive(h, payload);
  };
  assert.equal(g.close(fd), 0);
  m.poll(3);
  assert.equal(sent(m, OP_SHUTDOWN).filter((p) => p.header.srcPort === 5304).length, 1);
  assert.equal(connCount(m), 1);
  m.advance(7_000_000_000n);
  m.poll(2);
  assert.equal(connCount(m), 1, "still waiting at 7 s");
  const resetsBefore = sent(m, OP_RST).filter((p) => p.header.srcPort === 5304).length;
  m.advance(1_100_000_000n);
  m.poll(2);
  assert.equal(connCount(m), 0);
  assert.equal(sent(m, OP_RST).filter((p) => p.header.srcPort === 5304).length, resetsBefore + 1);
  assert.match(m.logLines("connection closed").at(-1)!, /reason=close-timeout/);
});

test("peer closes with SHUTDOWN(3) while data is buffered: data first, then EOF; we RST at once", async () => {
  const { m, g, h, fd } = await accepted(5305, 8305);
  const data = pattern(5000, 5);
  h.send(data);
  h.close();
  m.poll(3);
  assert.equal(h.state, "closed");
  assert.ok(sent(m, OP_RST).some((p) => p.header.srcPort === 5305), "the host is not left waiting 8 s");
  assert.deepEqual(g.readAll(fd, 5000), data);
  assert.deepEqual(g.recv(fd, 10), new Uint8Array(0));
  assert.equal(g.send(fd, "x"), -EPIPE);
  g.close(fd);
  assert.equal(connCount(m), 0);
});

test("RST on an established connection: remaining data, then EOF; send fails", async () => {
  const { m, g, h, fd } = await accepted(5306, 8306);
  h.send("before reset");
  m.poll(2);
  h.reset();
  m.poll(2);
  const [, revents] = g.poll([[fd, POLLIN | POLLOUT]], 0n);
  assert.ok(revents[0] & POLLIN);
  assert.equal(text(g.recv(fd, 100) as Uint8Array), "before reset");
  assert.deepEqual(g.recv(fd, 100), new Uint8Array(0));
  assert.equal(g.send(fd, "x"), -EPIPE);
  assert.equal(g.close(fd), 0);
  assert.equal(connCount(m), 0);
  assert.equal(sent(m, OP_RST).filter((p) => p.header.srcPort === 5306).length, 0, "an RST is not answered");
});

test("RST while waiting in the accept queue: the connection is dropped before accept", async () => {
  const { m, g, lfd, h } = await accepted(5307, 8307);
  const h2 = m.host.connect(5307, 8308);
  assert.ok(m.runUntil(() => h2.state === "connected", 100));
  h2.reset();
  m.poll(2);
  assert.equal(g.accept(lfd).fd, -EAGAIN);
  assert.equal(connCount(m), 1);
  assert.equal(h.state, "connected");
});

test("RST while closing ends the linger at once", async () => {
  const { m, g, h, fd } = await accepted(5308, 8308);
  h.pauseReading(true); // unread data: the host's close path does not RST yet (Linux)
  g.send(fd, "unread");
  m.poll(2);
  g.close(fd);
  m.poll(2);
  assert.equal(connCount(m), 1);
  h.reset();
  m.poll(2);
  assert.equal(connCount(m), 0);
});

test("connect to a port nobody listens on: RST -> ECONNRESET (blocking) and POLLERR (non-blocking)", async () => {
  const { m, g } = await guest();
  const fd = g.socket();
  assert.equal(g.connect(fd, 7777), -ECONNRESET);
  assert.equal(g.recv(fd, 10), -ENOTCONN);
  // retry after a failed connect works once someone listens (vsock_test)
  const hl = m.host.listen(7777);
  assert.equal(g.connect(fd, 7777), 0);
  assert.ok(hl.accept());
  const nb = g.socket();
  g.settimeout(nb, 0n);
  assert.equal(g.connect(nb, 7778), -EINPROGRESS);
  assert.ok(m.runUntil(() => (g.poll([[nb, POLLOUT]], 0n)[1][0] & POLLERR) !== 0, 100));
  assert.equal(g.getsockopt(nb, SO_ERROR), BigInt(ECONNRESET));
  assert.equal(g.getsockopt(nb, SO_ERROR), 0n, "SO_ERROR clears");
  noViolations(m);
});

test("connect timeout: 2 s by default, settable; no RESPONSE -> ETIMEDOUT", async () => {
  const { m, g } = await guest();
  const fd = g.socket();
  g.settimeout(fd, 0n);
  // A host that never answers our REQUEST (neither RESPONSE nor RST).
  const originalReceive = m.host.receive.bind(m.host);
  m.host.receive = (h, payload) => {
    if (h.op === OP_REQUEST && h.dstPort >= 7800 && h.dstPort <= 7801) return;
    originalReceive(h, payload);
  };
  assert.equal(g.connect(fd, 7800), -EINPROGRESS);
  m.poll(2);
  m.advance(1_900_000_000n);
  m.poll(2);
  assert.equal(g.poll([[fd, POLLOUT]], 0n)[0], 0, "still connecting at 1.9 s");
  m.advance(200_000_000n);
  m.poll(2);
  assert.ok(g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLERR);
  assert.equal(g.getsockopt(fd, SO_ERROR), BigInt(ETIMEDOUT));
  // A shorter connect timeout, blocking: the simulated clock moves 1 us per read.
  const fd2 = g.socket();
  assert.equal(g.setsockopt(fd2, SO_VM_SOCKETS_CONNECT_TIMEOUT, 2_000_000n), 0);
  assert.equal(g.connect(fd2, 7801), -ETIMEDOUT);
  assert.equal(connCount(m), 2, "both failed connections wait for their sockets to close");
  g.close(fd);
  g.close(fd2);
  assert.equal(connCount(m), 0);
});

test("transport reset: cid re-read, connections reset (ECONNRESET), listeners kept", async () => {
  const { m, g, h, fd, lfd } = await accepted(5309, 8309);
  assert.ok(m.device!.transportReset(44));
  m.poll(2);
  assert.equal(m.exports.vs_local_cid(), 44n);
  assert.equal(g.recv(fd, 10), -ECONNRESET);
  assert.equal(g.send(fd, "x"), -ECONNRESET);
  assert.equal(h.state, "reset");
  g.close(fd);
  assert.equal(connCount(m), 0);
  assert.match(m.logLines("transport reset").at(-1)!, /old_cid=33 cid=44 connections_reset=1/);
  // The listener still works, and every packet now carries the new cid.
  const before = m.device!.sentByGuest.length;
  const h2 = m.host.connect(5309, 8310);
  assert.ok(m.runUntil(() => h2.state === "connected", 100));
  const a = g.accept(lfd);
  assert.ok(a.fd >= 0);
  h2.send("after");
  m.poll(2);
  assert.equal(text(g.recv(a.fd, 10) as Uint8Array), "after");
  assert.ok(m.device!.sentByGuest.slice(before).every((p) => p.header.srcCid === 44n));
  assert.ok(m.device!.sentByGuest.slice(0, before).every((p) => p.header.srcCid === BigInt(GUEST_CID)));
  noViolations(m);
});

test("a client that writes and closes before accept: accept still returns it, data then EOF", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5310);
  const h = m.host.connect(5310, 8311);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  h.send("fire and forget");
  h.close();
  m.poll(4);
  assert.equal(h.state, "closed", "we answered its SHUTDOWN with RST at once");
  const a = g.accept(lfd);
  assert.ok(a.fd >= 0);
  assert.equal(text(g.recv(a.fd, 100) as Uint8Array), "fire and forget");
  assert.deepEqual(g.recv(a.fd, 100), new Uint8Array(0));
  g.close(a.fd);
  assert.equal(connCount(m), 0);
});

test("closing a listener resets the connections still waiting in its queue", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5311);
  const h1 = m.host.connect(5311, 8312);
  const h2 = m.host.connect(5311, 8313);
  assert.ok(m.runUntil(() => h1.state === "connected" && h2.state === "connected", 100));
  assert.equal(connCount(m), 2);
  assert.equal(g.close(lfd), 0);
  m.poll(2);
  assert.deepEqual([h1.state, h2.state], ["reset", "reset"]);
  assert.equal(connCount(m), 0);
  const again = m.host.connect(5311, 8314);
  assert.ok(m.runUntil(() => again.state !== "connecting", 100));
  assert.equal(again.state, "reset", "nobody listens any more");
});
