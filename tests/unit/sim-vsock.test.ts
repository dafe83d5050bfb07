// The vhost-like vsock device and the Linux-like host, driven by the tiny TS driver.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRig, RigOptions } from "../sim/test-driver";
import { HostSocket, SHUT_WR } from "../../tools/vsock-model/host";
import {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST as CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE as CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST as REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE as RESPONSE,
  VIRTIO_VSOCK_OP_RST as RST,
  VIRTIO_VSOCK_OP_RW as RW,
  VIRTIO_VSOCK_OP_SHUTDOWN as SHUTDOWN,
  VsockPacket,
} from "../../tools/vsock-model/vsock-packet";

const GUEST_PORT = 5000;
const GUEST_BUF = 262144;

function started(options: RigOptions = {}, start: Parameters<ReturnType<typeof createRig>["driver"]["start"]>[0] = {}) {
  const r = createRig({ guestCid: 33, ...options });
  r.driver.start(start);
  return r;
}

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

type Rig = ReturnType<typeof started>;

/** Guest connects to host `port` (listener must exist); returns the accepted host socket. */
function guestConnect(r: Rig, port: number, guestPort = GUEST_PORT, bufAlloc = GUEST_BUF): HostSocket {
  const listener = r.host.listen(port);
  r.driver.send({ op: REQUEST, srcPort: guestPort, dstPort: port, bufAlloc });
  const [response] = r.driver.receive();
  assert.equal(response.header.op, RESPONSE);
  const socket = listener.accept();
  assert.ok(socket);
  return socket;
}

/** Drains rx until the host has nothing more to send (reposting buffers each round). */
function drain(r: Rig, rounds = 1000): VsockPacket[] {
  const all: VsockPacket[] = [];
  for (let i = 0; i < rounds; i++) {
    const got = r.driver.receive();
    if (got.length === 0) break;
    all.push(...got);
  }
  return all;
}

test("REQUEST to a listener gets RESPONSE with the tuple reversed and the host's credit", () => {
  const r = started({ hostBufAlloc: 131072 });
  const listener = r.host.listen(4000);
  r.driver.send({ op: REQUEST, srcPort: 1025, dstPort: 4000, bufAlloc: 65536 });
  const [p] = r.driver.receive();
  assert.deepEqual(
    [p.header.op, p.header.srcCid, p.header.dstCid, p.header.srcPort, p.header.dstPort, p.header.type, p.header.bufAlloc, p.header.fwdCnt, p.header.len],
    [RESPONSE, 2n, 33n, 4000, 1025, 1, 131072, 0, 0],
  );
  const socket = listener.accept()!;
  assert.equal(socket.state, "connected");
  assert.equal(socket.peerBufAlloc, 65536);
  assert.equal(listener.accept(), null);
  assert.deepEqual(r.device.violations, []);
});

test("REQUEST to a port without a listener gets RST; RST is never answered; unknown tuples get RST", () => {
  const r = started();
  r.driver.send({ op: REQUEST, srcPort: 1026, dstPort: 4001 });
  r.driver.send({ op: RST, srcPort: 1026, dstPort: 4001 });
  r.driver.send({ op: RW, srcPort: 1027, dstPort: 4001 }, bytes(5));
  const got = r.driver.receive();
  assert.deepEqual(got.map((p) => [p.header.op, p.header.dstPort]), [[RST, 1026], [RST, 1027]]);
  assert.equal(r.host.resetsToUnknown, 2);
});

test("a non-REQUEST packet aimed at a listener gets RST, not a connection", () => {
  const r = started();
  const listener = r.host.listen(4002);
  r.driver.send({ op: RW, srcPort: 1028, dstPort: 4002 }, bytes(3));
  assert.deepEqual(r.driver.receive().map((p) => p.header.op), [RST]);
  assert.equal(listener.accept(), null);
});

test("guest RW reaches the host app; host send reaches the guest with credit fields", () => {
  const r = started();
  const socket = guestConnect(r, 4003);
  const seen: number[] = [];
  socket.onData((b) => seen.push(b.length));
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4003, bufAlloc: GUEST_BUF }, new TextEncoder().encode("hello"));
  assert.equal(new TextDecoder().decode(socket.take()), "hello");
  assert.deepEqual(seen, [5]);
  assert.equal(socket.fwdCnt, 5);
  assert.equal(socket.send("world"), 5);
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, p.header.len, p.header.fwdCnt, p.header.srcPort], [RW, 5, 5, 4003]);
  assert.equal(new TextDecoder().decode(p.payload), "world");
  assert.equal(socket.txCnt, 5);
  assert.deepEqual(r.device.violations, []);
});

