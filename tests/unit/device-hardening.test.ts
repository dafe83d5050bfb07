// A hostile device against the device layer (issue 19): a stale duplicate tx completion after its
// head was freed, a used idx ahead of the entries written, an rx used length longer than the
// header's len, a reserved guest_cid, and event completions the device never wrote.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine } from "../sim/machine";
import {
  counter,
  COUNTER_RX_USED_EXTRA_BYTES,
  COUNTER_TRANSPORT_RESETS,
  deviceMachine,
  deviceUp,
  pattern,
  rxTake,
  writeTxPacket,
} from "./device-harness";
import { rejections } from "./rejection-counts";
import { Guest, guest, POLLOUT } from "./vsock-helpers";

const TX = 1;
const EVENT = 2;
const STATUS_DRIVER_OK = 4;
const STATUS_FAILED = 128;

/** Acquires a tx buffer and submits a packet from `srcPort` (not flushed: the device has not seen it). */
function submit(m: Machine, srcPort: number, payload = pattern(16, srcPort)): void {
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  assert.notEqual(buffer, 0);
  writeTxPacket(m, buffer, { srcPort, len: payload.length }, payload);
  m.exports.fw_device_tx_submit(buffer, payload.length);
}

test("a stale duplicate tx completion after its head was freed is refused, not taken for the next packet", async () => {
  const m = await deviceUp();
  let head = -1;
  m.device!.corruptNextUsed(TX, (entry) => {
    head = entry.id;
    return [entry];
  });
  submit(m, 1);
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_device_tx_in_flight(), 0, "the first packet completed and its head was freed");
  submit(m, 2); // published, not yet kicked: still in the avail ring
  assert.equal(m.exports.fw_device_tx_in_flight(), 1);
  m.device!.injectUsed(TX, head, 0); // the first packet's completion, again
  assert.equal(m.exports.fw_device_tx_in_flight(), 1, "the second packet is still the device's");
  assert.equal(rejections(m, "used_duplicate"), 1);
  assert.equal(m.logLines(new RegExp(`warn virtq: used entry rejected: duplicate completion queue=1 id=${head} `)).length, 1, m.logText());
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  assert.deepEqual(
    m.device!.sentByGuest.map((p) => p.header.srcPort),
    [1, 2],
  );
  assert.deepEqual(m.device!.violations, []);
});

test("a freed tx head is not used again while other descriptors are free", async () => {
  const m = await deviceUp();
  const heads: number[] = [];
  const q = m.device!.queues[TX];
  for (let i = 0; i < 8; i++) {
    m.device!.corruptNextUsed(TX, (entry) => {
      heads.push(entry.id);
      return [entry];
    });
    submit(m, 100 + i);
    m.exports.fw_device_tx_flush();
    assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  }
  assert.equal(new Set(heads).size, heads.length, `heads ${heads} (queue size ${q.size})`);
});

test("a used idx ahead of the entries written (within the queue size) completes nothing until they are", async () => {
  const m = await deviceUp();
  submit(m, 1); // not kicked: the device holds nothing it could complete yet
  assert.equal(m.exports.fw_device_tx_in_flight(), 1);
  const q = m.device!.queues[TX];
  m.device!.memory!.write16(q.usedAddr + 2, (q.usedIdx + 2) & 0xffff); // 2 > 1 in flight, < 128
  assert.equal(m.exports.fw_device_tx_in_flight(), 1, "no slot the device did not write is read as a completion");
  assert.equal(m.exports.fw_device_tx_in_flight(), 1);
  assert.ok(rejections(m, "used_idx_jump") >= 1);
  assert.equal(rejections(m, "used_duplicate") + rejections(m, "used_not_in_flight"), 0);
  assert.equal(m.logLines(/warn virtq: used entry rejected: used idx ahead of the entries the device wrote queue=1 /).length, 1, m.logText());
  // The device writes its real entry (and idx): the packet completes, and tx goes on.
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  submit(m, 2);
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  assert.deepEqual(m.device!.sentByGuest.map((p) => p.header.srcPort), [1, 2]);
});

