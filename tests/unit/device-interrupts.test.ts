// The idle halt's wake-up: MSI-X entry 0 of the vsock function aimed at CPU 0's local APIC with
// the platform's vector, every queue routed to it, the fallback to polling when the platform or
// the device says no, and the main loop's idle policy (halt only with interrupts, rings armed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Machine, MachineOptions } from "../sim/machine";
import { vringNeedEvent } from "../../tools/vsock-model/split-ring";
import { MSIX_BAR, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../sim/virtio-pci";
import { boot, ECHO_PORT, noViolations, text } from "./vsock-helpers";

const MSIX_CAP = 0x98; // where the sim (like QEMU) puts the MSI-X capability
const VRING_AVAIL_F_NO_INTERRUPT = 1;

function entry0(m: Machine): { address: number; high: number; data: number; control: number } {
  const view = new DataView(m.vsockFunction!.msixTable.bytes.buffer);
  return { address: view.getUint32(0, true), high: view.getUint32(4, true), data: view.getUint32(8, true), control: view.getUint32(12, true) };
}

function messageControl(m: Machine): number {
  return m.vsockFunction!.readConfig(MSIX_CAP + 2, 2);
}

function availFlags(m: Machine): number[] {
  return m.vsockFunction!.queues.map((q) => m.guestMemory.read16(Number(q.driver)));
}

async function booted(options: MachineOptions = {}): Promise<Machine> {
  return boot(options);
}

test("MSI-X entry 0 -> CPU 0's local APIC with the platform's vector, unmasked; MSI-X on, function unmasked", async () => {
  const m = await booted({ interruptVector: 0x41 });
  assert.equal(m.vsockFunction!.readConfig(MSIX_CAP, 1), 0x11);
  assert.equal(MSIX_BAR, 1);
  const e = entry0(m);
  assert.equal(e.address, 0xfee00000);
  assert.equal(e.high, 0);
  assert.equal(e.data, 0x41);
  assert.equal(e.control & 1, 0, "entry 0 unmasked");
  assert.equal(messageControl(m) & 0x8000, 0x8000, "MSI-X enabled");
  assert.equal(messageControl(m) & 0x4000, 0, "function not masked");
  for (const q of m.vsockFunction!.queues) assert.equal(q.msixVector, 0, `queue ${q.index}`);
  assert.equal(m.vsockFunction!.msixConfig, 0xffff, "config changes arrive through the event queue");
  assert.equal(m.logLines(/info vsock-dev: interrupts msix entry=0 vector=65$/).length, 1);
  noViolations(m);
});

test("the device refuses the vector (reads back NO_VECTOR): one warning, MSI-X off again, polling only, still serving", async () => {
  const m = await booted({ msixVectors: 0 });
  for (const q of m.vsockFunction!.queues) assert.equal(q.msixVector, 0xffff);
  assert.equal(messageControl(m) & 0x8000, 0, "MSI-X disabled again");
  const warnings = m.logLines(/warn vsock-dev: no interrupts, polling only: device refused the queue vector queues_refused=3$/);
  assert.equal(warnings.length, 1, m.logText());
  for (let i = 0; i < 100; i++) m.exports.fw_poll_or_halt();
  assert.equal(m.waits.length, 0, "no halt without a wake-up");
  const h = m.host.connect(ECHO_PORT);
  h.send("ping");
  for (let i = 0; i < 50 && h.received.length < 4; i++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  assert.equal(text(h.received), "ping");
  noViolations(m);
});

test("a platform without interrupts (vector 0): MSI-X stays off, queues get no vector, no halt", async () => {
  const m = await booted({ interruptVector: 0 });
  assert.equal(messageControl(m) & 0x8000, 0);
  assert.deepEqual(entry0(m), { address: 0, high: 0, data: 0, control: 0 }, "entry 0 never written");
  for (const q of m.vsockFunction!.queues) assert.equal(q.msixVector, 0xffff);
  assert.equal(m.logLines(/warn vsock-dev: no interrupts, polling only: no interrupt vector from the platform/).length, 1);
  for (let i = 0; i < 100; i++) m.exports.fw_poll_or_halt();
  assert.equal(m.waits.length, 0);
});

/** Would the device's next used entry on each queue interrupt? (The flag, or used_event with EVENT_IDX.) */
function nextEntryInterrupts(m: Machine): boolean[] {
  return m.device!.queues.map((q) => {
    if (!q.eventIdx) return (q.availFlags() & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    return vringNeedEvent(q.usedEvent(), (q.usedIdx + 1) & 0xffff, q.usedIdx);
  });
}

for (const [mode, deviceFeatures] of [
  ["flags", VIRTIO_F_VERSION_1],
  ["EVENT_IDX", VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX],
] as const) {
  test(`idle (${mode}): polls spin a while, then halt with a bounded timeout; rings ask for interrupts only during the halt`, async () => {
    const m = await booted({ deviceFeatures });
    assert.equal(m.device!.queues[0].eventIdx, mode === "EVENT_IDX");
    const flagsDuringHalt: number[][] = [];
    const wantedDuringHalt: boolean[][] = [];
    const imports = m as unknown as { waits: bigint[] };
    const originalPush = imports.waits.push.bind(imports.waits);
    imports.waits.push = (...items: bigint[]) => {
      flagsDuringHalt.push(availFlags(m));
      wantedDuringHalt.push(nextEntryInterrupts(m));
      return originalPush(...items);
    };
    for (let i = 0; i < 200; i++) m.exports.fw_poll_or_halt();
    assert.ok(m.waits.length > 0, "idle polls end in a halt");
    assert.ok(m.waits.length < 200, "not every poll halts: a short spin first");
    for (const timeout of m.waits) {
      assert.ok(timeout > 0n && timeout <= 4_000_000n, `timeout ${timeout}`);
    }
    // rx (0) and event (2) ask for interrupts while halted; tx (1) has nothing in flight.
    for (const wanted of wantedDuringHalt) {
      assert.equal(wanted[0], true);
      assert.equal(wanted[1], false);
      assert.equal(wanted[2], true);
    }
    for (const flags of flagsDuringHalt) {
      if (mode === "EVENT_IDX") assert.deepEqual(flags, [0, 0, 0], "with EVENT_IDX the flags stay 0 (virtio 1.2 2.7.10)");
      else {
        assert.equal(flags[0] & VRING_AVAIL_F_NO_INTERRUPT, 0);
        assert.equal(flags[2] & VRING_AVAIL_F_NO_INTERRUPT, 0);
      }
    }
    // Awake, every queue is back to no interrupts (each would be an exit while we poll anyway).
    assert.deepEqual(nextEntryInterrupts(m), [false, false, false]);
    if (mode === "flags") for (const flags of availFlags(m)) assert.equal(flags & VRING_AVAIL_F_NO_INTERRUPT, VRING_AVAIL_F_NO_INTERRUPT);
    noViolations(m);
  });
}

test("idle: a poll that moves packets never halts; the echo answers through the halting loop", async () => {
  const m = await booted();
  for (let i = 0; i < 200; i++) m.exports.fw_poll_or_halt();
  const before = m.waits.length;
  assert.ok(before > 0);
  // The host's packets land in the rx used ring before the firmware's next look.
  const h = m.host.connect(ECHO_PORT);
  m.host.tick();
  h.send("x");
  m.host.tick();
  m.exports.fw_poll_or_halt();
  assert.equal(m.waits.length, before, "a poll that moved packets never halts");
  for (let i = 0; i < 20 && h.received.length < 1; i++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  assert.equal(text(h.received), "x");
  noViolations(m);
});