for (const rxSplit of [false, true]) {
  test(`a 300 KiB host write is cut into <= 64 KiB packets and split across 4 KiB rx buffers (${rxSplit ? "header+data" : "one descriptor"})`, () => {
    const r = started({}, { rxCount: 8, rxBytes: 4096, rxSplit });
    const socket = guestConnect(r, 4004, GUEST_PORT, 1 << 20);
    const data = bytes(300 * 1024, 7);
    assert.equal(socket.send(data), data.length);
    const got = drain(r);
    assert.ok(got.length >= 75, `${got.length} packets`);
    for (const p of got) {
      assert.equal(p.header.op, RW);
      assert.equal(p.header.len, p.payload.length);
      assert.ok(p.header.len <= 4096);
    }
    const joined = new Uint8Array(got.reduce((n, p) => n + p.payload.length, 0));
    let at = 0;
    for (const p of got) joined.set(p.payload, (at += p.payload.length) - p.payload.length);
    assert.deepEqual(joined, data);
    assert.equal(socket.txCnt, data.length);
    assert.deepEqual(r.device.violations, []);
  });
}

test("the host sends RW only within the guest's credit and resumes on CREDIT_UPDATE", () => {
  const r = started({}, { rxCount: 16, rxBytes: 65536 });
  const socket = guestConnect(r, 4005, GUEST_PORT, 10000);
  socket.send(bytes(25000));
  let got = drain(r);
  assert.equal(got.reduce((n, p) => n + p.payload.length, 0), 10000);
  assert.equal(socket.peerCredit(), 0);
  assert.equal(socket.pendingSendBytes, 15000);
  r.driver.send({ op: CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: 4005, bufAlloc: 10000, fwdCnt: 6000 });
  got = drain(r);
  assert.equal(got.reduce((n, p) => n + p.payload.length, 0), 6000);
  r.driver.send({ op: CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: 4005, bufAlloc: 100000, fwdCnt: 16000 });
  got = drain(r);
  assert.equal(got.reduce((n, p) => n + p.payload.length, 0), 9000);
  assert.equal(socket.pendingSendBytes, 0);
  assert.ok(r.device.deliveredToGuest.every((p) => p.header.op !== CREDIT_REQUEST), "Linux never asks for credit");
});

test("the host sends CREDIT_UPDATE once its app's reads leave the guest less than 64 KiB", () => {
  const r = started({ hostBufAlloc: 131072 });
  const socket = guestConnect(r, 4006);
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4006 }, bytes(60000));
  assert.deepEqual(r.driver.receive(), [], "free space 71072 >= 64 KiB: no update yet");
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4006 }, bytes(10000));
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, p.header.fwdCnt, p.header.bufAlloc], [CREDIT_UPDATE, 70000, 131072]);
  assert.equal(socket.creditUpdatesSent, 1);
  assert.equal(socket.received.length, 70000);
});

test("Linux >= 6.8 option: the host also sends CREDIT_UPDATE whenever a read empties its queue", () => {
  const r = started({ hostBufAlloc: 131072, hostCreditUpdateOnDrain: true });
  guestConnect(r, 4016);
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4016 }, bytes(1000));
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, p.header.fwdCnt], [CREDIT_UPDATE, 1000]);
});

test("a paused host app: no credit updates, RW beyond its buffer is dropped and recorded, resume reads all", () => {
  const r = started({ hostBufAlloc: 16384 });
  const socket = guestConnect(r, 4007);
  socket.pauseReading(true);
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4007 }, bytes(16000));
  assert.equal(socket.unreadBytes, 16000);
  assert.equal(socket.received.length, 0);
  r.driver.send({ op: RW, srcPort: GUEST_PORT, dstPort: 4007 }, bytes(1000));
  assert.equal(r.device.violations.length, 1);
  assert.match(r.device.violations[0], /beyond host credit/);
  assert.deepEqual(r.driver.receive(), []);
  socket.pauseReading(false);
  assert.equal(socket.received.length, 16000);
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, p.header.fwdCnt], [CREDIT_UPDATE, 16000]);
});

test("CREDIT_REQUEST is answered with CREDIT_UPDATE", () => {
  const r = started();
  guestConnect(r, 4008);
  r.driver.send({ op: CREDIT_REQUEST, srcPort: GUEST_PORT, dstPort: 4008 });
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, p.header.dstPort, p.header.bufAlloc], [CREDIT_UPDATE, GUEST_PORT, 262144]);
});