test("an extra used entry the device did write (more entries than chains in flight) is rejected and tx goes on", async () => {
  const m = await deviceUp();
  m.device!.corruptNextUsed(TX, (entry) => [entry, entry]);
  submit(m, 1);
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  assert.equal(rejections(m, "used_duplicate"), 1);
  for (let i = 2; i < 40; i++) {
    submit(m, i);
    m.exports.fw_device_tx_flush();
  }
  assert.equal(m.exports.fw_device_tx_in_flight(), 0, "every buffer came back: the pool (32) was cycled past");
  assert.equal(m.device!.sentByGuest.length, 39);
  assert.equal(rejections(m, "used_idx_jump"), 0);
});

test("rx: a header len below the used length is taken as Linux does; the extra bytes are counted, first at warn", async () => {
  const m = await deviceUp();
  m.device!.inject({ srcPort: 9, len: 5 }, pattern(8, 3)); // used length 44 + 8, header says 5
  m.device!.inject({ srcPort: 10, len: 0 }, pattern(100, 4)); // used length 44 + 100, header says 0
  m.device!.inject({ srcPort: 11 }, pattern(8, 5)); // an exact one
  const first = rxTake(m)!;
  assert.equal(first.header.srcPort, 9);
  assert.deepEqual(first.payload, pattern(8, 3).subarray(0, 5), "the header's len is the payload length");
  const second = rxTake(m)!;
  assert.equal(second.header.srcPort, 10);
  assert.equal(second.payload.length, 0);
  const third = rxTake(m)!;
  assert.equal(third.header.srcPort, 11);
  assert.deepEqual(third.payload, pattern(8, 5));
  assert.equal(rejections(m, "rx_used_extra"), 2);
  assert.equal(rejections(m, "rx_len_mismatch"), 0);
  assert.equal(counter(m, COUNTER_RX_USED_EXTRA_BYTES), 3 + 100);
  assert.equal(m.logLines(/warn vsock-dev: dropped: rx used length beyond the header len, extra bytes ignored value=3 count=1$/).length, 1, m.logText());
  assert.equal(m.logLines(/debug vsock-dev: dropped: rx used length beyond the header len, extra bytes ignored value=100 count=2$/).length, 1);
});

for (const cid of [0n, 1n, 2n, 0xffff_ffffn, 0x1_0000_0021n, 0xffff_ffff_ffff_ffffn]) {
  test(`guest_cid 0x${cid.toString(16)} is refused at bring-up: FAILED, never DRIVER_OK, one error line`, async () => {
    const m = await deviceMachine({ guestCid: cid });
    assert.equal(m.exports.fw_device_init(), 0);
    const status = m.vsockFunction!.status;
    assert.equal(status & STATUS_FAILED, STATUS_FAILED);
    assert.equal(status & STATUS_DRIVER_OK, 0);
    assert.equal(m.device!.started, false);
    assert.equal(rejections(m, "guest_cid_invalid"), 1);
    const hex = `0x${cid.toString(16)}`;
    assert.equal(m.logLines(new RegExp(`error vsock-dev: guest_cid is reserved or above 32 bits: device set FAILED and left unused at=bring-up guest_cid=${hex} `)).length, 1, m.logText());
    assert.equal(m.logLines(/error virtio: device set FAILED: guest_cid reserved or above 32 bits/).length, 1);
    assert.equal(m.exports.fw_device_rx_next(), 0);
    assert.equal(m.exports.fw_device_tx_acquire(), 0);
  });
}

test("guest_cid 3 and 0xfffffffe are valid", async () => {
  for (const cid of [3n, 0xffff_fffen]) {
    const m = await deviceUp({ guestCid: cid });
    assert.equal(BigInt(m.exports.fw_device_guest_cid()), cid);
    assert.equal(rejections(m, "guest_cid_invalid"), 0);
  }
});

