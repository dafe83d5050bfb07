// SO_RCVLOWAT (option 18, Linux's semantics): a blocking recv waits for min(lowat, len) bytes,
// poll reports POLLIN only from lowat bytes (or an ended stream), and a reader waiting for more
// than is buffered gets the peer going: credit goes out when the option is set and after reads
// that leave less than lowat (virtio_transport_notify_set_rcvlowat, low_rx_bytes).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  accepted,
  EINVAL,
  MSG_DONTWAIT,
  noViolations,
  OP_CREDIT_UPDATE,
  pattern,
  POLLIN,
  sent,
  SHUT_WR,
  SO_RCVTIMEO,
  SO_VM_SOCKETS_BUFFER_SIZE,
} from "./vsock-helpers";

const SO_RCVLOWAT = 18;

test("SO_RCVLOWAT: set and get, 0 means 1, no more than the buffer size, inherited on accept", async () => {
  const { g, fd, lfd, m } = await accepted(5100, 40100);
  assert.equal(g.getsockopt(fd, SO_RCVLOWAT), 1n);
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, 128n), 0);
  assert.equal(g.getsockopt(fd, SO_RCVLOWAT), 128n);
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, 0n), 0);
  assert.equal(g.getsockopt(fd, SO_RCVLOWAT), 1n);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 65536n), 0);
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, 65537n), -EINVAL);
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, -1n), -EINVAL);
  assert.equal(g.setsockopt(lfd, SO_RCVLOWAT, 77n), 0);
  const h2 = m.host.connect(5100, 40101);
  assert.ok(m.runUntil(() => h2.state === "connected", 100));
  const child = g.accept(lfd).fd;
  assert.equal(g.getsockopt(child, SO_RCVLOWAT), 77n);
  noViolations(m);
});

test("SO_RCVLOWAT: POLLIN only from lowat bytes or at EOF; a blocking recv waits for them", async () => {
  const { g, fd, h, m } = await accepted(5101, 40102);
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, 128n), 0);
  h.send(pattern(1, 1));
  m.poll(5);
  assert.equal(g.poll([[fd, POLLIN]], 0n)[1][0] & POLLIN, 0, "1 byte < lowat: no POLLIN");
  // A blocking recv with a 2 ms timeout: not enough bytes, so it waits, then takes what there is.
  assert.equal(g.setsockopt(fd, SO_RCVTIMEO, 2_000_000n), 0);
  const clock = m.clock;
  const partial = g.recv(fd, 4096);
  assert.ok(partial instanceof Uint8Array && partial.length === 1);
  assert.ok(m.clock - clock >= 2_000_000n, "waited for the timeout");
  h.send(pattern(127, 2));
  m.poll(5);
  assert.equal(g.poll([[fd, POLLIN]], 0n)[1][0] & POLLIN, 0, "127 bytes < lowat: no POLLIN");
  h.send(pattern(1, 3));
  m.poll(5);
  assert.equal(g.poll([[fd, POLLIN]], 0n)[1][0] & POLLIN, POLLIN, "128 bytes: POLLIN");
  const whole = g.recv(fd, 4096);
  assert.ok(whole instanceof Uint8Array && whole.length === 128);
  // min(lowat, len): a 10-byte read of a 128-lowat socket needs only 10 bytes.
  h.send(pattern(10, 4));
  m.poll(5);
  const small = g.recv(fd, 10);
  assert.ok(small instanceof Uint8Array && small.length === 10);
  // EOF with fewer than lowat bytes: readable, and the bytes come, then EOF.
  h.send(pattern(5, 5));
  h.shutdown(SHUT_WR);
  m.poll(5);
  assert.equal(g.poll([[fd, POLLIN]], 0n)[1][0] & POLLIN, POLLIN, "EOF: POLLIN");
  const last = g.recv(fd, 4096);
  assert.ok(last instanceof Uint8Array && last.length === 5);
  const eof = g.recv(fd, 4096);
  assert.ok(eof instanceof Uint8Array && eof.length === 0);
  noViolations(m);
});

test("SO_RCVLOWAT: credit goes out when it is raised above what is buffered, and after reads below it", async () => {
  const { g, fd, h, m } = await accepted(5102, 40103);
  h.send(pattern(100, 6));
  m.poll(5);
  // A 50-byte read of 100 leaves the peer's view of the window far above the threshold: no update.
  let from = m.device!.sentByGuest.length;
  assert.equal((g.recv(fd, 50, MSG_DONTWAIT) as Uint8Array).length, 50);
  m.poll(5);
  assert.equal(sent(m, OP_CREDIT_UPDATE, from).length, 0, "no credit update for a small read at lowat 1");
  // Raising SO_RCVLOWAT above the 50 buffered bytes reports the read at once.
  from = m.device!.sentByGuest.length;
  assert.equal(g.setsockopt(fd, SO_RCVLOWAT, 200n), 0);
  m.poll(5);
  const updates = sent(m, OP_CREDIT_UPDATE, from);
  assert.equal(updates.length, 1, "one credit update when lowat is raised");
  assert.equal(updates[0].header.fwdCnt, 50);
  // Then every read that leaves fewer than lowat bytes reports itself.
  from = m.device!.sentByGuest.length;
  assert.equal((g.recv(fd, 20, MSG_DONTWAIT) as Uint8Array).length, 20);
  m.poll(5);
  const after = sent(m, OP_CREDIT_UPDATE, from);
  assert.equal(after.length, 1, "low rx bytes: an update after the read");
  assert.equal(after[0].header.fwdCnt, 70);
  noViolations(m);
});
