// SOCK_SEQPACKET (issue 15): feature negotiation, message boundaries both ways at the sizes
// around a page and a packet, truncation, many messages under credit pressure, the type checks,
// and the bad input of a peer (no EOM, too many messages, wrong type).
import assert from "node:assert/strict";
import { test } from "node:test";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../../tools/vsock-model/virtio-device";
import {
  VIRTIO_VSOCK_F_SEQPACKET,
  VIRTIO_VSOCK_SEQ_EOM,
  VIRTIO_VSOCK_SEQ_EOR,
  VIRTIO_VSOCK_TYPE_SEQPACKET as SEQ,
} from "../../tools/vsock-model/vsock-packet";
import type { Machine } from "../sim/machine";
import { rejections } from "./rejection-counts";
import {
  ECHO_PORT,
  EINVAL,
  ECONNRESET,
  EAGAIN,
  ENOBUFS,
  EPROTO,
  Guest,
  MSG_DONTWAIT,
  MSG_PEEK,
  OP_RST,
  OP_RW,
  SO_VM_SOCKETS_BUFFER_SIZE,
  connCount,
  guest,
  noViolations,
  pattern,
  sent,
  text,
} from "./vsock-helpers";

const SOCK_STREAM = 1, SOCK_SEQPACKET = 5;
const MSG_TRUNC = 0x20, MSG_EOR = 0x80;
const EMSGSIZE = 90, ESOCKTNOSUPPORT = 94;
const SEQPACKET_ECHO_PORT = 1238;
const SIZES = [1, 4095, 4096, 65536, 65537, 262144];

/** assert.ok with a message always: without one, node's assert re-reads the source to describe the
 *  failed expression, which under tsx can take minutes (a failing test then looks hung). */
function ok(value: unknown, message = "expected a truthy value"): void {
  assert.ok(value, message);
}

/** recvmsg through the wasm: the bytes (or -errno), the returned length, and the msg flags. */
const EFAULT_ERRNO = 14;

function recvmsg(g: Guest, fd: number, max: number, flags = 0): { r: number; bytes: Uint8Array; msgFlags: number } {
  const buffer = g.m.scratch(Math.max(max, 1));
  const flagsOut = g.m.scratch(4);
  const r = g.x.vs_recvmsg(fd, buffer, max, flags, flagsOut);
  const msgFlags = new DataView(g.m.memory.buffer).getUint32(flagsOut, true);
  return { r, bytes: r > 0 ? g.m.read(buffer, Math.min(r, max)) : new Uint8Array(0), msgFlags };
}

/** A guest SEQPACKET listener on `port` with one host connection accepted (blocking fd). */
async function seqAccepted(port = 7000, options = {}) {
  const { m, g } = await guest(options);
  const lfd = g.x.vs_socket(SOCK_SEQPACKET);
  ok(lfd >= 0, `socket: ${lfd}`);
  assert.equal(g.bind(lfd, port), 0);
  assert.equal(g.listen(lfd, 16), 0);
  g.settimeout(lfd, 0n);
  const h = m.host.connect(port, 9000, SEQ);
  ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  ok(fd >= 0, `accept: ${fd}`);
  return { m, g, h, fd, lfd };
}

/** Guest RW packets to a host port, grouped into messages at EOM: each message's packet lengths. */
function guestMessages(m: Machine, hostPort: number, from = 0): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  for (const p of sent(m, OP_RW, from).filter((p) => p.header.dstPort === hostPort)) {
    assert.equal(p.header.type, SEQ, "every packet of the connection is SEQPACKET");
    ok(p.header.len <= 65536, "no packet over 64 KiB");
    current.push(p.header.len);
    if (p.header.flags & VIRTIO_VSOCK_SEQ_EOM) {
      out.push(current);
      current = [];
    }
  }
  assert.deepEqual(current, [], "no message left without its EOM");
  return out;
}

test("F_SEQPACKET is negotiated when offered, and the ready line names the SEQPACKET echo", async () => {
  const { m } = await guest();
  ok(m.device!.features & VIRTIO_VSOCK_F_SEQPACKET);
  assert.equal(m.logLines(/info vsock-dev: ready .* seqpacket=1/).length, 1);
  assert.equal(m.logLines(/info app: ready: .* seqpacket_echo=1238/).length, 1);
});

