// Validation at every boundary: each thing the firmware refuses has a named reason with a
// counter, its first occurrence is logged at warn and later ones only at debug, and the right
// answer (nothing, or an RST) goes back. The registry is assembly/diag/rejections.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine } from "../sim/machine";
import { PciFunction, MemoryBackedBar } from "../sim/pci-function";
import { deviceMachine, deviceUp, pattern as devicePattern, rxTake } from "./device-harness";
import { rejectionCounts, rejectionKeys, rejections, warnOnceViolations } from "./rejection-counts";
import {
  EAGAIN,
  ECHO_PORT,
  GUEST_CID,
  MSG_DONTWAIT,
  OP_CREDIT_UPDATE,
  OP_REQUEST,
  OP_RESPONSE,
  OP_RST,
  OP_RW,
  OP_SHUTDOWN,
  SO_VM_SOCKETS_BUFFER_SIZE,
  connCount,
  guest,
  noViolations,
  pattern,
  sent,
  text,
} from "./vsock-helpers";

const RX = 0;

/** The guest-physical buffer address in descriptor `head` of queue `index`. */
function bufferAddress(m: Machine, index: number, head: number): bigint {
  const q = m.device!.queues[index];
  return m.guestMemory.read64(q.descAddr + 16 * head);
}

/** The head now posted (avail, not taken) whose first descriptor points at `address`. */
function postedHeadOf(m: Machine, index: number, address: bigint): number {
  const q = m.device!.queues[index];
  for (let i = 0; i < q.pending(); i++) {
    const head = m.guestMemory.read16(q.availAddr + 4 + 2 * ((q.lastAvailIdx + i) % q.size));
    if (bufferAddress(m, index, head) === address) return head;
  }
  throw new Error(`no posted buffer at 0x${address.toString(16)}`);
}

function resetsTo(m: Awaited<ReturnType<typeof guest>>["m"], hostPort: number, from: number): number {
  return sent(m, OP_RST, from).filter((p) => p.header.dstPort === hostPort).length;
}

