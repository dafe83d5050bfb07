// Many connections at once, backlog, accept queues, ports (VSOCK.md rules 7, 10, 11).
import { test } from "node:test";
import assert from "node:assert/strict";
import { connectionLines } from "./connection-lines";
import type { HostSocket } from "../../tools/vsock-model/host";
import { rejections } from "./rejection-counts";
import {
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAGAIN,
  ECHO_PORT,
  ENOBUFS,
  MSG_DONTWAIT,
  OP_RST,
  VMADDR_PORT_ANY,
  connCount,
  guest,
  noViolations,
  pattern,
  sent,
  text,
} from "./vsock-helpers";

test("64 concurrent echo connections with interleaved traffic, the 65th refused, then a slot reused", async () => {
  const { m } = await guest();
  const hosts: HostSocket[] = [];
  for (let i = 0; i < 64; i++) hosts.push(m.host.connect(ECHO_PORT, 20000 + i));
  assert.ok(m.runUntil(() => hosts.every((h) => h.state === "connected"), 200));
  assert.equal(connCount(m), 64);
  // Interleave: three rounds, each host sends its own chunk every round.
  for (let round = 0; round < 3; round++) {
    hosts.forEach((h, i) => h.send(pattern(1000 + i, i * 10 + round)));
    m.poll(2);
  }
  assert.ok(m.runUntil(() => hosts.every((h, i) => h.received.length === 3 * (1000 + i)), 2000));
  hosts.forEach((h, i) => {
    const expected = new Uint8Array(3 * (1000 + i));
    for (let round = 0; round < 3; round++) expected.set(pattern(1000 + i, i * 10 + round), round * (1000 + i));
    assert.deepEqual(h.received, expected, `connection ${i}`);
  });
  const extra = m.host.connect(ECHO_PORT, 21000);
  assert.ok(m.runUntil(() => extra.state !== "connecting", 100));
  assert.equal(extra.state, "reset", "no connection left: RST");
  hosts[5].shutdown(1);
  assert.ok(m.runUntil(() => hosts[5].state === "closed" || hosts[5].eof, 200));
  hosts[5].close();
  assert.ok(m.runUntil(() => connCount(m) === 63, 200));
  const again = m.host.connect(ECHO_PORT, 21001);
  assert.ok(m.runUntil(() => again.state === "connected", 100));
  again.send("reused");
  assert.ok(m.runUntil(() => again.received.length === 6, 100));
  assert.equal(text(again.received), "reused");
  for (const h of [...hosts, again]) h.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 2000));
  m.advance(1_000_000_000n);
  m.poll(2);
  const lines = connectionLines(m);
  assert.equal(lines.closedLines + lines.foldedClosed, 65, "64 connections and the reused slot ended");
  assert.equal(lines.lastConns, 0);
  noViolations(m);
});

test("backlog: REQUESTs beyond it get RST; accepting makes room again", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5200, 2);
  const h1 = m.host.connect(5200, 8001);
  const h2 = m.host.connect(5200, 8002);
  const h3 = m.host.connect(5200, 8003);
  assert.ok(m.runUntil(() => [h1, h2, h3].every((h) => h.state !== "connecting"), 100));
  assert.deepEqual([h1.state, h2.state, h3.state], ["connected", "connected", "reset"]);
  assert.equal(g.accept(lfd).port, 8001);
  const h4 = m.host.connect(5200, 8004);
  assert.ok(m.runUntil(() => h4.state !== "connecting", 100));
  assert.equal(h4.state, "connected");
  assert.equal(g.accept(lfd).port, 8002);
  assert.equal(g.accept(lfd).port, 8004);
  assert.equal(g.accept(lfd).fd, -EAGAIN);
  noViolations(m);
});

test("a listener accepts again and again (hermit #2433)", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5301);
  for (let i = 0; i < 20; i++) {
    const h = m.host.connect(5301);
    assert.ok(m.runUntil(() => h.state === "connected", 100));
    const a = g.accept(lfd);
    assert.ok(a.fd >= 0, `accept ${i}`);
    h.send(`n${i}`);
    m.poll(2);
    assert.equal(text(g.recv(a.fd, 10) as Uint8Array), `n${i}`);
    assert.equal(g.close(a.fd), 0);
    assert.ok(m.runUntil(() => h.state === "closed", 100));
    h.close();
    assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  }
  noViolations(m);
});

