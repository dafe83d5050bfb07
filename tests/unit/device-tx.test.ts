// tx: the buffer pool, one notify per flush, VIRTQ_USED_F_NO_NOTIFY, reclaim from the used ring,
// and refusal of submits that would make vhost drop the packet.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { VIRTIO_F_VERSION_1 } from "../sim/virtio-pci";
import { VIRTIO_VSOCK_OP_RST } from "../../tools/vsock-model/vsock-packet";
import {
  counter,
  COUNTER_TX_NOTIFIES,
  COUNTER_TX_NOTIFIES_SUPPRESSED,
  COUNTER_TX_PACKETS,
  deviceUp,
  drops,
  DROP_TX_INVALID,
  pattern,
  TX_BUFFER_COUNT_MAX,
  writeTxPacket,
} from "./device-harness";

const TX = 1;

function txNotifies(m: Machine): number {
  return m.vsockFunction!.notifyCounts[TX];
}

function submit(m: Machine, port: number, payload = new Uint8Array(0)): number {
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  assert.notEqual(buffer, 0, "a free tx buffer");
  // RST to a tuple the host does not know: it never answers an RST.
  writeTxPacket(m, buffer, { op: VIRTIO_VSOCK_OP_RST, srcPort: port }, payload);
  m.exports.fw_device_tx_submit(buffer, payload.length);
  return buffer;
}

test("pool: every buffer once, then 0; the device takes nothing before the flush", async () => {
  const m = await deviceUp();
  const buffers = new Set<number>();
  for (let i = 0; i < TX_BUFFER_COUNT_MAX; i++) buffers.add(submit(m, 100 + i));
  assert.equal(buffers.size, TX_BUFFER_COUNT_MAX);
  assert.equal(m.exports.fw_device_tx_acquire(), 0, "pool exhausted");
  assert.equal(m.exports.fw_device_tx_in_flight(), TX_BUFFER_COUNT_MAX);
  assert.equal(m.device!.sentByGuest.length, 0, "no notify yet: the device has not looked");
  const before = txNotifies(m);
  m.exports.fw_device_tx_flush();
  assert.equal(txNotifies(m), before + 1, "one notify for the whole batch");
  assert.deepEqual(
    m.device!.sentByGuest.map((p) => p.header.srcPort),
    [...Array(TX_BUFFER_COUNT_MAX).keys()].map((i) => 100 + i),
    "all packets, in submit order",
  );
  assert.equal(m.exports.fw_device_tx_in_flight(), 0, "reclaimed from the used ring");
  assert.notEqual(m.exports.fw_device_tx_acquire(), 0, "buffers are back");
  assert.equal(counter(m, COUNTER_TX_PACKETS), TX_BUFFER_COUNT_MAX);
  assert.deepEqual(m.device!.violations, []);
});

test("a flush with nothing submitted does not notify", async () => {
  const m = await deviceUp();
  const before = txNotifies(m);
  m.exports.fw_device_tx_flush();
  m.exports.fw_device_tx_flush();
  assert.equal(txNotifies(m), before);
  submit(m, 1);
  m.exports.fw_device_tx_flush();
  m.exports.fw_device_tx_flush();
  assert.equal(txNotifies(m), before + 1);
  assert.equal(counter(m, COUNTER_TX_NOTIFIES), 1);
});

test("VIRTQ_USED_F_NO_NOTIFY is honoured (without EVENT_IDX; with it, tests/unit/event-idx.test.ts)", async () => {
  const m = await deviceUp({ deviceFeatures: VIRTIO_F_VERSION_1 });
  const q = m.device!.queues[TX];
  m.device!.memory!.write16(q.usedAddr, 1); // the device says: do not notify me
  const before = txNotifies(m);
  submit(m, 7);
  m.exports.fw_device_tx_flush();
  assert.equal(txNotifies(m), before);
  assert.equal(counter(m, COUNTER_TX_NOTIFIES_SUPPRESSED), 1);
  // The device polls on its own: it finds the packet and completes it.
  m.device!.memory!.write16(q.usedAddr, 0);
  m.device!.processTx();
  assert.equal(m.device!.sentByGuest.length, 1);
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
});

test("a full 64 KiB payload goes out in one packet", async () => {
  const m = await deviceUp();
  const payload = pattern(65536, 9);
  submit(m, 8, payload);
  m.exports.fw_device_tx_flush();
  assert.equal(m.device!.sentByGuest.length, 1);
  assert.equal(m.device!.sentByGuest[0].header.len, 65536);
  assert.ok(Buffer.from(m.device!.sentByGuest[0].payload).equals(Buffer.from(payload)));
  assert.deepEqual(m.device!.violations, []);
});

test("submits vhost would drop are refused and the buffer returns to the pool", async () => {
  const m = await deviceUp();
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  writeTxPacket(m, buffer, { op: VIRTIO_VSOCK_OP_RST, len: 10 });
  m.exports.fw_device_tx_submit(buffer, 5); // header len disagrees with the payload length
  const big = m.exports.fw_device_tx_acquire() >>> 0;
  writeTxPacket(m, big, { op: VIRTIO_VSOCK_OP_RST, len: 65537 });
  m.exports.fw_device_tx_submit(big, 65537); // beyond TX_PAYLOAD_MAX
  m.exports.fw_device_tx_submit(12345, 0); // not a tx buffer at all
  m.exports.fw_device_tx_submit(buffer, 0); // no longer acquired
  m.exports.fw_device_tx_flush();
  assert.equal(drops(m, DROP_TX_INVALID), 4);
  assert.equal(m.device!.sentByGuest.length, 0);
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  assert.equal(m.logLines(/warn vsock-dev: dropped: invalid tx submit value=5 count=1/).length, 1);
  const buffers = new Set<number>();
  for (let i = 0; i < TX_BUFFER_COUNT_MAX; i++) buffers.add(m.exports.fw_device_tx_acquire() >>> 0);
  assert.equal(buffers.size, TX_BUFFER_COUNT_MAX);
  assert.equal(buffers.has(0), false);
});
