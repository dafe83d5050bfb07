// How connections end around a transport reset, per state as Linux (issue 19 item 3), and a peer
// SHUTDOWN of both directions while we are closing (item 5).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  accepted,
  EAGAIN,
  ECONNRESET,
  EINPROGRESS,
  ETIMEDOUT,
  OP_RST,
  SHUT_RDWR,
  SO_ERROR,
  connCount,
  guest,
  noViolations,
  pattern,
  sent,
  text,
} from "./vsock-helpers";
import { CLOSE_TIMEOUT_NS } from "../../tools/vsock-model/host";

for (const [how, end] of [
  ["closed (SHUTDOWN both ways)", "close"],
  ["reset (RST)", "reset"],
] as const) {
  test(`transport reset after the peer already ${how}: reads keep the data, then EOF, no ECONNRESET`, async () => {
    const { m, g, h, fd } = await accepted(5600, 8600);
    h.send("bye");
    m.poll(2);
    h[end]();
    m.poll(3);
    assert.ok(m.device!.transportReset(44));
    m.poll(2);
    assert.match(m.logLines("transport reset").at(-1)!, /connections_reset=0/);
    assert.equal(text(g.recv(fd, 10) as Uint8Array), "bye");
    assert.deepEqual(g.recv(fd, 10), new Uint8Array(0), "EOF, as before the reset");
    assert.equal(g.getsockopt(fd, SO_ERROR), 0n);
    g.close(fd);
    assert.equal(connCount(m), 0);
    noViolations(m);
  });
}

test("transport reset with a connection waiting in the accept queue, data in it: accept hands it out, data, then ECONNRESET", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5601);
  const h = m.host.connect(5601, 8601);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  h.send("queued before the reset");
  m.poll(2);
  assert.ok(m.device!.transportReset(44));
  m.poll(2);
  assert.match(m.logLines("transport reset").at(-1)!, /connections_reset=1/);
  assert.equal(connCount(m), 1, "still queued");
  const a = g.accept(lfd);
  assert.ok(a.fd >= 0, `accept: ${a.fd}`);
  assert.equal(a.port, 8601);
  assert.equal(text(g.recv(a.fd, 100) as Uint8Array), "queued before the reset");
  assert.equal(g.recv(a.fd, 100), -ECONNRESET);
  assert.equal(g.getsockopt(a.fd, SO_ERROR), BigInt(ECONNRESET));
  g.close(a.fd);
  assert.equal(connCount(m), 0);
  assert.equal(g.accept(lfd).fd, -EAGAIN);
  noViolations(m);
});

test("transport reset with an empty connection in the accept queue: accept hands it out with ECONNRESET", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5602);
  const h = m.host.connect(5602, 8602);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  assert.ok(m.device!.transportReset());
  m.poll(2);
  const a = g.accept(lfd);
  assert.ok(a.fd >= 0);
  assert.equal(g.recv(a.fd, 100), -ECONNRESET);
  g.close(a.fd);
  assert.equal(connCount(m), 0);
});

test("transport reset during a connect: untouched, as Linux (not yet connected); it times out", async () => {
  const { m, g } = await guest();
  m.host.listen(6600);
  const fd = g.socket();
  assert.equal(g.settimeout(fd, 0n), 0);
  assert.equal(g.connect(fd, 6600), -EINPROGRESS);
  // The host took the REQUEST and answered; the transport resets (a migration, a new cid) before
  // the RESPONSE is read: it is addressed to the old cid and dropped.
  assert.ok(m.device!.transportReset(44));
  m.poll(2);
  assert.match(m.logLines("transport reset").at(-1)!, /connections_reset=0/);
  assert.equal(g.getsockopt(fd, SO_ERROR), 0n, "no error yet: still connecting");
  m.advance(2_000_000_000n);
  m.poll(2);
  assert.equal(g.getsockopt(fd, SO_ERROR), BigInt(ETIMEDOUT));
  g.close(fd);
  assert.equal(connCount(m), 0);
});

for (const [what, flags] of [
  ["one SHUTDOWN of both directions", [SHUT_RDWR]],
  ["SHUTDOWN SEND then SHUTDOWN RCV", [1, 0]],
] as const) {
  test(`${what} from the peer while we are closing: RST and the connection ends at once`, async () => {
    const { m, g, h, fd } = await accepted(5610, 8610);
    // The host does not read, so our SHUTDOWN finds unread data and it does not answer with RST.
    h.pauseReading(true);
    assert.equal(g.send(fd, pattern(1000, 5)), 1000);
    m.poll(2);
    g.close(fd);
    m.poll(3);
    assert.equal(connCount(m), 1, "closing: waiting for the peer");
    assert.equal(h.state, "connected");
    const from = m.device!.sentByGuest.length;
    for (const how of flags) {
      h.shutdown(how);
      m.poll(2);
    }
    assert.equal(connCount(m), 0, "ended without waiting for the close timeout");
    assert.equal(sent(m, OP_RST, from).filter((p) => p.header.dstPort === 8610).length, 1);
    assert.match(m.logLines("connection closed").at(-1)!, /reason=local-close/);
    assert.ok(m.clock < CLOSE_TIMEOUT_NS, "the clock never reached the close timeout");
    noViolations(m);
  });
}