test("a transport reset to a reserved guest_cid: device FAILED and left unused, the old cid kept, one error line", async () => {
  const m = await deviceUp({ guestCid: 33 });
  assert.equal(m.device!.transportReset(2), true);
  assert.equal(m.exports.fw_device_event_poll(), 1, "connections must still end");
  assert.equal(m.vsockFunction!.status & STATUS_FAILED, STATUS_FAILED);
  assert.equal(BigInt(m.exports.fw_device_guest_cid()), 33n);
  assert.equal(m.logLines(/error vsock-dev: guest_cid is reserved or above 32 bits: device set FAILED and left unused at=transport-reset guest_cid=0x2 kept_cid=33 /).length, 1, m.logText());
  assert.equal(m.exports.fw_device_tx_acquire(), 0, "nothing can go out under a cid that is not ours");
  m.device!.inject({ srcPort: 1 }, pattern(4));
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.exports.fw_device_event_poll(), 0);
  assert.equal(counter(m, COUNTER_TRANSPORT_RESETS), 1);
});

test("the whole stack after a transport reset to cid 0xffffffff: connections end, nothing is sent, no trap", async () => {
  const { m, g } = await guest();
  const fd = connectedSocket(m, g, 6500);
  const sentBefore = m.device!.sentByGuest.length;
  m.device!.transportReset(0xffff_ffffn);
  m.poll(20);
  assert.equal(m.device!.sentByGuest.length, sentBefore);
  assert.equal(m.vsockFunction!.status & STATUS_FAILED, STATUS_FAILED);
  assert.equal(g.sockname(fd).cid === 0xffff_ffff, false);
  assert.equal(m.aborts.length, 0);
});

test("getsockname reports the largest valid cid whole", async () => {
  const { m, g } = await guest({ guestCid: 0xffff_fffen });
  const fd = connectedSocket(m, g, 6400);
  const name = g.sockname(fd);
  assert.equal(name.r, 0);
  assert.equal(name.cid, 0xffff_fffe);
  assert.equal(BigInt(m.exports.vs_local_cid()), 0xffff_fffen);
});

/** A guest socket connected to a host listener on `port` (accepted there). */
function connectedSocket(m: Machine, g: Guest, port: number): number {
  const listener = m.host.listen(port);
  const fd = g.socket();
  g.settimeout(fd, 0n);
  g.connect(fd, port);
  assert.ok(m.runUntil(() => (g.poll([[fd, POLLOUT]], 0n)[1][0] & POLLOUT) !== 0, 100));
  assert.ok(listener.accept());
  return fd;
}

/** The device takes the next posted event buffer and returns it with `len` without writing it. */
function forgeEventCompletion(m: Machine, len = 4): void {
  const q = m.device!.queues[EVENT];
  const chain = q.pop();
  assert.ok(chain, "an event buffer is posted");
  q.pushUsed(chain.head, len);
}

test("an event completion the device never wrote is refused, not read as TRANSPORT_RESET", async () => {
  const m = await deviceUp();
  forgeEventCompletion(m);
  assert.equal(m.exports.fw_device_event_poll(), 0);
  assert.equal(counter(m, COUNTER_TRANSPORT_RESETS), 0);
  assert.equal(rejections(m, "event_unknown"), 1);
  assert.equal(m.logLines(/warn vsock-dev: dropped: unknown event id value=4294967295 count=1$/).length, 1, m.logText());
});

test("reposted event buffers are blank again: after real resets, an unwritten completion is still refused", async () => {
  const m = await deviceUp();
  for (let i = 0; i < 4; i++) {
    // Every event buffer (4) holds a written TRANSPORT_RESET (id 0) and is posted again.
    assert.equal(m.device!.transportReset(), true);
    assert.equal(m.exports.fw_device_event_poll(), 1);
  }
  forgeEventCompletion(m);
  assert.equal(m.exports.fw_device_event_poll(), 0);
  assert.equal(counter(m, COUNTER_TRANSPORT_RESETS), 4);
  assert.equal(rejections(m, "event_unknown"), 1);
  assert.equal(m.device!.transportReset(), true, "a real event still arrives");
  assert.equal(m.exports.fw_device_event_poll(), 1);
});