test("a device without F_SEQPACKET: SEQPACKET sockets are ESOCKTNOSUPPORT, a SEQPACKET packet is dropped and logged, STREAM works", async () => {
  const { m, g } = await guest({ deviceFeatures: VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX });
  assert.equal(m.device!.features & VIRTIO_VSOCK_F_SEQPACKET, 0n);
  assert.equal(g.x.vs_socket(SOCK_SEQPACKET), -ESOCKTNOSUPPORT);
  assert.equal(m.logLines(/info sock: SEQPACKET socket refused: the device did not offer VIRTIO_VSOCK_F_SEQPACKET/).length, 1);
  assert.equal(m.logLines(/info app: ready: .*seqpacket_echo/).length, 0, "no SEQPACKET echo without the feature");
  // A bogus device that sends SEQPACKET anyway: refused, logged, and not answered (an RST would
  // itself be a SEQPACKET packet, which this device never agreed to carry).
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ type: SEQ, srcPort: 9100, dstPort: SEQPACKET_ECHO_PORT, op: 1 });
  m.poll(3);
  assert.deepEqual(sent(m, OP_RST, from), []);
  assert.equal(rejections(m, "seqpacket_not_negotiated"), 1);
  assert.equal(m.logLines(/warn vsock: rejected: SEQPACKET packet from a device without VIRTIO_VSOCK_F_SEQPACKET/).length, 1);
  // The host side will not even try (vhost's seqpacket_allow): refused, nothing sent.
  const sentBefore = m.device!.deliveredToGuest.length;
  const refused = m.host.connect(SEQPACKET_ECHO_PORT, 9103, SEQ);
  assert.equal(refused.error, "ESOCKTNOSUPPORT");
  m.poll(2);
  assert.equal(m.device!.deliveredToGuest.length, sentBefore);
  // STREAM echo as ever.
  const h = m.host.connect(ECHO_PORT, 9101);
  ok(m.runUntil(() => h.state === "connected", 100));
  h.send("still a stream\n");
  ok(m.runUntil(() => text(h.received) === "still a stream\n", 1000));
  ok(g.x.vs_socket(SOCK_STREAM) >= 0 && g.x.vs_socket(0) >= 0);
  noViolations(m);
});

test("socket types: 0 and 1 are STREAM, 5 SEQPACKET, anything else ESOCKTNOSUPPORT with a log line; SO_TYPE says which", async () => {
  const { m, g } = await guest();
  for (const bad of [2, 3, 4, 6, -1]) assert.equal(g.x.vs_socket(bad), -ESOCKTNOSUPPORT, `type ${bad}`);
  ok(m.logLines(/debug sock: socket type not supported \(1 stream, 5 seqpacket\) type=2/).length >= 1);
  assert.equal(g.getsockopt(g.x.vs_socket(SOCK_SEQPACKET), 3), 5n);
  assert.equal(g.getsockopt(g.x.vs_socket(0), 3), 1n);
});

test("host to guest: messages of 1, 4095, 4096, 65536, 65537 and 256 KiB arrive whole, one per recv", async () => {
  const { m, g, h, fd } = await seqAccepted();
  for (const [i, size] of SIZES.entries()) {
    const message = pattern(size, i + 1);
    assert.equal(h.sendMessage(message), size);
    ok(m.runUntil(() => h.pendingSendBytes === 0, 5000));
    const got = recvmsg(g, fd, 300000);
    assert.equal(got.r, size, `size ${size}`);
    assert.deepEqual(got.bytes, message);
    assert.equal(got.msgFlags, 0);
  }
  noViolations(m);
});

test("guest to host: each send is one message, split into packets of at most 64 KiB with EOM on the last", async () => {
  const { m, g, h, fd } = await seqAccepted();
  const from = m.device!.sentByGuest.length;
  for (const [i, size] of SIZES.entries()) {
    assert.equal(g.send(fd, pattern(size, i + 10)), size, `send ${size}`);
  }
  ok(m.runUntil(() => h.messages.length === SIZES.length, 20000));
  assert.deepEqual(h.messages.map((x) => x.bytes.length), SIZES);
  h.messages.forEach((x, i) => assert.deepEqual(x.bytes, pattern(SIZES[i], i + 10)));
  const packets = guestMessages(m, 9000, from);
  assert.deepEqual(packets.map((p) => p.reduce((a, b) => a + b, 0)), SIZES);
  ok(packets[5].length >= 4, "256 KiB goes as at least four packets");
  noViolations(m);
});

