// VIRTIO_F_EVENT_IDX (virtio 1.2 2.7.7, 2.7.10): negotiated when offered (kernel vhost-vsock does),
// kicks asked for by avail_event and interrupts by used_event, the flags ignored; without it the
// flags as before. Also: a halt never misses a used entry, and kicks and interrupts per MiB moved.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine } from "../sim/machine";
import { vringNeedEvent } from "../../tools/vsock-model/split-ring";
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from "../sim/virtio-pci";
import { VIRTIO_VSOCK_F_SEQPACKET } from "../../tools/vsock-model/vsock-packet";
import { counter, COUNTER_RX_PACKETS, COUNTER_TX_NOTIFIES_SUPPRESSED, deviceUp, pattern, rxTake, writeTxPacket } from "./device-harness";
import { boot, noViolations, SINK_PORT, SOURCE_PORT, text } from "./vsock-helpers";

const RX = 0;
const TX = 1;
const WITH = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_VSOCK_F_SEQPACKET;
const WITHOUT = VIRTIO_F_VERSION_1 | VIRTIO_VSOCK_F_SEQPACKET;
const MODES = [
  ["flags", WITHOUT],
  ["EVENT_IDX", WITH],
] as const;

function submit(m: Machine, srcPort: number): void {
  const buffer = m.exports.fw_device_tx_acquire() >>> 0;
  assert.notEqual(buffer, 0);
  writeTxPacket(m, buffer, { srcPort, len: 8 }, pattern(8, srcPort));
  m.exports.fw_device_tx_submit(buffer, 8);
}

/** Runs `during` inside every idle halt (env.wait_for_interrupt), while the firmware is armed. */
function duringHalts(m: Machine, during: () => void): void {
  const waits = m.waits;
  const push = waits.push.bind(waits);
  waits.push = (...items: bigint[]) => {
    during();
    return push(...items);
  };
}

const interruptTotal = (m: Machine) => m.device!.interrupts.reduce((a, b) => a + b, 0);
const kickTotal = (m: Machine) => m.vsockFunction!.notifyCounts.reduce((a, b) => a + b, 0);

test("negotiation: taken when offered, the device then uses the event words; not offered, the flags as before", async () => {
  const on = await deviceUp({ deviceFeatures: WITH });
  assert.equal(BigInt(on.exports.fw_device_features()) & VIRTIO_F_EVENT_IDX, VIRTIO_F_EVENT_IDX);
  assert.ok(on.device!.queues.every((q) => q.eventIdx));
  assert.deepEqual(on.device!.queues.map((q) => q.availFlags()), [0, 0, 0], "flags 0 with EVENT_IDX (2.7.10)");
  const off = await deviceUp({ deviceFeatures: WITHOUT });
  assert.equal(BigInt(off.exports.fw_device_features()) & VIRTIO_F_EVENT_IDX, 0n);
  assert.ok(off.device!.queues.every((q) => !q.eventIdx));
  assert.deepEqual(off.device!.queues.map((q) => q.availFlags() & 1), [1, 1, 1], "polling: VRING_AVAIL_F_NO_INTERRUPT");
  for (const m of [on, off]) {
    m.device!.inject({ srcPort: 5 }, pattern(8));
    assert.equal(rxTake(m)?.header.srcPort, 5);
    submit(m, 6);
    m.exports.fw_device_tx_flush();
    assert.equal(m.exports.fw_device_tx_in_flight(), 0);
    assert.deepEqual(m.device!.violations, []);
  }
});

for (const [mode, deviceFeatures] of MODES) {
  test(`both ways through the whole firmware (${mode}): the sink counts 1 MiB, the source sends it`, async () => {
    const m = await boot({ deviceFeatures });
    const sink = m.host.connect(SINK_PORT);
    const data = pattern(1 << 20, 3);
    sink.send(data);
    sink.shutdown(1);
    assert.ok(m.runUntil(() => text(sink.received).endsWith("\n"), 20000), m.logText());
    assert.match(text(sink.received), /^1048576 [0-9a-f]{8}\n$/);
    const source = m.host.connect(SOURCE_PORT);
    source.send("1048576\n");
    assert.ok(m.runUntil(() => source.eof, 20000));
    assert.equal(source.received.length, 1 << 20);
    noViolations(m);
  });
}

