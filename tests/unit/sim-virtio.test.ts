// The simulated virtio-pci transport: status state machine, feature rules, queue registers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRig } from "../sim/test-driver";
import * as V from "../sim/virtio-pci";
import { VIRTIO_VSOCK_F_SEQPACKET } from "../../tools/vsock-model/vsock-packet";

const ACK_DRIVER = V.VIRTIO_STATUS_ACKNOWLEDGE | V.VIRTIO_STATUS_DRIVER;

function ready(options = {}) {
  const r = createRig(options);
  r.driver.assignBars();
  return r;
}

test("device features: VERSION_1, EVENT_IDX and SEQPACKET offered, read through the select register", () => {
  const { driver } = ready();
  driver.write(V.COMMON_DFSELECT, 4, 0);
  assert.equal(driver.read(V.COMMON_DF, 4), V.VIRTIO_F_EVENT_IDX | VIRTIO_VSOCK_F_SEQPACKET);
  driver.write(V.COMMON_DFSELECT, 4, 1);
  assert.equal(driver.read(V.COMMON_DF, 4), 1n, "bit 32 = VERSION_1");
  driver.write(V.COMMON_DFSELECT, 4, 2);
  assert.equal(driver.read(V.COMMON_DF, 4), 0n);
  assert.equal(driver.read(V.COMMON_NUMQ, 2), 3n);
});

test("FEATURES_OK sticks for a subset that includes VERSION_1", () => {
  const { driver, device } = ready();
  assert.equal(driver.negotiate(V.VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET), ACK_DRIVER | V.VIRTIO_STATUS_FEATURES_OK);
  assert.equal(device.features, V.VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET);
  assert.deepEqual(device.violations, []);
});

test("FEATURES_OK is refused without VERSION_1, with features not offered, and by the refuse option", () => {
  let r = ready();
  assert.equal(r.driver.negotiate(0n), ACK_DRIVER, "no VERSION_1");
  r = ready();
  assert.equal(r.driver.negotiate(V.VIRTIO_F_VERSION_1 | (1n << 28n)), ACK_DRIVER, "INDIRECT_DESC not offered");
  assert.match(r.device.violations.join("\n"), /not offered/);
  r = ready({ refuseFeatures: true });
  assert.equal(r.driver.negotiate(), ACK_DRIVER, "test option");
  assert.equal(r.device.features, 0n);
});

test("writing 0 resets status, features and queue registers", () => {
  const { driver, fn } = ready();
  driver.negotiate();
  driver.write(V.COMMON_Q_SELECT, 2, 1);
  driver.write(V.COMMON_Q_SIZE, 2, 32);
  driver.write(V.COMMON_Q_DESCLO, 4, 0x1234000);
  driver.setStatus(0);
  assert.equal(driver.status(), 0);
  assert.equal(fn.driverFeatures, 0n);
  driver.write(V.COMMON_Q_SELECT, 2, 1);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 128n, "size back to the maximum");
  assert.equal(driver.read(V.COMMON_Q_DESCLO, 4), 0n);
  assert.deepEqual(fn.statusWrites, [0, 1, 3, 11, 0]);
});

test("DRIVER_OK before FEATURES_OK is a violation and does not start the device", () => {
  const { driver, device } = ready();
  driver.setStatus(ACK_DRIVER);
  driver.setStatus(ACK_DRIVER | V.VIRTIO_STATUS_DRIVER_OK);
  assert.equal(driver.status() & V.VIRTIO_STATUS_DRIVER_OK, 0);
  assert.equal(device.started, false);
  assert.match(device.violations.join("\n"), /DRIVER_OK without/);
});

test("clearing status bits without a reset and writing features after FEATURES_OK are violations", () => {
  const { driver, device, fn } = ready();
  driver.negotiate();
  driver.write(V.COMMON_GFSELECT, 4, 0);
  driver.write(V.COMMON_GF, 4, 2);
  assert.equal(fn.driverFeatures, V.VIRTIO_F_VERSION_1, "ignored after FEATURES_OK");
  driver.setStatus(V.VIRTIO_STATUS_ACKNOWLEDGE);
  assert.equal(device.violations.length, 2, device.violations.join("\n"));
});

test("queue registers: select, size rules, 64-bit addresses in halves or whole, enable, notify_off", () => {
  const { driver, device } = ready({ queueSizeMax: 256 });
  driver.write(V.COMMON_Q_SELECT, 2, 2);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 256n);
  assert.equal(driver.read(V.COMMON_Q_NOFF, 2), 2n);
  driver.write(V.COMMON_Q_SIZE, 2, 100);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 256n, "not a power of two: ignored");
  driver.write(V.COMMON_Q_SIZE, 2, 512);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 256n, "above the maximum: ignored");
  assert.equal(device.violations.length, 2);
  driver.write(V.COMMON_Q_SIZE, 2, 64);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 64n);
  driver.write(V.COMMON_Q_DESCLO, 4, 0x89abc000);
  driver.write(V.COMMON_Q_DESCHI, 4, 0x1);
  assert.equal(driver.read(V.COMMON_Q_DESCLO, 8), 0x189abc000n);
  driver.write(V.COMMON_Q_USEDLO, 8, 0x2_0000_1000n);
  assert.equal(driver.read(V.COMMON_Q_USEDHI, 4), 2n);
  assert.equal(driver.read(V.COMMON_Q_USEDLO, 4), 0x1000n);
  driver.write(V.COMMON_Q_ENABLE, 2, 1);
  assert.equal(driver.read(V.COMMON_Q_ENABLE, 2), 1n);
  driver.write(V.COMMON_Q_DESCLO, 4, 0);
  assert.match(device.violations.at(-1)!, /after queue_enable/);
  driver.write(V.COMMON_Q_SELECT, 2, 7);
  assert.equal(driver.read(V.COMMON_Q_SIZE, 2), 0n, "a queue that does not exist has size 0");
});

