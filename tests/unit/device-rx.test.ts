// rx: host -> guest packets through rxNext/rxRelease in both buffer layouts, and the drops
// (used length shorter than a header, header len disagreeing with the used length).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Machine } from "../sim/machine";
import { VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VSOCK_HEADER_SIZE } from "../../tools/vsock-model/vsock-packet";
import {
  deviceUp,
  drops,
  DROP_RX_LEN_MISMATCH,
  DROP_RX_SHORT,
  DROP_RX_USED_TOO_LONG,
  pattern,
  RX_BUFFER_COUNT_MAX,
  RX_BUFFER_DATA_SIZE,
  rxTake,
  writeTxPacket,
} from "./device-harness";

function postedRxBuffers(m: Machine): number {
  return m.device!.queues[0].pending();
}

for (const split of [false, true]) {
  const layout = split ? "split (header + data descriptors)" : "single descriptor";

  test(`rx buffers posted before DRIVER_OK, layout: ${layout}`, async () => {
    const m = await deviceUp({ splitRx: split });
    const q = m.device!.queues[0];
    const chain = q.peek()!;
    if (split) {
      assert.deepEqual(chain.descriptors.map((d) => d.len), [VSOCK_HEADER_SIZE, RX_BUFFER_DATA_SIZE]);
      // The header is contiguous with the data: the device layer hands out header + payload.
      assert.equal(chain.descriptors[1].addr, chain.descriptors[0].addr + VSOCK_HEADER_SIZE);
    } else {
      assert.deepEqual(chain.descriptors.map((d) => d.len), [VSOCK_HEADER_SIZE + RX_BUFFER_DATA_SIZE]);
    }
    assert.ok(chain.descriptors.every((d) => d.writable));
    assert.equal(postedRxBuffers(m), RX_BUFFER_COUNT_MAX); // 128 descriptors / 2, or min(128, 64)
    assert.equal(m.logLines(split ? /rx_layout=split/ : /rx_layout=single/).length, 1);
  });

  test(`rx packets of 0, 1 and a full buffer of payload arrive intact, layout: ${layout}`, async () => {
    const m = await deviceUp({ splitRx: split });
    for (const size of [0, 1, RX_BUFFER_DATA_SIZE]) {
      const payload = pattern(size, size);
      m.device!.inject({ srcPort: 1000 + size, dstPort: 77 }, payload);
      const packet = rxTake(m)!;
      assert.ok(packet, `packet of ${size} bytes`);
      assert.equal(packet.header.srcCid, 2n);
      assert.equal(packet.header.dstCid, 33n);
      assert.equal(packet.header.srcPort, 1000 + size);
      assert.equal(packet.header.len, size);
      assert.equal(packet.payloadPointer, packet.headerPointer + VSOCK_HEADER_SIZE);
      assert.deepEqual(packet.payload, payload);
    }
    assert.equal(rxTake(m), null);
    // Used buffers go back in batches of half the pool (one notify per batch): 3 are held now.
    assert.equal(postedRxBuffers(m), RX_BUFFER_COUNT_MAX - 3, "the used buffers wait for their batch");
    for (let i = 3; i < RX_BUFFER_COUNT_MAX / 2; i++) {
      m.device!.inject({ srcPort: 2000 + i, dstPort: 77 }, pattern(1, i));
      assert.ok(rxTake(m), `filler packet ${i}`);
    }
    assert.equal(rxTake(m), null);
    assert.equal(postedRxBuffers(m), RX_BUFFER_COUNT_MAX, "every buffer posted again once half were used");
    assert.deepEqual(m.device!.violations, []);
  });

  test(`a 100 KiB host write split across rx buffers reassembles, layout: ${layout}`, async () => {
    const m = await deviceUp({ splitRx: split });
    // The host connects; the device layer sees the REQUEST and the test answers through tx.
    const socket = m.host.connect(1234);
    const request = rxTake(m)!;
    assert.equal(request.header.op, VIRTIO_VSOCK_OP_REQUEST);
    const buffer = m.exports.fw_device_tx_acquire() >>> 0;
    writeTxPacket(m, buffer, {
      op: VIRTIO_VSOCK_OP_RESPONSE,
      srcPort: 1234,
      dstPort: request.header.srcPort,
      bufAlloc: 1 << 20,
    });
    m.exports.fw_device_tx_submit(buffer, 0);
    m.exports.fw_device_tx_flush();
    assert.equal(socket.state, "connected");
    const data = pattern(100 * 1024, 3);
    socket.send(data);
    const chunks: Uint8Array[] = [];
    let packets = 0;
    for (let rounds = 0; rounds < 100 && chunks.reduce((n, c) => n + c.length, 0) < data.length; rounds++) {
      const packet = rxTake(m);
      if (!packet) continue;
      assert.ok(packet.header.len <= RX_BUFFER_DATA_SIZE);
      chunks.push(packet.payload);
      packets++;
    }
    const received = Buffer.concat(chunks);
    assert.equal(received.length, data.length);
    assert.ok(received.equals(Buffer.from(data)), "bytes in order");
    assert.ok(packets >= Math.ceil(data.length / RX_BUFFER_DATA_SIZE));
    assert.deepEqual(m.device!.violations, []);
  });
}