test("the SEQPACKET echo (1238) returns every size as one message, unchanged, EOR kept", async () => {
  const { m } = await guest();
  const h = m.host.connect(SEQPACKET_ECHO_PORT, 9200, SEQ);
  ok(m.runUntil(() => h.state === "connected", 100));
  for (const [i, size] of SIZES.entries()) h.sendMessage(pattern(size, i + 20), i === 2);
  ok(m.runUntil(() => h.messages.length === SIZES.length, 50000), `${h.messages.length} messages back`);
  assert.deepEqual(h.messages.map((x) => x.bytes.length), SIZES);
  h.messages.forEach((x, i) => {
    assert.deepEqual(x.bytes, pattern(SIZES[i], i + 20), `message ${i}`);
    assert.equal(x.eor, i === 2, `EOR of message ${i}`);
  });
  h.close();
  ok(m.runUntil(() => connCount(m) === 0, 1000));
  noViolations(m);
});

test("truncation: a short buffer gets the start, MSG_TRUNC says so, the rest is gone; MSG_PEEK|MSG_TRUNC measures", async () => {
  const { m, g, h, fd } = await seqAccepted();
  h.sendMessage(pattern(100, 1));
  h.sendMessage("next", true);
  ok(m.runUntil(() => h.pendingSendBytes === 0, 100));
  m.poll(2);
  assert.equal(g.x.vs_recv(fd, g.m.scratch(1), 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT), 100, "length of the next message");
  const peeked = recvmsg(g, fd, 10, MSG_PEEK);
  assert.equal(peeked.r, 10);
  assert.equal(peeked.msgFlags, MSG_TRUNC);
  const cut = recvmsg(g, fd, 10);
  assert.equal(cut.r, 10);
  assert.deepEqual(cut.bytes, pattern(100, 1).subarray(0, 10));
  assert.equal(cut.msgFlags, MSG_TRUNC);
  const next = recvmsg(g, fd, 100, MSG_TRUNC);
  assert.equal(next.r, 4);
  assert.equal(text(next.bytes), "next");
  assert.equal(next.msgFlags, MSG_EOR, "EOR reported, no truncation");
  // recv with MSG_TRUNC returns the real length (Linux recv(2)).
  h.sendMessage(pattern(5000, 2));
  ok(m.runUntil(() => h.pendingSendBytes === 0, 100));
  m.poll(2);
  assert.equal(g.x.vs_recv(fd, g.m.scratch(16), 16, MSG_TRUNC), 5000);
  // The whole 5000 bytes count as consumed: the credit the host sees is back in full.
  m.poll(3);
  assert.equal(g.recv(fd, 16, MSG_DONTWAIT), -EAGAIN);
  noViolations(m);
});

test("many messages in flight under credit pressure keep their boundaries both ways", async () => {
  const { m, g, h, fd } = await seqAccepted(7000, { hostBufAlloc: 8192 });
  assert.equal(g.setsockopt(fd, SO_VM_SOCKETS_BUFFER_SIZE, 8192n), 0);
  m.poll(3);
  const sizes = Array.from({ length: 400 }, (_, i) => 1 + ((i * 2654435761) >>> 0) % 3000);
  // Host to guest: the host may have at most 8 KiB in flight; the guest reads one message per round.
  sizes.forEach((n, i) => assert.equal(h.sendMessage(pattern(n, i)), n));
  const got: Uint8Array[] = [];
  for (let round = 0; round < 100000 && got.length < sizes.length; round++) {
    const r = g.recv(fd, 4000, MSG_DONTWAIT);
    if (typeof r === "number") {
      assert.equal(r, -EAGAIN);
      m.poll();
    } else got.push(r);
  }
  assert.equal(got.length, sizes.length);
  got.forEach((x, i) => assert.deepEqual(x, pattern(sizes[i], i), `message ${i}`));
  // Guest to host: the host stops reading, the guest queues until its sends would block.
  h.pauseReading(true);
  let queued = 0;
  while (queued < sizes.length) {
    const r = g.send(fd, pattern(sizes[queued], queued + 1000), MSG_DONTWAIT);
    if (r === -EAGAIN) break;
    assert.equal(r, sizes[queued]);
    queued++;
    m.poll();
  }
  ok(queued < sizes.length, "the guest ran out of room while the host did not read");
  h.pauseReading(false);
  while (queued < sizes.length) {
    const r = g.send(fd, pattern(sizes[queued], queued + 1000), MSG_DONTWAIT);
    if (r === -EAGAIN) m.poll();
    else {
      assert.equal(r, sizes[queued]);
      queued++;
    }
  }
  ok(m.runUntil(() => h.messages.length === sizes.length, 100000));
  h.messages.forEach((x, i) => assert.deepEqual(x.bytes, pattern(sizes[i], i + 1000), `message ${i}`));
  noViolations(m);
});