test("kicks go by avail_event (EVENT_IDX): the flag is ignored, a publish that does not pass the event is not kicked", async () => {
  const m = await deviceUp({ deviceFeatures: WITH });
  const q = m.device!.queues[TX];
  const eventAt = q.usedAddr + 4 + 8 * q.size;
  const kicks = () => m.vsockFunction!.notifyCounts[TX];
  // The device asks for a kick at the avail entry it expects next: the first publish passes it.
  assert.equal(q.availEvent(), q.availIdx());
  m.device!.memory!.write16(q.usedAddr, 1); // VIRTQ_USED_F_NO_NOTIFY: means nothing with EVENT_IDX
  let before = kicks();
  submit(m, 1);
  m.exports.fw_device_tx_flush();
  assert.equal(kicks(), before + 1, "flag ignored, avail_event passed");
  assert.equal(m.device!.sentByGuest.length, 1);
  // The device wants no kick before entry availIdx + 3: three publishes (two flushes) stay quiet.
  m.device!.memory!.write16(q.usedAddr, 0);
  m.device!.memory!.write16(eventAt, (q.availIdx() + 2) & 0xffff);
  before = kicks();
  submit(m, 2);
  m.exports.fw_device_tx_flush();
  submit(m, 3);
  submit(m, 4);
  m.exports.fw_device_tx_flush();
  assert.equal(kicks(), before + 1, "only the flush whose publishes passed avail_event kicks");
  assert.equal(counter(m, COUNTER_TX_NOTIFIES_SUPPRESSED), 1);
  assert.deepEqual(m.device!.sentByGuest.map((p) => p.header.srcPort), [1, 2, 3, 4]);
  assert.equal(m.exports.fw_device_tx_in_flight(), 0);
});

test("rx reposts are kicked only when the device asked (EVENT_IDX): a device with nothing to send does not re-arm", async () => {
  const m = await deviceUp({ deviceFeatures: WITH });
  const rxKicks = () => m.vsockFunction!.notifyCounts[RX];
  const before = rxKicks();
  for (let i = 0; i < 8; i++) {
    m.device!.inject({ srcPort: i }, pattern(8, i));
    assert.equal(rxTake(m)?.header.srcPort, i);
    assert.equal(rxTake(m), null); // drained: the buffer is posted again
  }
  // The device read avail idx while delivering, so its avail_event moved and the first repost
  // after each delivery passes it; flags mode kicks every repost batch as well (same count).
  const withEventIdx = rxKicks() - before;
  const off = await deviceUp({ deviceFeatures: WITHOUT });
  const offBefore = off.vsockFunction!.notifyCounts[RX];
  for (let i = 0; i < 8; i++) {
    off.device!.inject({ srcPort: i }, pattern(8, i));
    rxTake(off);
    rxTake(off);
  }
  const withFlags = off.vsockFunction!.notifyCounts[RX] - offBefore;
  assert.ok(withEventIdx <= withFlags, `rx kicks: EVENT_IDX ${withEventIdx}, flags ${withFlags}`);
  // Reposts while the device has not looked at the ring again are not kicked.
  const q = m.device!.queues[RX];
  const stale = q.availEvent();
  m.device!.inject({ srcPort: 99 }, pattern(8));
  const packet = rxTake(m, false)!;
  assert.equal(packet.header.srcPort, 99);
  m.device!.memory!.write16(q.usedAddr + 4 + 8 * q.size, (stale - 10) & 0xffff); // an event long passed
  const quiet = rxKicks();
  m.exports.fw_device_rx_release();
  assert.equal(rxTake(m), null);
  assert.equal(rxKicks(), quiet, "no kick: the repost did not pass avail_event");
});

for (const [mode, deviceFeatures] of MODES) {
  test(`interrupts (${mode}): none while polling; armed before a halt; one per halt with EVENT_IDX however many batches`, async () => {
    const m = await boot({ deviceFeatures });
    const sink = m.host.connect(SINK_PORT);
    m.runUntil(() => sink.state === "connected", 100);
    // Busy: the host writes while the firmware polls; the device raises nothing.
    const quiet = interruptTotal(m);
    for (let i = 0; i < 20; i++) {
      sink.send(pattern(4096, i));
      m.exports.fw_poll_or_halt();
      m.host.tick();
    }
    assert.equal(interruptTotal(m), quiet, "no interrupt while the rings are not armed");
    // Idle: during each halt the host writes four times (four used batches on rx).
    let halts = 0;
    duringHalts(m, () => {
      halts++;
      for (let i = 0; i < 4; i++) sink.send(pattern(1024, i));
    });
    const before = m.device!.interrupts[RX];
    for (let i = 0; i < 400 && halts < 5; i++) {
      m.exports.fw_poll_or_halt();
      m.host.tick();
    }
    assert.equal(halts, 5);
    const perHalt = (m.device!.interrupts[RX] - before) / halts;
    assert.equal(perHalt, mode === "EVENT_IDX" ? 1 : 4, `rx interrupts per halt (${mode})`);
    noViolations(m);
  });
}

test("without EVENT_IDX used_event is never written; with it, the flags never are", async () => {
  for (const [mode, deviceFeatures] of MODES) {
    const m = await boot({ deviceFeatures });
    const seen = new Set<number>();
    duringHalts(m, () => {
      for (const q of m.device!.queues) seen.add(mode === "EVENT_IDX" ? q.availFlags() : q.usedEvent());
    });
    for (let i = 0; i < 200; i++) m.exports.fw_poll_or_halt();
    assert.ok(m.waits.length > 0);
    assert.deepEqual([...seen], [0], mode);
  }
});