test("every reason has a distinct key; the counters line lists the ones seen", async () => {
  const { m } = await guest();
  const keys = rejectionKeys(m);
  assert.ok(keys.length >= 25);
  assert.equal(new Set(keys).size, keys.length);
  for (const key of keys) assert.match(key, /^[a-z_]+$/);
  m.device!.inject({ srcCid: 7, srcPort: 1, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.poll(2);
  m.exports.fw_log_rejections();
  assert.equal(m.logLines(/info vsock: rejections total=1 src_cid=1$/).length, 1, m.logText());
});

test("src_cid other than the host: dropped without a reply, warn once then debug", async () => {
  const { m } = await guest();
  const before = m.device!.sentByGuest.length;
  for (let i = 0; i < 3; i++) m.device!.inject({ srcCid: 7, srcPort: 9000 + i, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.poll(3);
  assert.equal(m.device!.sentByGuest.length, before, "no reply at all");
  assert.equal(rejections(m, "src_cid"), 3);
  assert.equal(m.logLines(/warn vsock: rejected: packet from a cid other than the host op=REQUEST local=1234 peer_cid=7 peer_port=9000 .*count=1$/).length, 1);
  assert.equal(m.logLines(/debug vsock: rejected: packet from a cid other than the host .*count=3$/).length, 1);
  assert.deepEqual(warnOnceViolations(m), []);
  noViolations(m);
});

test("dst_cid other than ours: dropped without a reply, no connection made", async () => {
  const { m } = await guest();
  const before = m.device!.sentByGuest.length;
  m.device!.inject({ dstCid: BigInt(GUEST_CID + 1), srcPort: 9100, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.device!.inject({ dstCid: (1n << 32n) | BigInt(GUEST_CID), srcPort: 9101, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.poll(3);
  assert.equal(m.device!.sentByGuest.length, before);
  assert.equal(connCount(m), 0);
  assert.equal(rejections(m, "dst_cid"), 2);
  assert.equal(m.logLines(/warn vsock: rejected: packet for another cid op=REQUEST .*dst_cid=34 /).length, 1);
  noViolations(m);
});

test("a type other than STREAM or SEQPACKET: RST (never to an RST); SEQPACKET to a STREAM listener: RST", async () => {
  const { m } = await guest();
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ type: 2, srcPort: 9200, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.device!.inject({ type: 7, srcPort: 9201, dstPort: ECHO_PORT, op: OP_RST });
  m.device!.inject({ type: 7, srcPort: 9202, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.poll(3);
  assert.equal(resetsTo(m, 9200, from), 1);
  assert.equal(resetsTo(m, 9201, from), 0);
  assert.equal(resetsTo(m, 9202, from), 1);
  assert.equal(rejections(m, "unknown_type"), 2);
  assert.equal(rejections(m, "type_mismatch"), 1);
  // Each RST carries the type of the packet it answers (Linux drops one of another type); an
  // unknown type is answered as STREAM.
  assert.deepEqual(
    sent(m, OP_RST, from).map((p) => p.header.type),
    [2, 1],
  );
  assert.equal(connCount(m), 0);
  noViolations(m);
});

test("an unknown op: RST without a connection, ignored on a live one (which keeps working)", async () => {
  const { m } = await guest();
  const live = m.host.connect(ECHO_PORT, 9300);
  assert.ok(m.runUntil(() => live.state === "connected", 100));
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ srcPort: 9301, dstPort: 5555, op: 9 });
  m.device!.inject({ srcPort: 9300, dstPort: ECHO_PORT, op: 0, bufAlloc: 0 });
  m.device!.inject({ srcPort: 9300, dstPort: ECHO_PORT, op: 0xffff, bufAlloc: 0 });
  m.poll(3);
  assert.equal(resetsTo(m, 9301, from), 1);
  assert.equal(resetsTo(m, 9300, from), 0);
  assert.equal(rejections(m, "unknown_op"), 3);
  assert.equal(m.logLines(/warn vsock: rejected: unknown op: RST op=UNKNOWN op_code=9 /).length, 1);
  live.send("still here");
  assert.ok(m.runUntil(() => live.received.length === 10, 200), "the bogus buf_alloc 0 was not taken");
  assert.equal(text(live.received), "still here");
  noViolations(m);
});

test("RW and SHUTDOWN for unknown tuples: RST; an RST for one: nothing, not counted", async () => {
  const { m } = await guest();
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ srcPort: 9400, dstPort: 6000, op: OP_RW }, pattern(10));
  m.device!.inject({ srcPort: 9401, dstPort: 6000, op: OP_SHUTDOWN, flags: 3 });
  m.device!.inject({ srcPort: 9402, dstPort: 6000, op: OP_RST });
  m.poll(3);
  assert.equal(resetsTo(m, 9400, from), 1);
  assert.equal(resetsTo(m, 9401, from), 1);
  assert.equal(resetsTo(m, 9402, from), 0);
  assert.equal(rejections(m, "no_socket"), 2);
  noViolations(m);
});

test("a non-REQUEST to a listener from a new tuple: RST", async () => {
  const { m } = await guest();
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ srcPort: 9500, dstPort: ECHO_PORT, op: OP_RW }, pattern(4));
  m.device!.inject({ srcPort: 9501, dstPort: ECHO_PORT, op: OP_RESPONSE });
  m.poll(3);
  assert.equal(resetsTo(m, 9500, from), 1);
  assert.equal(resetsTo(m, 9501, from), 1);
  assert.equal(rejections(m, "not_request_to_listener"), 2);
  assert.equal(connCount(m), 0);
  noViolations(m);
});

test("a REQUEST flood beyond the backlog: the backlog admitted, the rest RST, one warn line", async () => {
  const { m, g } = await guest();
  g.listener(7000, 3);
  const from = m.device!.sentByGuest.length;
  for (let i = 0; i < 10; i++) m.device!.inject({ srcPort: 9600 + i, dstPort: 7000, op: OP_REQUEST });
  m.poll(3);
  assert.equal(sent(m, OP_RESPONSE, from).length, 3);
  assert.equal(sent(m, OP_RST, from).length, 7);
  assert.equal(rejections(m, "backlog_full"), 7);
  assert.equal(m.logLines(/warn vsock: rejected: backlog full: RST/).length, 1);
  assert.equal(m.logLines(/debug vsock: rejected: backlog full: RST .*count=7$/).length, 1);
  assert.deepEqual(warnOnceViolations(m), []);
});

test("a REQUEST flood beyond the connection table: RST once it is full", async () => {
  const { m, g } = await guest();
  g.listener(7001, 40); // two listeners: the table (64) fills before either backlog does
  g.listener(7002, 40);
  const hosts = [];
  for (let i = 0; i < 70; i++) hosts.push(m.host.connect(7001 + (i % 2), 10000 + i));
  m.poll(5);
  assert.equal(connCount(m), 64);
  assert.equal(hosts.filter((h) => h.state === "connected").length, 64);
  assert.equal(hosts.filter((h) => h.state === "reset").length, 6);
  assert.equal(rejections(m, "connection_table_full"), 6);
});

test("REQUEST or RESPONSE on an established connection: ignored and counted", async () => {
  const { m } = await guest();
  const live = m.host.connect(ECHO_PORT, 9700);
  assert.ok(m.runUntil(() => live.state === "connected", 100));
  const from = m.device!.sentByGuest.length;
  m.device!.inject({ srcPort: 9700, dstPort: ECHO_PORT, op: OP_REQUEST });
  m.device!.inject({ srcPort: 9700, dstPort: ECHO_PORT, op: OP_RESPONSE });
  m.poll(3);
  assert.equal(resetsTo(m, 9700, from), 0);
  assert.equal(rejections(m, "unexpected_op"), 2);
  live.send("ok");
  assert.ok(m.runUntil(() => live.received.length === 2, 200));
  noViolations(m);
});

test("RW beyond the credit we granted: dropped and counted; data within it intact", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(7100);
  assert.equal(g.setsockopt(lfd, SO_VM_SOCKETS_BUFFER_SIZE, 1024n), 0);
  const h = m.host.connect(7100, 9800);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  assert.ok(fd >= 0);
  m.device!.inject({ srcPort: 9800, dstPort: 7100, op: OP_RW }, pattern(1000, 1));
  m.device!.inject({ srcPort: 9800, dstPort: 7100, op: OP_RW }, pattern(100, 2)); // 1100 > 1024
  m.device!.inject({ srcPort: 9800, dstPort: 7100, op: OP_RW }, pattern(24, 3)); // exactly fills it
  m.poll(2);
  assert.equal(rejections(m, "rw_beyond_credit"), 1);
  const got = g.recv(fd, 4096) as Uint8Array;
  assert.deepEqual(got, Uint8Array.from([...pattern(1000, 1), ...pattern(24, 3)]));
});

test("a peer fwd_cnt ahead of what we sent: counted, no data sent on it", async () => {
  const { m, g } = await guest();
  const lfd = g.listener(7200);
  const h = m.host.connect(7200, 9900);
  assert.ok(m.runUntil(() => h.state === "connected", 100));
  const fd = g.accept(lfd).fd;
  // A byte waits in the send buffer behind an honestly closed window, then the lie comes.
  m.device!.inject({ srcPort: 9900, dstPort: 7200, op: OP_CREDIT_UPDATE, bufAlloc: 0, fwdCnt: 0 });
  m.poll(2);
  const before = sent(m, OP_RW).length;
  assert.equal(g.send(fd, "x"), 1);
  m.device!.inject({ srcPort: 9900, dstPort: 7200, op: OP_CREDIT_UPDATE, bufAlloc: 4096, fwdCnt: 5000 });
  m.poll(2);
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 1);
  // The lie's "in flight" (near 4 GiB) is beyond our buffer size: the socket takes nothing more.
  assert.equal(g.send(fd, "y", MSG_DONTWAIT), -EAGAIN);
  m.poll(3);
  assert.equal(sent(m, OP_RW).length, before);
  // An honest header reopens the window.
  m.device!.inject({ srcPort: 9900, dstPort: 7200, op: OP_CREDIT_UPDATE, bufAlloc: 262144, fwdCnt: 0 });
  assert.ok(m.runUntil(() => h.received.length === 1, 100));
  assert.equal(rejections(m, "credit_fwd_cnt_ahead"), 1);
});

test("config_generation moving under a read: each unstable read counted, warn once", async () => {
  const m = await deviceMachine();
  const device = m.device!;
  let reads = 0;
  m.vsockFunction!.beforeDeviceConfigRead = (offset) => {
    if (offset === 4 && reads++ < 2) device.bumpConfigGeneration();
  };
  assert.equal(m.exports.fw_device_init(), 1);
  assert.equal(rejections(m, "config_unstable"), 2);
  assert.equal(m.logLines(/warn vsock-dev: rejected: guest_cid read while config_generation moved/).length, 1);
  assert.deepEqual(warnOnceViolations(m), []);
});

test("a queue notify offset past the notify structure: counted, device FAILED", async () => {
  const m = await deviceMachine();
  const notifyCap = 0x70;
  assert.equal(m.vsockFunction!.config[notifyCap + 3], 2, "the sim's notify capability");
  m.vsockFunction!.set32(notifyCap + 12, 2); // room for queue 0's doorbell only
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(rejections(m, "notify_outside_cap"), 1);
  assert.equal(m.logLines(/warn virtio: rejected: queue notify address outside the notify structure queue=1 offset=0x4 length=0x2 count=1/).length, 1);
});

test("capabilities and BARs outside their windows: counted", async () => {
  const m = await deviceMachine({
    extraFunctions: (bus) => {
      const huge = bus.add(new PciFunction(0, 5, 0, { vendorId: 0x1234, deviceId: 0x0001, classCode: 0x030000 }));
      huge.addBar({ index: 0, kind: "mem32", size: 0x80000000, handler: new MemoryBackedBar(16) });
      const huge2 = bus.add(new PciFunction(0, 6, 0, { vendorId: 0x1234, deviceId: 0x0002, classCode: 0x030000 }));
      huge2.addBar({ index: 0, kind: "mem32", size: 0x80000000, handler: new MemoryBackedBar(16) });
    },
  });
  m.vsockFunction!.config[0x40 + 4] = 7; // COMMON in BAR 7
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(rejections(m, "bar_unassignable"), 2);
  assert.equal(rejections(m, "capability_invalid"), 1);
  assert.equal(m.logLines(/warn pci: 00:05\.0 bar=0 mem32 does not fit/).length, 1);
  assert.equal(m.logLines(/debug pci: 00:06\.0 bar=0 mem32 does not fit/).length, 1);
  assert.deepEqual(warnOnceViolations(m), []);
});

test("used-ring and device-layer rejections land in the same registry", async () => {
  const m = await deviceUp();
  m.device!.injectUsed(RX, 500, 60);
  m.device!.inject({ srcPort: 1 }, pattern(8), { usedLength: 20 });
  m.device!.inject({ srcPort: 2, len: 10 }, pattern(5));
  while (m.exports.fw_device_rx_next()) m.exports.fw_device_rx_release();
  const counts = rejectionCounts(m);
  assert.equal(counts.used_bad_id, 1);
  assert.equal(counts.rx_short, 1);
  assert.equal(counts.rx_len_mismatch, 1);
  assert.deepEqual(warnOnceViolations(m), []);
});

test("boot posts the rx pool without writing it; a forged completion of a never-used buffer is refused", async () => {
  const { m } = await guest();
  const q = m.device!.queues[RX];
  // Every rx buffer still posted at boot: its header bytes as memory.grow gave them (zero). The
  // firmware writes none of them (each would be a nested page fault at boot).
  const heads: number[] = [];
  for (let i = 0; i < q.pending(); i++) heads.push(m.guestMemory.read16(q.availAddr + 4 + 2 * ((q.lastAvailIdx + i) % q.size)));
  assert.ok(heads.length >= 32, `only ${heads.length} rx buffers posted`);
  for (const head of heads) {
    const header = m.guestMemory.readBytes(Number(bufferAddress(m, RX, head)), 44);
    assert.ok(header.every((b) => b === 0), `rx buffer ${head} written at boot`);
  }
  const before = rejectionCounts(m);
  const connectionsBefore = connCount(m);
  m.device!.injectUsed(RX, heads[heads.length - 1], 44 + 8); // "done", nothing written
  m.poll(3);
  const after = rejectionCounts(m);
  // Its zero header names no source: the stack refuses it as from a wrong CID (the used length
  // past the header's len of 0 is counted as tolerated extra bytes, as for any packet).
  assert.equal(after.src_cid - before.src_cid, 1, `the zero packet was not refused: ${JSON.stringify(after)}`);
  assert.equal(connCount(m), connectionsBefore);
  noViolations(m);
});

test("a forged completion of a reposted rx buffer is rejected, not a replay of its last packet", async () => {
  const m = await deviceUp();
  let head = -1;
  m.device!.corruptNextUsed(RX, (entry) => {
    head = entry.id;
    return [entry];
  });
  m.device!.inject({ srcPort: 77 }, devicePattern(8));
  const first = rxTake(m);
  assert.equal(first?.header.srcPort, 77);
  // Used buffers go back in batches of half the pool: fill the batch so this one is posted again
  // (under a head of its own).
  const buffer = bufferAddress(m, RX, head);
  for (let i = 1; i < 32; i++) {
    m.device!.inject({ srcPort: 100 + i }, devicePattern(1));
    assert.ok(rxTake(m), `filler packet ${i}`);
  }
  assert.equal(rxTake(m), null);
  head = postedHeadOf(m, RX, buffer);
  m.device!.injectUsed(RX, head, 44 + 8); // "done" again, without writing anything
  assert.equal(rxTake(m), null, "the old packet must not come back");
  assert.equal(rejections(m, "rx_len_mismatch") + rejections(m, "rx_short"), 1);
});