test("no stall when another stream's data is queued first", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5202);
  const h1 = m.host.connect(5202, 8101);
  const h2 = m.host.connect(5202, 8102);
  assert.ok(m.runUntil(() => h1.state === "connected" && h2.state === "connected", 100));
  const a1 = g.accept(lfd).fd;
  const a2 = g.accept(lfd).fd;
  h1.send(pattern(600000, 1)); // more than a window, nobody reads a1
  h2.send("second");
  m.poll(5);
  assert.equal(text(g.recv(a2, 100) as Uint8Array), "second");
  // and a2 keeps flowing while a1 stays full
  h2.send("more");
  m.poll(2);
  assert.equal(text(g.recv(a2, 100) as Uint8Array), "more");
  assert.deepEqual(g.readAll(a1, 600000), pattern(600000, 1));
  noViolations(m);
});

test("ephemeral ports: > 1023, unique, exhausted with EADDRNOTAVAIL, reused after release", async () => {
  const { m, g } = await guest();
  m.host.listen(6000);
  assert.equal(m.exports.vsock_set_ephemeral_range(50000, 50003), 0);
  assert.equal(m.exports.vsock_set_ephemeral_range(1000, 2000), -22, "privileged ports are never ephemeral");
  const fds: number[] = [];
  const ports: number[] = [];
  for (let i = 0; i < 4; i++) {
    const fd = g.socket();
    assert.equal(g.connect(fd, 6000), 0);
    fds.push(fd);
    ports.push(g.sockname(fd).port);
  }
  assert.deepEqual([...ports].sort(), [50000, 50001, 50002, 50003]);
  const fd5 = g.socket();
  assert.equal(g.connect(fd5, 6000), -EADDRNOTAVAIL);
  assert.equal(g.bind(fd5, VMADDR_PORT_ANY), -EADDRNOTAVAIL);
  // Close one; the port is held until the host's RST completes the close handshake.
  assert.equal(g.close(fds[1]), 0);
  assert.ok(m.runUntil(() => connCount(m) === 3, 100));
  assert.equal(g.connect(fd5, 6000), 0);
  assert.equal(g.sockname(fd5).port, ports[1]);
  noViolations(m);
});

test("bind: an explicit port in use is EADDRINUSE; privileged ports only when bound explicitly", async () => {
  const { m, g } = await guest();
  const a = g.socket();
  assert.equal(g.bind(a, 80), 0, "explicit privileged bind is allowed");
  const b = g.socket();
  assert.equal(g.bind(b, 80), -EADDRINUSE);
  assert.equal(g.bind(b, ECHO_PORT), -EADDRINUSE, "the echo listener holds 1234");
  assert.equal(g.bind(b, VMADDR_PORT_ANY), 0);
  assert.ok(g.sockname(b).port > 1023);
  // Outbound connection from the explicitly bound port 80.
  const hl = m.host.listen(6001);
  assert.equal(g.connect(a, 6001), 0);
  const hs = hl.accept()!;
  assert.equal(hs.peerPort, 80);
  // Same explicit source tuple reused after close (vsock_test: reuse of the same source tuple).
  assert.equal(g.close(a), 0);
  assert.ok(m.runUntil(() => hs.state === "closed", 100));
  hs.close();
  assert.ok(m.runUntil(() => connCount(m) === 0, 100));
  const c = g.socket();
  assert.equal(g.bind(c, 80), 0);
  assert.equal(g.connect(c, 6001), 0);
  assert.equal(hl.accept()!.peerPort, 80);
  assert.equal(sent(m, OP_RST).filter((p) => p.header.srcPort === 80).length, 0);
  noViolations(m);
});

// ---- capacity (issue 19 item 4): a flood on one listener cannot take the whole table ----------