test("rx drops: short used length, header len mismatch, used length beyond the buffer; each logged once at warn", async () => {
  const m = await deviceUp();
  m.device!.inject({ srcPort: 1 }, pattern(8), { usedLength: 20 });
  m.device!.inject({ srcPort: 2 }, pattern(8), { usedLength: 20 });
  m.device!.inject({ srcPort: 3, len: 10 }, pattern(5)); // header says 10, 5 bytes written
  m.device!.inject({ srcPort: 4 }, pattern(8), { usedLength: 1 << 20 });
  m.device!.inject({ srcPort: 5 }, pattern(8)); // a good one after all that
  const packet = rxTake(m)!;
  assert.equal(packet.header.srcPort, 5);
  assert.deepEqual(packet.payload, pattern(8));
  assert.equal(drops(m, DROP_RX_SHORT), 2);
  assert.equal(drops(m, DROP_RX_LEN_MISMATCH), 1);
  assert.equal(drops(m, DROP_RX_USED_TOO_LONG), 1);
  assert.equal(m.logLines(/warn vsock-dev: dropped: rx packet shorter than the header value=20 count=1/).length, 1);
  assert.equal(m.logLines(/debug vsock-dev: dropped: rx packet shorter than the header value=20 count=2/).length, 1);
  assert.equal(m.logLines(/warn vsock-dev: dropped: rx header len disagrees with used length value=10/).length, 1);
  // The virtqueue rejects a used length beyond the buffer before the device layer sees it.
  assert.equal(m.logLines(/warn virtq: used entry rejected: used length beyond the buffer queue=0 .*len=1048576 count=1/).length, 1);
  assert.equal(m.logLines(/vsock-dev: dropped: rx used length/).length, 0, "one rejection, one line");
  assert.equal(rxTake(m), null);
  // 5 buffers used (4 dropped, 1 taken): they go back with the batch once half the pool is used.
  assert.equal(postedRxBuffers(m), RX_BUFFER_COUNT_MAX - 5);
  for (let i = 5; i < RX_BUFFER_COUNT_MAX / 2; i++) {
    m.device!.inject({ srcPort: 100 + i }, pattern(1));
    assert.ok(rxTake(m), `filler packet ${i}`);
  }
  assert.equal(rxTake(m), null);
  assert.equal(postedRxBuffers(m), RX_BUFFER_COUNT_MAX, "dropped buffers were posted again");
  assert.equal(m.aborts.length, 0);
});

test("rx buffers are recycled: many more packets than buffers", async () => {
  const m = await deviceUp({ splitRx: true });
  for (let i = 0; i < RX_BUFFER_COUNT_MAX * 3; i++) {
    m.device!.inject({ srcPort: i }, pattern(100, i));
    const packet = rxTake(m)!;
    assert.equal(packet.header.srcPort, i);
    assert.deepEqual(packet.payload, pattern(100, i));
  }
  assert.equal(m.device!.pendingToGuest, 0);
});

test("more packets queued than buffers: all delivered in order as buffers come back", async () => {
  const m = await deviceUp();
  for (let i = 0; i < RX_BUFFER_COUNT_MAX + 10; i++) m.device!.inject({ srcPort: i }, pattern(16, i));
  assert.equal(m.device!.pendingToGuest, 10, "the device waits for buffers");
  const seen: number[] = [];
  for (let rounds = 0; rounds < 1000 && seen.length < RX_BUFFER_COUNT_MAX + 10; rounds++) {
    const packet = rxTake(m);
    if (packet) seen.push(packet.header.srcPort);
  }
  assert.deepEqual(seen, [...Array(RX_BUFFER_COUNT_MAX + 10).keys()], "in order, none lost");
});
