// Device bring-up: status sequence, feature negotiation, queue set-up, failure paths.
import assert from "node:assert/strict";
import { test } from "node:test";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../sim/virtio-pci";
import { VIRTIO_VSOCK_F_SEQPACKET } from "../../tools/vsock-model/vsock-packet";
import { deviceMachine, deviceUp } from "./device-harness";

const ACK = 1;
const DRIVER = 2;
const DRIVER_OK = 4;
const FEATURES_OK = 8;
const FAILED = 128;

test("bring-up follows reset, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK and takes VERSION_1, SEQPACKET (and EVENT_IDX)", async () => {
  const m = await deviceUp({ deviceFeatures: VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET });
  const fn = m.vsockFunction!;
  assert.deepEqual(fn.statusWrites, [0, ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK, ACK | DRIVER | FEATURES_OK | DRIVER_OK]);
  assert.equal(fn.status, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  // QEMU offers SEQPACKET: taken (issue 15).
  assert.equal(fn.driverFeatures, VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET);
  assert.equal(BigInt(m.exports.fw_device_features()), VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET);
  assert.equal(m.logLines(/virtio: features offered=0x100000002 negotiated=0x100000002/).length, 1);
  // Kernel vhost-vsock also offers EVENT_IDX (the simulated device's default): taken.
  const withEventIdx = await deviceUp();
  assert.equal(withEventIdx.vsockFunction!.driverFeatures, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_VSOCK_F_SEQPACKET);
  assert.equal(withEventIdx.logLines(/virtio: features offered=0x120000002 negotiated=0x120000002/).length, 1);
  // Without SEQPACKET offered, none is taken.
  const streamOnly = await deviceUp({ deviceFeatures: VIRTIO_F_VERSION_1 });
  assert.equal(streamOnly.vsockFunction!.driverFeatures, VIRTIO_F_VERSION_1);
  assert.equal(m.logLines(/vsock-dev: device found 00:01\.0 1af4:1053/).length, 1);
  assert.deepEqual(m.device!.violations, []);
  assert.deepEqual(m.unknownAccesses, []);
});

test("queues: min(device max, QUEUE_SIZE_MAX=128), power of two, MSI-X entry 0 (config: none), all enabled", async () => {
  for (const [max, expected] of [
    [256, 128],
    [64, 64],
    [100, 64],
    [8, 8],
  ]) {
    const m = await deviceUp({ queueSizeMax: max });
    const fn = m.vsockFunction!;
    assert.equal(fn.msixConfig, 0xffff);
    for (const q of fn.queues) {
      assert.equal(q.size, expected, `queue ${q.index} with device max ${max}`);
      assert.equal(q.enabled, true);
      assert.equal(q.msixVector, 0); // the idle halt's wake-up (tests/unit/device-interrupts.test.ts)
      // Rings on their own pages, at guest physical = memory base + wasm pointer.
      assert.equal(Number(q.desc) % 4096, 0);
      assert.equal(Number(q.driver) % 4096, 0);
      assert.equal(Number(q.device) % 4096, 0);
      assert.ok(Number(q.desc) >= m.memoryBase);
    }
    assert.equal(m.logLines(new RegExp(`queues rx=${expected} tx=${expected} event=${expected} `)).length, 1);
    assert.deepEqual(m.device!.violations, []);
  }
});

test("a device without VERSION_1 is set FAILED and init returns false", async () => {
  const m = await deviceMachine({ deviceFeatures: VIRTIO_VSOCK_F_SEQPACKET });
  assert.equal(m.exports.fw_device_init(), 0);
  const fn = m.vsockFunction!;
  assert.equal(fn.status & FAILED, FAILED);
  assert.equal(fn.status & DRIVER_OK, 0);
  assert.equal(fn.statusWrites.includes(ACK | DRIVER | FEATURES_OK), false, "FEATURES_OK must not be tried");
  assert.equal(m.logLines(/error virtio: device set FAILED: VIRTIO_F_VERSION_1 not offered/).length, 1);
});

test("a device that refuses FEATURES_OK is set FAILED and init returns false", async () => {
  const m = await deviceMachine({ refuseFeatures: true });
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.vsockFunction!.status & FAILED, FAILED);
  assert.equal(m.vsockFunction!.status & DRIVER_OK, 0);
  assert.equal(m.logLines(/device set FAILED: device did not accept FEATURES_OK/).length, 1);
});

test("no vsock function: init returns false with a clear line", async () => {
  const m = await deviceMachine({ vsock: false });
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.logLines(/error vsock-dev: no virtio-vsock device/).length, 1);
});

test("notify_off_multiplier 0 (one shared doorbell) works", async () => {
  const m = await deviceUp({ notifyOffMultiplier: 0 });
  const before = m.vsockFunction!.notifyCounts[1];
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  assert.notEqual(buffer, 0);
  const header = new Uint8Array(44);
  const view = new DataView(header.buffer);
  view.setBigUint64(0, 33n, true);
  view.setBigUint64(8, 2n, true);
  view.setUint16(28, 1, true);
  view.setUint16(30, 3, true); // RST: the host ignores it
  m.write(buffer, header);
  m.exports.fw_device_tx_submit(buffer, 0);
  m.exports.fw_device_tx_flush();
  assert.equal(m.vsockFunction!.notifyCounts[1], before + 1);
  assert.equal(m.device!.sentByGuest.length, 1);
  assert.deepEqual(m.device!.violations, []);
});

test("bring-up twice (re-init) reuses the rings and works again", async () => {
  const m = await deviceUp();
  const firstDesc = m.vsockFunction!.queues[0].desc;
  assert.equal(m.exports.fw_device_init(), 1);
  assert.equal(m.vsockFunction!.queues[0].desc, firstDesc);
  m.device!.inject({ srcPort: 9, dstPort: 10 }, Uint8Array.of(1, 2, 3));
  assert.equal(m.exports.fw_device_rx_next(), 1);
  assert.equal(m.exports.fw_device_rx_payload_length(), 3);
  assert.deepEqual(m.device!.violations, []);
});