test("a message larger than the send buffer: a non-blocking send takes part, the rest must follow exactly", async () => {
  const { m, g, h, fd } = await seqAccepted();
  g.settimeout(fd, 0n);
  h.pauseReading(true);
  const message = pattern(200000, 3);
  const first = g.send(fd, message);
  ok(first > 0 && first < message.length, `partial: ${first}`);
  assert.equal(g.send(fd, message.subarray(first, first + 10)), -EINVAL, "only the exact rest continues it");
  h.pauseReading(false);
  let at = first;
  for (let round = 0; round < 10000 && at < message.length; round++) {
    const r = g.send(fd, message.subarray(at));
    if (r === -EAGAIN) m.poll();
    else {
      ok(r > 0, `send: ${r}`);
      at += r;
    }
  }
  assert.equal(at, message.length);
  ok(m.runUntil(() => h.messages.length === 1, 10000));
  assert.deepEqual(h.messages[0].bytes, message);
  assert.equal(g.send(fd, pattern(262145, 1)), -EMSGSIZE, "larger than the peer's buffer");
  assert.equal(g.send(fd, new Uint8Array(0)), 0, "an empty message sends nothing");
  noViolations(m);
});

test("send with MSG_EOR marks the message's EOM packet with EOR", async () => {
  const { m, g, h, fd } = await seqAccepted();
  const from = m.device!.sentByGuest.length;
  assert.equal(g.send(fd, pattern(70000, 1), MSG_EOR), 70000);
  ok(m.runUntil(() => h.messages.length === 1, 1000));
  assert.equal(h.messages[0].eor, true);
  const flags = sent(m, OP_RW, from).map((p) => p.header.flags);
  assert.deepEqual(flags, [0, VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR]);
});

test("type mismatch: a STREAM peer on a SEQPACKET listener (and the reverse) is refused with RST", async () => {
  const { m, g } = await guest();
  const lfd = g.x.vs_socket(SOCK_SEQPACKET);
  assert.equal(g.bind(lfd, 7100), 0);
  assert.equal(g.listen(lfd, 4), 0);
  const stream = m.host.connect(7100, 9300);
  const seq = m.host.connect(ECHO_PORT, 9301, SEQ);
  ok(m.runUntil(() => stream.state !== "connecting" && seq.state !== "connecting", 100));
  assert.equal(stream.error, "ECONNRESET");
  assert.equal(seq.error, "ECONNRESET");
  assert.equal(rejections(m, "type_mismatch"), 2);
  assert.equal(connCount(m), 0);
  noViolations(m);
});

test("a STREAM packet on an established SEQPACKET connection: RST, that connection ends, the others go on", async () => {
  const { m, g, h, fd } = await seqAccepted();
  const other = m.host.connect(SEQPACKET_ECHO_PORT, 9400, SEQ);
  ok(m.runUntil(() => other.state === "connected", 100));
  m.device!.inject({ type: 1, srcPort: 9000, dstPort: 7000, op: OP_RW }, pattern(10, 1));
  m.poll(3);
  assert.equal(rejections(m, "type_mismatch"), 1);
  assert.equal(h.state, "reset", "the host got the connection's RST");
  assert.equal(recvmsg(g, fd, 10).r, -EPROTO);
  other.sendMessage("unharmed");
  ok(m.runUntil(() => other.messages.length === 1, 1000));
  assert.equal(text(other.messages[0].bytes), "unharmed");
});

test("a message that never ends within the buffer is discarded up to its EOM (EMSGSIZE once); the next one arrives", async () => {
  const { m, g, h, fd } = await seqAccepted();
  // 256 KiB without EOM fills the buffer: the message can never complete. A broken peer then
  // sends the rest with EOM, then a good message.
  const inject = (n: number, flags: number, seed: number) =>
    m.device!.inject({ type: SEQ, srcPort: 9000, dstPort: 7000, op: OP_RW, flags, bufAlloc: 262144, fwdCnt: 0 }, pattern(n, seed));
  for (let i = 0; i < 32; i++) inject(8192, 0, i); // injected packets are not split: rx buffers are 16 KiB
  m.poll(3);
  assert.equal(rejections(m, "message_too_long"), 1);
  inject(5000, VIRTIO_VSOCK_SEQ_EOM, 3);
  inject(300, VIRTIO_VSOCK_SEQ_EOM, 4);
  m.poll(3);
  assert.equal(recvmsg(g, fd, 100000).r, -EMSGSIZE);
  const good = recvmsg(g, fd, 100000);
  assert.equal(good.r, 300);
  assert.deepEqual(good.bytes, pattern(300, 4));
  assert.equal(m.logLines(/warn vsock: rejected: message larger than the receive buffer/).length, 1);
  void h;
});

