// A hostile or buggy device: used-ring entries with a bad id, an id not in flight, a duplicate
// completion, a used length beyond the buffer. Each is rejected, counted, logged once at warn,
// and the device layer keeps working.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { deviceUp, pattern, rxTake, TX_BUFFER_COUNT_MAX, writeTxPacket } from "./device-harness";

const RX = 0;
const TX = 1;

function goodPacketStillArrives(m: Machine, port: number): void {
  m.device!.inject({ srcPort: port }, pattern(32, port));
  const packet = rxTake(m);
  assert.ok(packet, "a valid packet after the bad entries");
  assert.equal(packet.header.srcPort, port);
  assert.deepEqual(packet.payload, pattern(32, port));
}

test("used id out of range: rejected, logged once at warn, survived", async () => {
  const m = await deviceUp();
  m.device!.injectUsed(RX, 500, 60);
  m.device!.injectUsed(RX, 0xffffffff, 60);
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.logLines(/warn virtq: used entry rejected: id out of range queue=0 id=500 len=60 count=1/).length, 1);
  assert.equal(m.logLines(/debug virtq: used entry rejected: id out of range queue=0 id=4294967295 len=60 count=2/).length, 1);
  goodPacketStillArrives(m, 11);
  assert.equal(m.aborts.length, 0);
});

test("used id in range but not in flight: rejected", async () => {
  const m = await deviceUp(); // single layout: heads 0..63 posted, 64..127 never used
  m.device!.injectUsed(RX, 100, 60);
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.logLines(/warn virtq: used entry rejected: id not in flight queue=0 id=100/).length, 1);
  goodPacketStillArrives(m, 12);
});

test("split layout: the id of a chain's second descriptor is not a head", async () => {
  const m = await deviceUp({ splitRx: true });
  m.device!.injectUsed(RX, 1, 60); // descriptor 1 is the data half of the chain headed by 0
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.logLines(/used entry rejected: id not in flight queue=0 id=1 /).length, 1);
  goodPacketStillArrives(m, 13);
});

test("duplicate completion: the second one is rejected, the packet delivered once", async () => {
  for (const split of [false, true]) {
    const m = await deviceUp({ splitRx: split });
    m.device!.corruptNextUsed(RX, (entry) => [entry, entry]);
    m.device!.inject({ srcPort: 21 }, pattern(40));
    const first = rxTake(m);
    assert.ok(first);
    assert.equal(first.header.srcPort, 21);
    assert.equal(rxTake(m), null, "the duplicate must not deliver the packet twice");
    assert.equal(m.logLines(/warn virtq: used entry rejected: duplicate completion queue=0/).length, 1);
    goodPacketStillArrives(m, 22);
  }
});

test("used length beyond the buffer: rejected and the buffer reused", async () => {
  const m = await deviceUp();
  m.device!.corruptNextUsed(RX, (entry) => [{ id: entry.id, len: 0x7fffffff }]);
  m.device!.inject({ srcPort: 31 }, pattern(40));
  assert.equal(rxTake(m), null);
  assert.equal(m.logLines(/warn virtq: used entry rejected: used length beyond the buffer queue=0/).length, 1);
  goodPacketStillArrives(m, 32);
});

test("tx: a duplicate completion does not corrupt the buffer pool", async () => {
  const m = await deviceUp();
  const send = (port: number) => {
    const buffer = m.exports.fw_device_tx_acquire() >>> 0;
    assert.notEqual(buffer, 0);
    writeTxPacket(m, buffer, { op: 3, srcPort: port }); // RST: the host ignores it
    m.exports.fw_device_tx_submit(buffer, 0);
    m.exports.fw_device_tx_flush();
  };
  m.device!.corruptNextUsed(TX, (entry) => [entry, entry, { id: 999, len: 0 }]);
  send(1);
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
  assert.equal(m.logLines(/warn virtq: used entry rejected: duplicate completion queue=1/).length, 1);
  assert.equal(m.logLines(/warn virtq: used entry rejected: id out of range queue=1 id=999/).length, 1);
  // Every buffer can still be acquired exactly once.
  const buffers = new Set<number>();
  for (let i = 0; i < TX_BUFFER_COUNT_MAX; i++) buffers.add(m.exports.fw_device_tx_acquire() >>> 0);
  assert.equal(buffers.size, TX_BUFFER_COUNT_MAX);
  assert.equal(buffers.has(0), false);
  assert.equal(m.exports.fw_device_tx_acquire(), 0);
});

test("a used idx more than a ring ahead is not trusted; the next sane one is", async () => {
  const m = await deviceUp();
  const q = m.device!.queues[RX];
  m.device!.memory!.write16(q.usedAddr + 2, (q.usedIdx + 300) & 0xffff);
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.exports.fw_device_rx_next(), 0);
  assert.equal(m.logLines(/warn virtq: used entry rejected: used idx jumped past the queue size queue=0 id=300/).length, 1);
  goodPacketStillArrives(m, 41); // the device writes its own idx again with the next entry
});

test("counters line reports each rejection kind", async () => {
  const m = await deviceUp();
  m.device!.injectUsed(RX, 500, 60);
  m.device!.injectUsed(RX, 100, 60);
  m.exports.fw_device_rx_next();
  m.exports.fw_device_log_counters();
  assert.equal(m.logLines(/info virtq: rx queue=0 size=128 .*bad_id=1 not_in_flight=1 duplicate=0 too_long=0/).length, 1);
  assert.equal(m.logLines(/info vsock-dev: counters rx_packets=0 /).length, 1);
});