for (const [mode, deviceFeatures] of MODES) {
  test(`a halt cannot miss a used entry (${mode}): a packet landing at any point of the arming is seen or interrupts`, async () => {
    const m = await boot({ deviceFeatures });
    const sink = m.host.connect(SINK_PORT);
    m.runUntil(() => sink.state === "connected", 100);
    const state = m as unknown as { barrierCount: number };
    let barriers = state.barrierCount;
    let deliverAt = -1;
    Object.defineProperty(m, "barrierCount", {
      get: () => barriers,
      set: (value: number) => {
        barriers = value;
        if (deliverAt >= 0 && barriers === deliverAt) sink.send("x"); // lands between two firmware steps
      },
    });
    let interruptsAtLastHalt = interruptTotal(m);
    let misses = 0;
    duringHalts(m, () => {
      const delivered = m.device!.deliveredToGuest.length;
      const taken = counter(m, COUNTER_RX_PACKETS);
      // Halting with an entry the firmware has not taken is fine only if it raised an interrupt
      // (interrupts are raised only while armed, and the rings are disarmed after each halt).
      if (delivered > taken && interruptTotal(m) === interruptsAtLastHalt) misses++;
      interruptsAtLastHalt = interruptTotal(m);
    });
    for (let offset = 0; offset < 60; offset++) {
      // Idle first (a halt), then one packet lands `offset` barriers into the next idle round.
      const halts = m.waits.length;
      for (let i = 0; i < 200 && m.waits.length === halts; i++) m.exports.fw_poll_or_halt();
      deliverAt = barriers + 1 + offset;
      const received = counter(m, COUNTER_RX_PACKETS);
      for (let i = 0; i < 200 && counter(m, COUNTER_RX_PACKETS) === received; i++) m.exports.fw_poll_or_halt();
      assert.ok(barriers >= deliverAt, `offset ${offset}: delivered`);
      deliverAt = -1;
      assert.equal(counter(m, COUNTER_RX_PACKETS), received + 1, `offset ${offset}: the packet was taken`);
    }
    assert.equal(misses, 0, "a halt with an untaken entry and no interrupt");
    noViolations(m);
  });
}

/** Kicks (notifies) and interrupts while 1 MiB moves one way; the host acts only while the guest halts. */
async function perMiB(direction: "host->guest" | "guest->host", deviceFeatures: bigint): Promise<{ kicks: number; interrupts: number; halts: number }> {
  const m = await boot({ deviceFeatures });
  const bytes = 1 << 20;
  const data = pattern(bytes, 9);
  const socket = m.host.connect(direction === "host->guest" ? SINK_PORT : SOURCE_PORT);
  m.runUntil(() => socket.state === "connected", 100);
  let sent = 0;
  if (direction === "guest->host") {
    socket.send(`${bytes}\n`);
    socket.pauseReading(true);
  }
  const kicks0 = kickTotal(m);
  const interrupts0 = interruptTotal(m);
  const halts0 = m.waits.length;
  duringHalts(m, () => {
    if (direction === "host->guest") {
      // The host app writes 64 KiB in 16 KiB writes while the guest sleeps.
      for (let i = 0; i < 4 && sent < bytes; i++, sent += 16384) socket.send(data.subarray(sent, sent + 16384));
      if (sent >= bytes) socket.shutdown(1);
    } else {
      socket.pauseReading(false); // the host app reads what arrived, then waits again
      socket.pauseReading(true);
    }
  });
  const done = () => (direction === "host->guest" ? text(socket.received).endsWith("\n") : socket.received.length >= bytes);
  for (let i = 0; i < 200000 && !done(); i++) {
    m.exports.fw_poll_or_halt();
    m.host.tick();
  }
  assert.ok(done(), `${direction}: transfer finished`);
  if (direction === "host->guest") assert.match(text(socket.received), /^1048576 /);
  noViolations(m);
  return { kicks: kickTotal(m) - kicks0, interrupts: interruptTotal(m) - interrupts0, halts: m.waits.length - halts0 };
}

for (const direction of ["host->guest", "guest->host"] as const) {
  test(`kicks and interrupts per MiB ${direction}: EVENT_IDX takes no more than the flags (fewer interrupts host->guest)`, async (t) => {
    const flags = await perMiB(direction, WITHOUT);
    const eventIdx = await perMiB(direction, WITH);
    t.diagnostic(`${direction} per MiB: flags kicks=${flags.kicks} interrupts=${flags.interrupts} halts=${flags.halts}; EVENT_IDX kicks=${eventIdx.kicks} interrupts=${eventIdx.interrupts} halts=${eventIdx.halts}`);
    assert.ok(flags.halts > 0 && eventIdx.halts > 0, "the guest idled between the host's moves");
    assert.ok(eventIdx.interrupts <= flags.interrupts, "interrupts");
    assert.ok(eventIdx.kicks <= flags.kicks, "kicks");
    // Host->guest the host writes several times per halt: with the flags each used batch
    // interrupts, with used_event only the first. Guest->host each halt ends with one batch
    // (the host's credit update) and the device completes tx at the kick: nothing to save here.
    if (direction === "host->guest") assert.ok(eventIdx.interrupts < flags.interrupts, "EVENT_IDX interrupts once per halt");
  });
}