test("MSI-X vector registers return what was written, or NO_VECTOR beyond the table", () => {
  const { driver } = ready();
  assert.equal(driver.read(V.COMMON_MSIX, 2), 0xffffn);
  driver.write(V.COMMON_MSIX, 2, 1);
  assert.equal(driver.read(V.COMMON_MSIX, 2), 1n);
  driver.write(V.COMMON_MSIX, 2, 3);
  assert.equal(driver.read(V.COMMON_MSIX, 2), 0xffffn, "only 3 vectors");
  driver.write(V.COMMON_Q_SELECT, 2, 0);
  driver.write(V.COMMON_Q_MSIX, 2, 2);
  assert.equal(driver.read(V.COMMON_Q_MSIX, 2), 2n);
  driver.write(V.COMMON_Q_MSIX, 2, V.VIRTIO_MSI_NO_VECTOR);
  assert.equal(driver.read(V.COMMON_Q_MSIX, 2), 0xffffn);
});

test("device config: guest_cid as one 64-bit or two 32-bit reads; generation moves when it changes", () => {
  const { driver, device } = ready({ guestCid: 0x1_0000_0021n });
  assert.equal(driver.read(V.REGION_DEVICE, 8), 0x1_0000_0021n);
  assert.equal(driver.read(V.REGION_DEVICE, 4), 0x21n);
  assert.equal(driver.read(V.REGION_DEVICE + 4, 4), 1n);
  assert.equal(driver.read(V.REGION_DEVICE + 1, 1), 0n);
  const generation = driver.read(V.COMMON_CFGGENERATION, 1);
  device.setGuestCid(34);
  assert.equal(driver.read(V.REGION_DEVICE, 4), 34n);
  assert.equal(driver.read(V.COMMON_CFGGENERATION, 1), generation + 1n);
  assert.equal(driver.read(V.REGION_ISR, 1), 2n, "config change bit, cleared by the read");
  assert.equal(driver.read(V.REGION_ISR, 1), 0n);
  device.setGuestCid(35, false);
  assert.equal(driver.read(V.COMMON_CFGGENERATION, 1), generation + 1n, "a lying device keeps the generation");
});

test("hostile seam: guest_cid changes between the two halves of a read", () => {
  const { driver, device, fn } = ready({ guestCid: 33 });
  let reads = 0;
  fn.beforeDeviceConfigRead = () => {
    if (reads++ === 1) device.setGuestCid(0x2_0000_0000n);
  };
  const low = driver.read(V.REGION_DEVICE, 4);
  const high = driver.read(V.REGION_DEVICE + 4, 4);
  assert.equal((high << 32n) | low, 0x2_0000_0021n, "torn value a driver must catch with config_generation");
});

test("access widths that match no field are violations", () => {
  const { driver, device } = ready();
  driver.read(V.COMMON_STATUS, 4);
  driver.write(V.COMMON_Q_SELECT, 4, 0);
  assert.equal(device.violations.length, 2);
});

test("notify: offset = queue_notify_off * multiplier; before DRIVER_OK it is counted, not acted on", () => {
  const { driver, fn, device } = ready();
  driver.write(V.REGION_NOTIFY + 4, 2, 1);
  assert.equal(fn.notifyCounts[1], 1);
  assert.deepEqual(device.violations, []);
  driver.write(V.REGION_NOTIFY + 8, 2, 1);
  assert.equal(fn.notifyCounts[2], 1, "the address names the queue");
  assert.match(device.violations.join("\n"), /notify for queue 2 carried value 1/);
  assert.equal(device.started, false);
});

test("notify_off_multiplier 0: every queue notifies at offset 0 and the value names it", () => {
  const { driver, fn } = ready({ notifyOffMultiplier: 0 });
  driver.write(V.REGION_NOTIFY, 2, 2);
  driver.write(V.REGION_NOTIFY, 2, 0);
  assert.deepEqual(fn.notifyCounts, [1, 0, 1]);
});

test("hostile seam: config_generation moves without a config change", () => {
  const { driver, device } = ready({ guestCid: 33 });
  const before = driver.read(V.COMMON_CFGGENERATION, 1);
  device.bumpConfigGeneration();
  assert.equal(driver.read(V.COMMON_CFGGENERATION, 1), before + 1n);
  assert.equal(driver.read(V.REGION_DEVICE, 8), 33n);
});
