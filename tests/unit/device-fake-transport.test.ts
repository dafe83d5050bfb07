// The vsock device layer alone on a fake transport (issue 20): the unit build's MemoryTransport
// (assembly/virtio/memory-transport.ts) stands in for virtio-pci, so no PCI bus, BAR or
// capability is involved; this test plays the device on the rings the driver set up in memory.
// The whole-machine simulator covers the same layer over PCI (device-*.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Machine } from "../sim/machine";
import { DeviceSplitQueue } from "../../tools/vsock-model/split-ring";
import { decodeHeader, encodeHeader, VSOCK_HEADER_SIZE } from "../../tools/vsock-model/vsock-packet";
import {
  counter,
  COUNTER_RX_PACKETS,
  COUNTER_TRANSPORT_RESETS,
  DROP_RX_LEN_MISMATCH,
  DROP_RX_SHORT,
  drops,
  pattern,
  rxTake,
  WASM_PATH,
  writeTxPacket,
} from "./device-harness";

const RX = 0;
const TX = 1;
const EVENT = 2;
const STATUS_DRIVER_OK = 4;
const STATUS_FEATURES_OK = 8;
const STATUS_FAILED = 128;

/** The device's view of queue `index` on the fake transport. */
function deviceQueue(m: Machine, index: number): DeviceSplitQueue {
  const area = (part: number) => Number(BigInt.asUintN(64, BigInt(m.exports.fw_fake_queue_area(index, part))));
  return new DeviceSplitQueue(m.guestMemory, index, m.exports.fw_fake_queue_size(index), area(0), area(1), area(2));
}

async function fakeDevice(cid: bigint, queueMax = 16): Promise<Machine> {
  const m = await Machine.create({ wasmPath: WASM_PATH });
  m.exports.fw_set_rx_layout(0);
  assert.equal(m.exports.fw_fake_device_start(cid, queueMax), 1, m.logText());
  return m;
}

test("the device comes up on a transport with no PCI behind it", async () => {
  const m = await fakeDevice(7n);
  const status = m.exports.fw_fake_status();
  assert.equal(status & (STATUS_FEATURES_OK | STATUS_DRIVER_OK), STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.equal(status & STATUS_FAILED, 0);
  assert.equal(BigInt(m.exports.fw_device_guest_cid()), 7n);
  for (const q of [RX, TX, EVENT]) assert.equal(m.exports.fw_fake_queue_size(q), 16);
  assert.equal(deviceQueue(m, RX).pending(), 16, "every rx buffer posted (one descriptor each)");
  assert.equal(deviceQueue(m, EVENT).pending(), 4, "every event buffer posted");
  assert.equal(deviceQueue(m, TX).pending(), 0);
  assert.ok(m.exports.fw_fake_notifies(RX) >= 1, "the rx buffers were announced after DRIVER_OK");
  assert.equal(m.logLines(/pci: |device found/).length, 0, "nothing touched the PCI bus");
});

test("a reserved guest_cid on the fake transport sets the device FAILED", async () => {
  const m = await Machine.create({ wasmPath: WASM_PATH });
  assert.equal(m.exports.fw_fake_device_start(2n, 16), 0);
  assert.equal(m.exports.fw_fake_status() & STATUS_FAILED, STATUS_FAILED);
});

test("rx: a packet the device writes comes out whole, and a short one is dropped", async () => {
  const m = await fakeDevice(7n);
  const rx = deviceQueue(m, RX);
  const payload = pattern(100, 3);
  const header = { srcCid: 2n, dstCid: 7n, srcPort: 1234, dstPort: 5678, len: payload.length, type: 1, op: 5, flags: 0, bufAlloc: 65536, fwdCnt: 0 };
  let chain = rx.pop()!;
  const bytes = new Uint8Array(VSOCK_HEADER_SIZE + payload.length);
  bytes.set(encodeHeader(header));
  bytes.set(payload, VSOCK_HEADER_SIZE);
  rx.pushUsed(chain.head, rx.scatter(chain, bytes));
  chain = rx.pop()!;
  rx.pushUsed(chain.head, 10); // shorter than a header
  const packet = rxTake(m)!;
  assert.ok(packet, "the packet was taken");
  assert.deepEqual(packet.header, header);
  assert.deepEqual(packet.payload, payload);
  assert.equal(rxTake(m), null, "the short one is not a packet");
  assert.equal(drops(m, DROP_RX_SHORT), 1, "dropped as shorter than a header");
  assert.equal(drops(m, DROP_RX_LEN_MISMATCH), 0);
  assert.equal(counter(m, COUNTER_RX_PACKETS), 1);
});

test("tx: a submitted packet reaches the tx ring and its buffer comes back once used", async () => {
  const m = await fakeDevice(7n);
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  assert.notEqual(buffer, 0);
  const payload = pattern(64, 9);
  writeTxPacket(m, buffer, { srcCid: 7n, srcPort: 4000, dstPort: 4001, len: payload.length }, payload);
  m.exports.fw_device_tx_submit(buffer, payload.length);
  const notifies = m.exports.fw_fake_notifies(TX);
  m.exports.fw_device_tx_flush();
  assert.equal(m.exports.fw_fake_notifies(TX), notifies + 1, "the flush notified the tx queue");
  const tx = deviceQueue(m, TX);
  const chain = tx.pop()!;
  assert.ok(chain, "the packet is on the tx ring");
  const sent = tx.gather(chain);
  assert.equal(sent.length, VSOCK_HEADER_SIZE + payload.length);
  assert.equal(decodeHeader(sent.subarray(0, VSOCK_HEADER_SIZE)).srcPort, 4000);
  assert.deepEqual(sent.subarray(VSOCK_HEADER_SIZE), payload);
  assert.equal(m.exports.fw_device_tx_in_flight(), 1);
  tx.pushUsed(chain.head, 0);
  assert.equal(m.exports.fw_device_tx_in_flight(), 0, "the used buffer is back in the pool");
});

test("TRANSPORT_RESET on the event queue: the device reads its new guest_cid", async () => {
  const m = await fakeDevice(7n);
  m.exports.fw_fake_set_cid(9n);
  const events = deviceQueue(m, EVENT);
  const chain = events.pop()!;
  events.pushUsed(chain.head, events.scatter(chain, new Uint8Array(4))); // id 0: TRANSPORT_RESET
  assert.equal(m.exports.fw_device_event_poll(), 1);
  assert.equal(BigInt(m.exports.fw_device_guest_cid()), 9n);
  assert.equal(counter(m, COUNTER_TRANSPORT_RESETS), 1);
  assert.equal(events.pending(), 4, "the event buffer was posted again");
});
