// Credit once granted is never revoked (issue 19 item 1), and the simulator's credit-integrity
// invariant that every test using the sim's host runs on each tick (tools/vsock-model/host.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { accepted, OP_CREDIT_UPDATE, OP_RW, RX_WINDOW, SO_VM_SOCKETS_BUFFER_SIZE, noViolations, pattern, sent } from "./vsock-helpers";

test("a buffer size lowered under granted credit: every byte the host sent arrives, the window shrinks as it drains", async () => {
  const { m, g, h, fd } = await accepted(5400, 7400);
  const data = pattern(300_000, 19);
  h.send(data.subarray(0, 18_080));
  m.poll(3);
  assert.deepEqual(g.recv(fd, 18_080), data.subarray(0, 18_080));
  m.poll(3);
  // The host still holds credit granted under 256 KiB: the next 81,920 bytes are on their way (in
  // the rx ring) when the application lowers its buffer to 16 KiB (the probe of issue 19).
  h.send(data.subarray(18_080, 100_000));
  assert.equal(h.pendingSendBytes, 0, "all of it went out on credit already granted");
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 16_384n), 0);
  const from = m.device!.sentByGuest.length;
  assert.deepEqual(g.readAll(fd, 100_000 - 18_080), data.subarray(18_080, 100_000), "no byte dropped, no stall");
  // The rest flows as the window allows: first what is left of the old grant, then 16 KiB at a time.
  h.send(data.subarray(100_000));
  assert.deepEqual(g.readAll(fd, data.length - 100_000), data.subarray(100_000));
  // Every header promised further than the one before (credit never revoked, and no update that
  // gives the peer nothing), and the advertised buf_alloc only shrank, down to the new size once
  // the old grant drained.
  const headers = sent(m, undefined, from).filter((p) => p.header.srcPort === 5400).map((p) => p.header);
  assert.ok(headers.length > 2);
  for (let i = 1; i < headers.length; i++) {
    const [a, b] = [headers[i - 1], headers[i]];
    assert.ok(b.fwdCnt + b.bufAlloc > a.fwdCnt + a.bufAlloc, `header ${i} did not move the credit end forward`);
    assert.ok(b.bufAlloc <= a.bufAlloc, `header ${i} grew the window: ${a.bufAlloc} -> ${b.bufAlloc}`);
  }
  assert.ok(headers[0].bufAlloc > 16_384, `the first header after the change still covers the grant: ${headers[0].bufAlloc}`);
  assert.equal(headers.at(-1)!.bufAlloc, 16_384);
  m.poll(3);
  assert.equal(h.peerCredit(), 16_384, "the new size holds from now on");
  noViolations(m);
});

test("a lowered buffer size takes effect once the bytes granted before it are consumed", async () => {
  const { m, g, h, fd } = await accepted(5401, 7401);
  const data = pattern(RX_WINDOW, 21);
  h.send(data);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 4096n), 0);
  m.poll(3);
  const update = sent(m, OP_CREDIT_UPDATE).filter((p) => p.header.srcPort === 5401).at(-1)!;
  assert.equal(update.header.bufAlloc, RX_WINDOW, "the whole grant is still advertised: a peer never sees a negative window");
  assert.deepEqual(g.readAll(fd, data.length), data);
  m.poll(3);
  assert.equal(h.peerCredit(), 4096);
  assert.equal(sent(m, OP_RW).filter((p) => p.header.srcPort === 5401).length, 0);
  noViolations(m);
});

test("credit integrity: a byte that vanished in the firmware is a violation naming the connection and the counts", async () => {
  const { m, h } = await accepted(5402, 7402);
  const real = m.host.guestAccounting!;
  // The firmware's accounting, one byte short: as if a byte had been dropped silently.
  m.host.guestAccounting = (socket) => {
    const a = real(socket);
    return a && { ...a, buffered: Math.max(0, a.buffered - 1) };
  };
  h.send(pattern(1000, 22));
  m.poll(3);
  const found = m.device!.violations.filter((v) => v.startsWith("credit integrity"));
  assert.equal(found.length, 1, "reported once");
  assert.match(found[0], /connection host 7402<-guest 5402: the host sent 1000 bytes, the firmware got 1000: the app consumed fwd_cnt 0, 999 buffered, 0 dropped as beyond credit, 1 vanished/);
});

test("credit integrity: bytes refused within granted credit are a violation too", async () => {
  const { m, h } = await accepted(5403, 7403);
  const real = m.host.guestAccounting!;
  m.host.guestAccounting = (socket) => {
    const a = real(socket);
    return a && { ...a, buffered: a.buffered - 10, dropped: a.dropped + 10 };
  };
  h.send(pattern(500, 23));
  m.poll(3);
  assert.match(m.device!.violations.join("\n"), /credit integrity: connection host 7403<-guest 5403: .* 490 buffered, 10 dropped as beyond credit, 0 vanished/);
});
