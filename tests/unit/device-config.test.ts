// guest_cid (le64 at device config 0) read as two halves under config_generation, and the event
// queue's VIRTIO_VSOCK_EVENT_TRANSPORT_RESET.
import assert from "node:assert/strict";
import { test } from "node:test";
import { counter, COUNTER_TRANSPORT_RESETS, deviceMachine, deviceUp, drops, DROP_EVENT_SHORT } from "./device-harness";

const EVENT = 2;

test("guest_cid is read as a 64-bit value and logged", async () => {
  const m = await deviceUp({ guestCid: 0xffff_fffen });
  assert.equal(BigInt(m.exports.fw_device_guest_cid()), 0xffff_fffen);
  assert.equal(m.logLines(/info vsock-dev: ready guest_cid=4294967294 /).length, 1);
  // Both halves are read: a cid with its reserved upper half set is seen whole (and refused,
  // tests/unit/device-hardening.test.ts).
  const high = await deviceMachine({ guestCid: 0x1_0000_0021n });
  assert.equal(high.exports.fw_device_init(), 0);
  assert.equal(high.logLines(/guest_cid=0x100000021 /).length, 1, high.logText());
});

test("a config change between the two halves is caught by config_generation", async () => {
  const m = await deviceMachine({ guestCid: 0x1_0000_0005n });
  const device = m.device!;
  let reads = 0;
  m.vsockFunction!.beforeDeviceConfigRead = (offset) => {
    // Between the low and the high half of the first attempt the cid changes (and the generation).
    if (offset === 4 && reads++ === 0) device.setGuestCid(7n);
  };
  assert.equal(m.exports.fw_device_init(), 1);
  // Without the retry the driver would have combined low 5 with high 0: a valid cid, but not ours.
  assert.equal(BigInt(m.exports.fw_device_guest_cid()), 7n);
});

test("a config that never settles fails the bring-up (bounded retries)", async () => {
  const m = await deviceMachine();
  const device = m.device!;
  let cid = 40n;
  m.vsockFunction!.beforeDeviceConfigRead = () => device.setGuestCid(cid++);
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.vsockFunction!.status & 128, 128);
  assert.equal(m.logLines(/device set FAILED: device config kept changing/).length, 1);
});

test("transport reset: eventPoll reports it once, with the new guest_cid, and the buffer is reposted", async () => {
  const m = await deviceUp({ guestCid: 33 });
  assert.equal(m.exports.fw_device_event_poll(), 0, "nothing yet");
  for (let i = 0; i < 6; i++) {
    // More resets than event buffers (4): each must find a reposted buffer.
    assert.equal(m.device!.transportReset(50 + i), true, `reset ${i} delivered`);
    assert.equal(m.exports.fw_device_event_poll(), 1);
    assert.equal(BigInt(m.exports.fw_device_guest_cid()), BigInt(50 + i));
    assert.equal(m.exports.fw_device_event_poll(), 0, "once per event");
  }
  assert.equal(counter(m, COUNTER_TRANSPORT_RESETS), 6);
  assert.equal(m.logLines(/info vsock-dev: transport reset old_cid=33 guest_cid=50/).length, 1);
  assert.deepEqual(m.device!.violations, []);
});

test("a short event is dropped and its buffer reused", async () => {
  const m = await deviceUp();
  m.device!.corruptNextUsed(EVENT, (entry) => [{ id: entry.id, len: 2 }]);
  assert.equal(m.device!.transportReset(), true);
  assert.equal(m.exports.fw_device_event_poll(), 0);
  assert.equal(drops(m, DROP_EVENT_SHORT), 1);
  assert.equal(m.device!.transportReset(), true);
  assert.equal(m.exports.fw_device_event_poll(), 1);
});