test("vhost's tx checks: wrong src_cid, dst_cid != 2, payload > 64 KiB, short chain are dropped and recorded", () => {
  const r = started();
  const listener = r.host.listen(4009);
  r.driver.send({ op: REQUEST, srcCid: 34, srcPort: 1, dstPort: 4009 });
  r.driver.send({ op: REQUEST, dstCid: 3, srcPort: 2, dstPort: 4009 });
  r.driver.send({ op: RW, srcPort: 3, dstPort: 4009, len: 65537 }, bytes(16));
  r.driver.send({ op: RW, srcPort: 4, dstPort: 4009, len: 100 }, bytes(16));
  const v = r.device.violations;
  assert.equal(v.length, 4, v.join("\n"));
  assert.match(v[0], /src_cid/);
  assert.match(v[1], /dst_cid/);
  assert.match(v[2], /64 KiB/);
  assert.match(v[3], /chain has 16 payload bytes/);
  assert.equal(listener.accept(), null);
  assert.deepEqual(r.driver.receive(), [], "silently dropped: no RST");
  assert.equal(r.device.sentByGuest.length, 4);
  assert.equal(r.device.queues[1].inFlight.size, 2, "like vhost, chains it cannot parse are never returned");
});

test("a tx chain with device-writable descriptors is not returned and stops that kick", () => {
  const r = started();
  const tx = r.driver.queues[1];
  tx.add([{ addr: r.driver.alloc(44), len: 44, writable: true }]);
  r.driver.send({ op: REQUEST, srcPort: 5, dstPort: 6 });
  assert.match(r.device.violations[0], /device-writable/);
  assert.equal(r.device.sentByGuest.length, 0, "the packet behind it waits for the next notify");
  r.driver.notify(1);
  assert.equal(r.device.sentByGuest.length, 1);
  assert.equal(r.driver.receive()[0].header.op, RST);
});

test("host connect: RESPONSE connects; a guest RST then resets; no answer times out after 2 s", () => {
  const r = started();
  const socket = r.host.connect(1234);
  const [req] = r.driver.receive();
  assert.deepEqual([req.header.op, req.header.dstPort, req.header.srcPort, req.header.srcCid], [REQUEST, 1234, 49152, 2n]);
  assert.equal(socket.state, "connecting");
  r.driver.send({ op: RESPONSE, srcPort: 1234, dstPort: 49152 });
  assert.equal(socket.state, "connected");
  r.driver.send({ op: RST, srcPort: 1234, dstPort: 49152 });
  assert.deepEqual([socket.state, socket.error, socket.eof], ["reset", "ECONNRESET", true]);
  const refused = r.host.connect(1235);
  r.driver.receive();
  r.driver.send({ op: RST, srcPort: 1235, dstPort: refused.localPort });
  assert.deepEqual([refused.state, refused.error], ["reset", "ECONNRESET"]);
  const silent = r.host.connect(1236);
  r.advance(1_999_000_000n);
  assert.equal(silent.state, "connecting");
  r.advance(2_000_000n);
  assert.deepEqual([silent.state, silent.error], ["closed", "ETIMEDOUT"]);
});

test("guest SHUTDOWN(SEND) gives EOF; SHUTDOWN(both) with nothing unread is answered by RST", () => {
  const r = started();
  const socket = guestConnect(r, 4010);
  r.driver.send({ op: SHUTDOWN, srcPort: GUEST_PORT, dstPort: 4010, flags: 2 });
  assert.deepEqual([socket.eof, socket.state], [true, "connected"]);
  assert.equal(socket.send("still open the other way"), 24);
  r.driver.send({ op: SHUTDOWN, srcPort: GUEST_PORT, dstPort: 4010, flags: 3 });
  const got = r.driver.receive();
  assert.deepEqual(got.map((p) => p.header.op), [RW, RST]);
  assert.equal(socket.state, "closed");
  assert.equal(r.host.sockets().length, 0, "tuple freed");
});

test("host close: SHUTDOWN(both) after queued data, tuple freed by the guest's RST or RST after 8 s", () => {
  const r = started();
  const a = guestConnect(r, 4011, 6000);
  a.send("bye");
  a.close();
  assert.deepEqual(r.driver.receive().map((p) => [p.header.op, p.header.flags]), [[RW, 0], [SHUTDOWN, 3]]);
  assert.equal(a.state, "closed");
  assert.equal(r.host.sockets().length, 1, "lingering");
  r.driver.send({ op: RST, srcPort: 6000, dstPort: 4011 });
  assert.equal(r.host.sockets().length, 0);
  const b = guestConnect(r, 4012, 6001);
  b.close();
  r.driver.receive();
  r.advance(8_000_000_000n);
  assert.deepEqual(r.driver.receive().map((p) => p.header.op), [RST]);
  assert.equal(r.host.sockets().length, 0);
});