const TABLE = 64;

/** A listener whose application never accepts, flooded until the table is full. */
async function flooded() {
  const { m, g } = await guest();
  g.listener(5700, TABLE);
  const flood: HostSocket[] = [];
  // The default services hold no connection: the flood can fill the whole table.
  for (let i = 0; connCount(m) < TABLE && i < 2 * TABLE; i++) {
    flood.push(m.host.connect(5700, 30000 + i));
    m.poll(1);
  }
  assert.equal(connCount(m), TABLE);
  assert.ok(flood.every((h) => h.state === "connected"));
  return { m, g, flood };
}

test("a REQUEST flood on one listener: our own connect still gets a slot (its oldest queued connection reset)", async () => {
  const { m, g, flood } = await flooded();
  m.host.listen(6700);
  const fd = g.socket();
  assert.equal(g.connect(fd, 6700), 0, "not ENOBUFS");
  assert.equal(flood[0].state, "reset", "the oldest unaccepted connection made room");
  assert.equal(flood.filter((h) => h.state === "connected").length, TABLE - 1);
  assert.equal(rejections(m, "listener_over_share"), 1);
  assert.equal(m.logLines(/warn vsock: rejected: listener over its share: its oldest queued connection reset for room local=5700 pending=64 peer_port=30000 count=1/).length, 1);
  assert.match(m.logLines("connection closed").at(-1)!, /local=5700 peer=2:30000 reason=reclaimed/);
  // The flood goes on: refused with RST under its own reason while the table is full.
  const more = m.host.connect(5700, 31000);
  m.poll(2);
  assert.equal(more.state, "reset");
  assert.equal(rejections(m, "listener_over_share"), 2);
  assert.equal(rejections(m, "connection_table_full"), 0);
  noViolations(m);
});

test("a REQUEST flood on one listener: another listener's REQUEST still gets a slot", async () => {
  const { m, g, flood } = await flooded();
  const other = g.listener(5701);
  const h = m.host.connect(5701, 32000);
  assert.ok(m.runUntil(() => h.state !== "connecting", 100));
  assert.equal(h.state, "connected");
  assert.ok(g.accept(other).fd >= 0);
  assert.equal(flood.filter((s) => s.state === "reset").length, 1);
  noViolations(m);
});

test("the flood keeps its share: half the table is never taken back from it", async () => {
  const { m, g, flood } = await flooded();
  m.host.listen(6701);
  const fds: number[] = [];
  for (let i = 0; i < TABLE; i++) {
    const fd = g.socket();
    const r = g.connect(fd, 6701);
    if (r !== 0) {
      assert.equal(r, -ENOBUFS);
      break;
    }
    fds.push(fd);
  }
  assert.equal(fds.length, TABLE / 2, "our connects took the other half");
  assert.equal(flood.filter((h) => h.state === "connected").length, TABLE / 2);
  noViolations(m);
});

test("closing connections whose peer never answers are taken back first, oldest first", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(5702, TABLE);
  const hosts: HostSocket[] = [];
  for (let i = 0; i < TABLE; i++) {
    const h = m.host.connect(5702, 33000 + i);
    assert.ok(m.runUntil(() => h.state === "connected", 100));
    // The host never reads, so it never answers our SHUTDOWN with RST: we linger up to 8 s.
    h.pauseReading(true);
    const fd = g.accept(lfd).fd;
    assert.equal(g.send(fd, "x"), 1);
    m.poll(1);
    g.close(fd);
    m.poll(1);
    hosts.push(h);
  }
  assert.equal(connCount(m), TABLE);
  m.host.listen(6702);
  const fd = g.socket();
  assert.equal(g.connect(fd, 6702), 0);
  assert.equal(hosts[0].state, "closed", "the oldest closing connection got its RST early");
  assert.equal(hosts.filter((h) => h.state === "connected").length, TABLE - 1);
  assert.match(m.logLines("connection closed").at(-1)!, /peer=2:33000 reason=close-reclaimed/);
  assert.equal(rejections(m, "listener_over_share"), 0);
  noViolations(m);
});