test("a recv whose buffer is outside memory gets EFAULT and loses that message, as Linux (vsock_test 9, 13)", async () => {
  const { m, g, h, fd } = await seqAccepted();
  h.sendMessage(pattern(100, 1));
  h.sendMessage(pattern(200, 2));
  m.poll(5);
  const outside = m.memory.buffer.byteLength + 4096;
  assert.equal(g.x.vs_recv(fd, outside, 100, MSG_PEEK), -EFAULT_ERRNO, "a peek takes nothing");
  assert.equal(g.x.vs_recv(fd, outside, 100, 0), -EFAULT_ERRNO);
  const next = recvmsg(g, fd, 1000);
  assert.equal(next.r, 200, "the first message went with the failed copy");
  assert.deepEqual(next.bytes, pattern(200, 2));
});

test("a receive buffer's worth of 64-byte messages (4096, all within credit) is taken whole, none lost", async () => {
  const { m, g, h, fd } = await seqAccepted();
  for (let i = 0; i < 4096; i++) h.sendMessage(pattern(64, i));
  // The host respects credit: the whole 256 KiB window is sent once nothing waits any more.
  ok(m.runUntil(() => h.pendingSendBytes === 0 || h.state !== "connected", 5000), "all 4096 sent");
  m.poll(5);
  assert.equal(h.state, "connected");
  assert.equal(rejections(m, "message_queue_full"), 0);
  for (let i = 0; i < 4096; i++) {
    const r = recvmsg(g, fd, 100);
    assert.equal(r.r, 64, `message ${i}`);
    assert.deepEqual(r.bytes, pattern(64, i), `message ${i}`);
  }
});

test("more complete messages than the connection tracks: that connection is reset with ENOBUFS, another is unharmed", async () => {
  const { m, g, h, fd } = await seqAccepted();
  const other = m.host.connect(SEQPACKET_ECHO_PORT, 9500, SEQ);
  ok(m.runUntil(() => other.state === "connected", 100));
  for (let i = 0; i < 4097; i++) h.sendMessage(pattern(1, i));
  ok(m.runUntil(() => h.state === "reset", 5000));
  assert.equal(rejections(m, "message_queue_full"), 1);
  let messages = 0;
  for (;;) {
    const r = recvmsg(g, fd, 10);
    if (r.r !== 1) {
      assert.equal(r.r, -ENOBUFS);
      break;
    }
    messages++;
  }
  assert.equal(messages, 4096, "the messages taken before the overflow are still readable");
  other.sendMessage("unharmed");
  ok(m.runUntil(() => other.messages.length === 1, 1000));
  void ECONNRESET;
});

test("guest to host: a SEQPACKET connect to a SEQPACKET host listener carries messages; to a STREAM one it is reset", async () => {
  const { m, g } = await guest();
  const seqListener = m.host.listen(6100, 4, SEQ);
  m.host.listen(6101, 4);
  const fd = g.x.vs_socket(SOCK_SEQPACKET);
  assert.equal(g.connect(fd, 6100), 0);
  const h = seqListener.accepted[0];
  ok(h && h.seqpacket, "the host accepted a SEQPACKET connection");
  assert.equal(g.send(fd, pattern(70000, 5)), 70000);
  h.sendMessage(pattern(3000, 6), true);
  ok(m.runUntil(() => h.messages.length === 1 && h.pendingSendBytes === 0, 2000));
  assert.deepEqual(h.messages[0].bytes, pattern(70000, 5));
  const back = recvmsg(g, fd, 100000);
  assert.deepEqual(back.bytes, pattern(3000, 6));
  assert.equal(back.msgFlags, MSG_EOR);
  const stream = g.x.vs_socket(SOCK_SEQPACKET);
  assert.equal(g.connect(stream, 6101), -ECONNRESET, "the host's STREAM listener refuses a SEQPACKET REQUEST");
  assert.equal(m.host.typeMismatches, 1);
  noViolations(m);
});
