// The send side is bounded by the socket's own buffer size (SO_VM_SOCKETS_BUFFER_SIZE), as Linux
// since "vsock/virtio: cap TX credit to local buffer size": bytes in flight <= min(peer's
// buf_alloc, own size), and send buffer + in flight <= own size. vsock_test case 38 as client.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EAGAIN,
  MSG_DONTWAIT,
  OP_CREDIT_REQUEST,
  POLLOUT,
  SO_VM_SOCKETS_BUFFER_MAX_SIZE,
  SO_VM_SOCKETS_BUFFER_SIZE,
  guest,
  noViolations,
  pattern,
  sent,
} from "./vsock-helpers";
import type { MachineOptions } from "../sim/machine";

const OWN = 65536;
const CHUNK = 4096;

// A connected client socket with buffer size `own`, to a host that does not read.
async function clientTo(port: number, own: number, options: MachineOptions) {
  const { m, g } = await guest(options);
  const hl = m.host.listen(port);
  const fd = g.socket();
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_MAX_SIZE, BigInt(own)), 0);
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, BigInt(own)), 0);
  g.settimeout(fd, 0n);
  g.connect(fd, port);
  assert.ok(m.runUntil(() => (g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLOUT) !== 0, 100));
  const h = hl.accept()!;
  h.pauseReading(true);
  return { m, g, h, fd };
}

// Non-blocking 4096-byte sends, the device polled between them, until EAGAIN (bounded rounds).
function sendUntilFull(m: Awaited<ReturnType<typeof clientTo>>["m"], g: Awaited<ReturnType<typeof clientTo>>["g"], fd: number, data: Uint8Array): number {
  let total = 0;
  for (let round = 0; round < 2000 && total + CHUNK <= data.length; round++) {
    const r = g.send(fd, data.subarray(total, total + CHUNK), MSG_DONTWAIT);
    if (r === -EAGAIN) {
      m.poll(3);
      if (g.send(fd, data.subarray(total, total + CHUNK), MSG_DONTWAIT) === -EAGAIN) break;
      continue;
    }
    assert.ok(r > 0, `send: ${r}`);
    total += r;
    m.poll();
  }
  return total;
}

test("case 38: a 64 KiB socket to a 2 MiB peer that never reads takes 64 KiB, no more", async () => {
  // The host reports reads when its queue empties (Linux >= 6.8): a 2 MiB receiver's other rule
  // (free space below 64 KiB) never fires while a 64 KiB sender is all it has in flight.
  const { m, g, h, fd } = await clientTo(6600, OWN, { hostBufAlloc: 2 * 1024 * 1024, hostCreditUpdateOnDrain: true });
  const data = pattern(4 * 1024 * 1024, 38);
  const total = sendUntilFull(m, g, fd, data);
  assert.equal(total, OWN, "send() stops at the socket's own buffer size, and fills it");
  assert.equal(h.unreadBytes, OWN, "in flight: min(peer's 2 MiB, own 64 KiB)");
  assert.equal(g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLOUT, 0, "no POLLOUT while the socket is full");
  // Reading on the host reopens it; every byte arrives in order.
  h.pauseReading(false);
  assert.ok(m.runUntil(() => (g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLOUT) !== 0, 100));
  assert.equal(g.sendAll(fd, data.subarray(total, total + 3 * OWN)), 3 * OWN);
  assert.ok(m.runUntil(() => h.received.length === total + 3 * OWN, 1000));
  assert.deepEqual(h.received, data.subarray(0, total + 3 * OWN));
  noViolations(m);
});

test("a peer smaller than the socket: its buf_alloc in flight, the rest of the own size buffered", async () => {
  const { m, g, h, fd } = await clientTo(6601, OWN, { hostBufAlloc: 16384 });
  const data = pattern(1024 * 1024, 39);
  const total = sendUntilFull(m, g, fd, data);
  assert.equal(h.unreadBytes, 16384, "in flight: the peer's buf_alloc");
  assert.equal(total, OWN, "send buffer + in flight = own buffer size");
  // Lowering the buffer size below what the socket holds takes nothing more until it drains.
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 8192n), 0);
  m.poll(3);
  assert.equal(g.send(fd, data.subarray(total, total + 1), MSG_DONTWAIT), -EAGAIN);
  // The host reads its 16 KiB once: of the 48 KiB still buffered, only min(16 KiB, 8 KiB) go out.
  h.pauseReading(false);
  h.pauseReading(true);
  m.poll(3);
  assert.equal(h.received.length, 16384);
  assert.equal(h.unreadBytes, 8192, "in flight: min(peer's 16 KiB, the lowered own 8 KiB)");
  h.pauseReading(false);
  assert.ok(m.runUntil(() => h.received.length === total, 1000));
  assert.deepEqual(h.received, data.subarray(0, total));
  noViolations(m);
});

test("a peer with a much larger buffer that reports reads only when low (Linux < 6.8) is asked for credit", async () => {
  // 256 KiB host, 64 KiB socket: the host's free space never drops below 64 KiB, so it sends no
  // CREDIT_UPDATE of its own after reading; the stalled socket asks every 10 ms.
  const { m, g, h, fd } = await clientTo(6602, OWN, { hostBufAlloc: 262144 });
  h.pauseReading(false);
  const data = pattern(8 * OWN, 40);
  let at = 0;
  for (let round = 0; round < 2000 && at < data.length; round++) {
    const r = g.send(fd, data.subarray(at, at + OWN), MSG_DONTWAIT);
    if (r > 0) at += r;
    m.advance(1_000_000n); // 1 ms per round
    m.poll();
  }
  assert.equal(at, data.length, "the stream did not stall at the first 64 KiB");
  assert.ok(m.runUntil(() => h.received.length === data.length, 100));
  assert.deepEqual(h.received, data);
  const requests = sent(m, OP_CREDIT_REQUEST).length;
  assert.ok(requests >= 7 && requests <= 16, `CREDIT_REQUESTs: ${requests} (about one per 64 KiB stall)`);
  noViolations(m);
});