test("host shutdown(SHUT_WR) goes out after the data still waiting for credit", () => {
  const r = started({}, { rxCount: 16, rxBytes: 8192 });
  const socket = guestConnect(r, 4013, GUEST_PORT, 4000);
  socket.send(bytes(6000));
  socket.shutdown(SHUT_WR);
  assert.deepEqual(drain(r).map((p) => [p.header.op, p.header.len]), [[RW, 4000]]);
  r.driver.send({ op: CREDIT_UPDATE, srcPort: GUEST_PORT, dstPort: 4013, bufAlloc: 4000, fwdCnt: 4000 });
  assert.deepEqual(drain(r).map((p) => [p.header.op, p.header.len, p.header.flags]), [[RW, 2000, 0], [SHUTDOWN, 0, 2]]);
  assert.ok(socket.send("x") < 0, "EPIPE after SHUT_WR");
});

test("TRANSPORT_RESET: event id 0 in a posted buffer, host connections reset, listeners kept; missed without buffers", () => {
  const r = started();
  const socket = guestConnect(r, 4014);
  assert.equal(r.device.transportReset(34), true);
  const [event] = r.driver.queues[2].takeUsed();
  assert.equal(event.len, 4);
  assert.deepEqual([socket.state, socket.error], ["reset", "ECONNRESET"]);
  assert.equal(r.device.guestCid, 34n);
  r.driver.guestCid = 34n;
  r.driver.send({ op: REQUEST, srcPort: 7000, dstPort: 4014 });
  assert.equal(r.driver.receive()[0].header.op, RESPONSE, "listener survived, new cid accepted");
  for (let i = 0; i < 3; i++) assert.equal(r.device.transportReset(), true);
  assert.equal(r.device.transportReset(), false, "4 event buffers were posted");
  assert.match(r.device.violations.at(-1)!, /missed/);
});

test("tx stops while rx replies cannot be delivered and restarts when rx buffers come", () => {
  const r = started({}, { size: 16, rxCount: 0 });
  for (let i = 0; i < 17; i++) r.driver.send({ op: REQUEST, srcPort: 100 + i, dstPort: 9 });
  assert.equal(r.device.queuedReplies, 16);
  assert.equal(r.device.txStalled, true);
  assert.equal(r.device.sentByGuest.length, 16, "the 17th packet waits in the avail ring");
  for (let i = 0; i < 16; i++) r.driver.postRx(4096, false);
  r.driver.notify(0);
  assert.equal(r.device.sentByGuest.length, 17);
  const got = drain(r);
  assert.equal(got.length, 17, "16 delivered, then the 17th reply after reposting");
  assert.ok(got.every((p) => p.header.op === RST));
});

test("rx buffers the device cannot use are recorded", () => {
  const r = started({}, { rxCount: 0 });
  r.driver.queues[0].add([{ addr: r.driver.alloc(32), len: 32, writable: true }]);
  r.driver.notify(0);
  r.host.connect(1);
  assert.match(r.device.violations.join("\n"), /smaller than a header/);
});

test("hostile seams: injected raw headers go out unchanged; a corrupted used entry", () => {
  const r = started();
  r.device.inject({ op: RW, srcPort: 9, dstPort: 10, len: 1000, srcCid: 77 }, bytes(10));
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.len, p.header.srcCid, p.payload.length], [1000, 77n, 10]);
  r.device.inject({ op: RST, dstPort: 11 }, new Uint8Array(0), { usedLength: 3 });
  assert.equal(r.driver.queues[0].takeUsed()[0].len, 3);
  r.device.corruptNextUsed(0, (e) => [{ id: 200, len: e.len }]);
  r.device.inject({ op: RST, dstPort: 12 });
  assert.deepEqual(r.driver.queues[0].takeUsed().map((e) => e.id), [200]);
});

test("a broken tx chain stops the queue like vhost's vq_err", () => {
  const r = started();
  const q = r.driver.queues[1];
  r.ram.fill(0xff, q.avail - 0x1000000 + 4, q.avail - 0x1000000 + 6); // avail slot 0: head 0xffff
  r.ram[q.avail - 0x1000000 + 2] = 1;
  q.availIdx = 1;
  r.driver.notify(1);
  assert.match(r.device.brokenQueues.get(1)!, /head 65535/);
  assert.match(r.device.violations[0], /^ring:/);
});

test("device reset stops the rings but, as with vhost, host sockets and queued packets survive", () => {
  const r = started();
  const socket = guestConnect(r, 4015);
  r.driver.setStatus(0);
  assert.equal(r.device.started, false);
  socket.send("after reset");
  assert.equal(r.device.pendingToGuest, 1);
  r.driver.rxBuffers.clear();
  r.driver.start();
  const [p] = r.driver.receive();
  assert.deepEqual([p.header.op, new TextDecoder().decode(p.payload)], [RW, "after reset"]);
  assert.equal(socket.state, "connected");
  r.driver.send({ op: RST, srcPort: GUEST_PORT, dstPort: 4015 });
  assert.equal(socket.state, "reset", "the rebooted guest's RST ends it");
});
