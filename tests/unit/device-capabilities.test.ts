// The virtio vendor-capability walk: first of each type, unknown types ignored, regions outside
// their BAR rejected, a looping list bounded; and a device that never finishes its reset.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deviceMachine } from "./device-harness";

const VNDR = 0x09;
const CAP_COMMON = 0x40; // where the simulated (QEMU-like) function puts each capability
const CAP_DEVICE = 0x60;

function virtioCapBody(type: number, bar: number, offset: number, length: number): Uint8Array {
  const body = new Uint8Array(14);
  const view = new DataView(body.buffer);
  view.setUint8(0, 16); // cap_len
  view.setUint8(1, type);
  view.setUint8(2, bar);
  view.setUint32(6, offset, true);
  view.setUint32(10, length, true);
  return body;
}

test("unknown capability types are ignored and the first of each type wins", async () => {
  const m = await deviceMachine();
  const fn = m.vsockFunction!;
  fn.addCapability(VNDR, virtioCapBody(42, 4, 0, 16)); // a type from the future
  fn.addCapability(VNDR, virtioCapBody(1, 4, 0x3ff0, 0x1000)); // a second COMMON, outside the BAR
  assert.equal(m.exports.fw_device_init(), 1, m.logText());
  assert.equal(m.logLines(/capability rejected/).length, 0, "the later duplicate is never examined");
  assert.deepEqual(m.device!.violations, []);
});

test("a structure reaching past its BAR is rejected and the device is not driven", async () => {
  const m = await deviceMachine();
  const fn = m.vsockFunction!;
  fn.set32(CAP_DEVICE + 12, 0x10000); // DEVICE length: 64 KiB in a 16 KiB BAR
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.logLines(/warn virtio: 00:01\.0 capability rejected: region outside its BAR or too short at=0x60 type=4/).length, 1);
  assert.equal(m.logLines(/missing structures: device/).length, 1);
  assert.equal(fn.status & 4, 0, "never DRIVER_OK");
});

test("a structure in a BAR index that does not exist is rejected", async () => {
  const m = await deviceMachine();
  m.vsockFunction!.config[CAP_COMMON + 4] = 7; // bar 7
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.logLines(/capability rejected: bar index out of range at=0x40 type=1/).length, 1);
});

test("a capability list that loops is walked a bounded number of times", async () => {
  const m = await deviceMachine();
  const fn = m.vsockFunction!;
  const last = fn.capabilities().at(-1)!.offset;
  fn.config[last + 1] = 0x40; // back to the first: a cycle
  assert.equal(m.exports.fw_device_init(), 1);
  assert.deepEqual(m.device!.violations, []);
});

test("a device that never reads back status 0 after reset: FAILED after a bounded wait", async () => {
  const m = await deviceMachine();
  const fn = m.vsockFunction!;
  const commonRead = fn.commonRead.bind(fn);
  fn.commonRead = (offset, width) => (offset === 0x14 ? 1n : commonRead(offset, width));
  const start = m.clock;
  assert.equal(m.exports.fw_device_init(), 0);
  assert.equal(m.logLines(/device set FAILED: device did not reset/).length, 1);
  const waited = m.clock - start;
  assert.ok(waited >= 100_000_000n && waited < 200_000_000n, `waited ${waited} ns`);
});
